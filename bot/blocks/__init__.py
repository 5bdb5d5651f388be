"""Block Kit, built from core values. Pure: no I/O, no SDK.

Modules are imported by name (`from bot.blocks import card as card_blocks`); this package
re-exports nothing.

    card      the incident card of one Rollout revision and its notification text
    rollout   the Rollout's status labels, button values and action buttons (Tier 1, Argo verbs)
    tiers     the rollback tiers' sections, the `Recommended:` line and the Tier 2/3 buttons
    modals    the revert modal (Tier 3) and the break-glass modal (Tier 2), their metadata
    replies   thread lines and the ephemeral replies: help, errors, refusals, flags, reverts
    text      times and verbs shared by the builders (`clock`, `humanise_age`, …)
    release   the release card, checklist, `/release` replies and the App Home
    release_words  how a release is said in them: phases, dates, owners, tickets
    terminal  Block Kit as terminal text, for the demo
"""

__all__: list[str] = []
