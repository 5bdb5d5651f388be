"""Slack's `:shortcode:` emoji, as the characters they stand for.

`EMOJI` is the table (the shortcodes rollbot writes and a few common ones); `replace_emoji`
swaps them in already-escaped HTML text. A shortcode not in the table stays as text.
"""

from __future__ import annotations

import re

__all__ = ["EMOJI", "replace_emoji"]

# The :shortcodes: rollbot writes (grep bot/), and a few common ones; others stay as text.
EMOJI: dict[str, str] = {
    "warning": "⚠️",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "rotating_light": "🚨",
    "no_entry": "⛔",
    "no_entry_sign": "🚫",
    "trophy": "🏆",
    "information_source": "ℹ️",
    "grey_question": "❔",
    "question": "❓",
    "electric_plug": "🔌",
    "closed_lock_with_key": "🔐",
    "lock": "🔒",
    "sunny": "☀️",
    "rocket": "🚀",
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "large_yellow_circle": "🟡",
    "octagonal_sign": "🛑",
    "link": "🔗",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "pager": "📟",
    "memo": "📝",
    "memory": "📝",
    "double_vertical_bar": "⏸️",
    "checkered_flag": "🏁",
    "boom": "💥",
    "arrows_counterclockwise": "🔄",
    "alarm_clock": "⏰",
    "stopwatch": "⏱️",
    "leftwards_arrow_with_hook": "↩️",
    "point_right": "👉",
    "star": "⭐",
    "tada": "🎉",
    "fire": "🔥",
    "eyes": "👀",
    "+1": "👍",
    "thumbsup": "👍",
    "-1": "👎",
    "thumbsdown": "👎",
    "bulb": "💡",
    "construction": "🚧",
    "mag": "🔍",
    "calendar": "📅",
    "clipboard": "📋",
    "wrench": "🔧",
    "gear": "⚙️",
    "bell": "🔔",
    "wave": "👋",
    "smile": "😄",
    "slightly_smiling_face": "🙂",
}
_EMOJI_RE = re.compile(
    ":(" + "|".join(re.escape(k) for k in sorted(EMOJI, key=len, reverse=True)) + "):"
)


def replace_emoji(escaped: str) -> str:
    """Escaped text with each known `:shortcode:` replaced by its emoji."""
    return _EMOJI_RE.sub(lambda m: EMOJI[m.group(1)], escaped)
