"""The one Slack card per Rollout revision: its memory, its posting and its thread."""

from bot.cards.engine import (
    Cards,
    RevertPlan,
    card_key,
    revert_key,
    revert_started,
    summary_line,
)
from bot.cards.pace import SlackPace

__all__ = [
    "Cards",
    "RevertPlan",
    "SlackPace",
    "card_key",
    "revert_key",
    "revert_started",
    "summary_line",
]
