"""Block Kit, built from core values: the incident card, modals and replies (`card`), the
release card (`release`), and Block Kit as terminal text for the demo (`terminal`). Pure:
no I/O, no SDK."""

__all__: list[str] = []
