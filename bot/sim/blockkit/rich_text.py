"""The elements of a `rich_text` block, as HTML.

Sections, preformatted text, quotes and (nested, ordered or not) lists
(`render_rich_text`), made of inline pieces: text, links (http/https/mailto only), emoji,
user, channel and user-group mentions and broadcasts (rendered as mrkdwn renders them,
through `render_angle`), dates; each with its code/strike/italic/bold style. An unknown
piece is a placeholder.
"""

from __future__ import annotations

from bot.sim.blockkit.emoji import EMOJI
from bot.sim.blockkit.markup import as_dict, as_list, as_str, esc, html_attrs, safe_url, unsupported
from bot.sim.blockkit.mrkdwn import Names, render_angle

__all__ = ["render_rich_text"]


def _rich_inline(el: object, names: Names) -> str:
    e = as_dict(el)
    kind = as_str(e.get("type"))
    style = as_dict(e.get("style"))
    if kind == "text":
        out = esc(as_str(e.get("text"))).replace("\n", "<br>")
    elif kind == "link":
        url = safe_url(as_str(e.get("url")))
        label = esc(as_str(e.get("text")) or as_str(e.get("url")))
        out = (
            f'<a class="bk-link"{html_attrs(href=url)} target="_blank" rel="noopener noreferrer">'
            f"{label}</a>"
            if url
            else label
        )
    elif kind == "emoji":
        name = as_str(e.get("name"))
        out = EMOJI.get(name) or esc(f":{name}:")
    elif kind == "user":
        out = render_angle(f"@{as_str(e.get('user_id'))}", names)
    elif kind == "channel":
        out = render_angle(f"#{as_str(e.get('channel_id'))}", names)
    elif kind == "usergroup":
        out = render_angle(f"!subteam^{as_str(e.get('usergroup_id'))}", names)
    elif kind == "broadcast":
        out = render_angle(f"!{as_str(e.get('range')) or 'here'}", names)
    elif kind == "date":
        out = f'<span class="bk-date">{esc(as_str(e.get("fallback")) or e.get("timestamp"))}</span>'
    else:
        return unsupported("element", kind or "?", inline=True)
    for flag, tag in (("code", "code"), ("strike", "s"), ("italic", "i"), ("bold", "b")):
        if style.get(flag):
            out = f"<{tag}>{out}</{tag}>"
    return out


def render_rich_text(el: object, names: Names) -> str:
    """One element of a `rich_text` block (a section, preformatted text, a quote, a list)."""
    e = as_dict(el)
    kind = as_str(e.get("type"))
    inner = "".join(_rich_inline(x, names) for x in as_list(e.get("elements")))
    if kind == "rich_text_section":
        return f'<div class="bk-rich-section">{inner}</div>'
    if kind == "rich_text_preformatted":
        return f'<pre class="bk-pre">{inner}</pre>'
    if kind == "rich_text_quote":
        return f'<blockquote class="bk-quote">{inner}</blockquote>'
    if kind == "rich_text_list":
        tag = "ol" if e.get("style") == "ordered" else "ul"
        indent = e.get("indent") if isinstance(e.get("indent"), int) else 0
        items = "".join(
            f"<li>{render_rich_text(x, names)}</li>" for x in as_list(e.get("elements"))
        )
        return (
            f'<{tag} class="bk-rich-list"{html_attrs(data_indent=indent or None)}>{items}</{tag}>'
        )
    return unsupported("element", kind or "?")
