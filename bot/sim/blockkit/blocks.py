"""Blocks → HTML (`render_blocks`): one element per block, `data-block-id` on each.

header, section (text, fields, accessory), context, divider, actions, image, input (label,
optional, hint) and rich_text; the elements inside come from `elements` and `rich_text`.
An unknown block, or a block too malformed to render, is a placeholder: malformed input
never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.sim.blockkit.elements import (
    BlockContext,
    render_element,
    render_image_element,
    render_text,
)
from bot.sim.blockkit.markup import EMPTY, as_dict, as_list, as_str, html_attrs, unsupported
from bot.sim.blockkit.mrkdwn import Names
from bot.sim.blockkit.rich_text import render_rich_text

__all__ = ["render_blocks"]


def _section(b: Mapping[str, Any], ctx: BlockContext) -> str:
    body = ""
    if b.get("text"):
        body += f'<div class="bk-text">{render_text(b.get("text"), ctx.names)}</div>'
    fields = as_list(b.get("fields"))
    if fields:
        cells = "".join(f'<div class="bk-field">{render_text(f, ctx.names)}</div>' for f in fields)
        body += f'<div class="bk-fields">{cells}</div>'
    accessory = ""
    if b.get("accessory"):
        accessory = f'<div class="bk-accessory">{render_element(b.get("accessory"), ctx)}</div>'
    return f'<div class="bk-section-body">{body}</div>{accessory}'


def _context(b: Mapping[str, Any], ctx: BlockContext) -> str:
    out = ""
    for el in as_list(b.get("elements")):
        e = as_dict(el)
        if e.get("type") == "image":
            out += render_image_element(e, "bk-context-image")
        elif e.get("type") in ("mrkdwn", "plain_text"):
            out += f'<span class="bk-context-text">{render_text(e, ctx.names)}</span>'
        else:
            out += unsupported("element", e.get("type") or "?", inline=True)
    return out


def _image_block(b: Mapping[str, Any], ctx: BlockContext) -> str:
    title = ""
    if b.get("title"):
        title = (
            '<figcaption class="bk-image-title">'
            f"{render_text(b.get('title'), ctx.names)}</figcaption>"
        )
    return f'<figure class="bk-figure">{title}{render_image_element(b, "bk-image")}</figure>'


def _input(b: Mapping[str, Any], ctx: BlockContext) -> str:
    label = render_text(b.get("label"), ctx.names)
    optional = ' <span class="bk-optional">(optional)</span>' if b.get("optional") else ""
    hint = ""
    if b.get("hint"):
        hint = f'<div class="bk-hint">{render_text(b.get("hint"), ctx.names)}</div>'
    return (
        f'<label class="bk-label">{label}{optional}</label>'
        f'<div class="bk-input-element">{render_element(b.get("element"), ctx)}</div>{hint}'
    )


_BLOCKS: dict[str, Callable[[Mapping[str, Any], BlockContext], str]] = {
    "header": lambda b, ctx: render_text(b.get("text"), ctx.names),
    "section": _section,
    "context": _context,
    "divider": lambda b, ctx: "<hr>",
    "actions": lambda b, ctx: "".join(render_element(el, ctx) for el in as_list(b.get("elements"))),
    "image": _image_block,
    "input": _input,
    "rich_text": lambda b, ctx: "".join(
        render_rich_text(el, ctx.names) for el in as_list(b.get("elements"))
    ),
}


def _block(block: object, names: Names, message_ts: str) -> str:
    b = as_dict(block)
    kind = as_str(b.get("type"))
    render = _BLOCKS.get(kind)
    if render is None:
        return unsupported("block", kind or "?")
    block_id = as_str(b.get("block_id"))
    ctx = BlockContext(names, block_id, message_ts)
    try:
        inner = render(b, ctx)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError):
        return unsupported("block", f"malformed {kind}")
    tag = "h3" if kind == "header" else "div"
    return f'<{tag} class="bk-block bk-{kind}"{html_attrs(data_block_id=block_id)}>{inner}</{tag}>'


def render_blocks(
    blocks: Sequence[Mapping[str, Any]],
    *,
    users: Mapping[str, str] = EMPTY,
    channels: Mapping[str, str] = EMPTY,
    groups: Mapping[str, str] = EMPTY,
    message_ts: str = "",
) -> str:
    """The blocks as HTML, one element per block; unknown ones as a placeholder."""
    names = Names(users, channels, groups)
    items = as_list(blocks) if not isinstance(blocks, str) else []
    inner = "".join(_block(b, names, str(message_ts or "")) for b in items)
    return f'<div class="bk-blocks">{inner}</div>'
