"""The pure core: values (model), ports (the Protocols adapters implement), and the rules
(tiers, policy, incidents, rollouts, alerts, evidence, flags, cleanup, release commands,
links, markdown, the runbook linter, mrkdwn, payloads, signatures, commands).

No I/O, no SDK, no framework: the import-linter contracts say so. Modules are imported by
name (`from bot.core import tiers`)."""

__all__: list[str] = []
