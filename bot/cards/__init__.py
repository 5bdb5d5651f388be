"""The one Slack card per Rollout revision: its memory, its posting and its thread."""

from bot.cards.engine import (
    Cards,
    RevertPlan,
    card_key,
    revert_key,
    revert_started,
    summary_line,
)

__all__ = ["Cards", "RevertPlan", "card_key", "revert_key", "revert_started", "summary_line"]
