"""Block Kit as terminal text, for `rollbot demo` to show what Slack would show.

    render_text(blocks) -> str

Headers are underlined, section fields two to a line (a pair too wide for two columns is
stacked), context lines dimmed with `│`, buttons as `[ Abort (Tier 1) ]`, URL buttons as
`[ Runbook (Tier 3) ↗ ]`, dividers as a rule. In mrkdwn, links `<url|graph>` show as
`graph ↗` and `&lt; &gt; &amp;` as the characters Slack shows. Emoji codes stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

from bot.core import mrkdwn

WIDTH = 72
COLUMN = 34

_LABELLED_LINK = re.compile(r"<(https?://[^|>\s]+)\|([^>]*)>")
_BARE_LINK = re.compile(r"<(https?://[^|>\s]+)>")


def _mrkdwn(text: str) -> str:
    text = _LABELLED_LINK.sub(lambda m: f"{m.group(2)} ↗", text)
    text = _BARE_LINK.sub(lambda m: m.group(1), text)
    return mrkdwn.unescape(text)


def _text(obj: Any) -> str:
    if isinstance(obj, dict):
        text = str(obj.get("text", ""))
        return _mrkdwn(text) if obj.get("type") == "mrkdwn" else text
    return str(obj or "")


def _section(block: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if block.get("text"):
        lines.extend(_text(block["text"]).splitlines())
    fields = [_text(f).splitlines() for f in block.get("fields") or []]
    for i in range(0, len(fields), 2):
        left = fields[i]
        right = fields[i + 1] if i + 1 < len(fields) else []
        if any(len(line) > COLUMN for line in left):
            lines.extend(left)
            lines.extend(right)
            continue
        for j in range(max(len(left), len(right))):
            a = left[j] if j < len(left) else ""
            b = right[j] if j < len(right) else ""
            lines.append(f"{a:<{COLUMN}}  {b}".rstrip())
    accessory = block.get("accessory")
    if isinstance(accessory, dict) and accessory.get("type") == "button":
        lines.append(_button(accessory))
    return lines


def _button(element: dict[str, Any]) -> str:
    arrow = " ↗" if element.get("url") else ""
    return f"[ {_text(element.get('text'))}{arrow} ]"


def render_text(blocks: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text(block.get("text"))
            out.extend([title, "═" * min(WIDTH, max(len(title), 8))])
        elif kind == "section":
            out.extend(_section(block))
        elif kind == "context":
            out.extend(
                f"│ {line}"
                for el in block.get("elements") or []
                for line in (_text(el) if el.get("type") != "image" else "").splitlines()
            )
        elif kind == "actions":
            buttons = [
                _button(el) for el in block.get("elements") or [] if el.get("type") == "button"
            ]
            out.append("  ".join(buttons))
        elif kind == "divider":
            out.append("─" * WIDTH)
        elif kind == "image":
            out.append(f"[image: {block.get('alt_text', '')}]")
        else:
            out.append(f"[{kind}]")
    return "\n".join(out)
