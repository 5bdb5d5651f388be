"""The Slack edge: the Bolt app (`app`), its listeners (`listeners`), errors told to the
user (`errors`), and the verified-request markers the web edge sets (`verified`). Block Kit
itself is `bot.blocks`. Modules are imported by name."""

__all__: list[str] = []
