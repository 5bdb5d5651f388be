"""Text objects and the elements inside blocks, as HTML.

Text objects: `render_text` (plain_text or mrkdwn as HTML; a bare string as plain text) and
`plain_text` (the unescaped text, for attributes). Elements (`render_element`): buttons
(`<button>`, or a link for a URL button) with their confirm dialog, static and dynamic
selects, overflow menus, date/time pickers, text and number inputs, radio buttons and
checkboxes, images (`render_image_element`); an unknown element is a placeholder. Each
interactive element carries `data-action-id`, `data-block-id` and `data-message-ts`
(`BlockContext`), for the page's script to send the action.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from bot.sim.blockkit.emoji import replace_emoji
from bot.sim.blockkit.markup import (
    IMAGE_SCHEMES,
    as_dict,
    as_list,
    as_str,
    esc,
    html_attrs,
    safe_url,
    unslack,
    unsupported,
)
from bot.sim.blockkit.mrkdwn import Names, render_mrkdwn

__all__ = [
    "BlockContext",
    "plain_text",
    "render_element",
    "render_image_element",
    "render_text",
]


def render_text(obj: object, names: Names) -> str:
    """A text object (plain_text or mrkdwn) as HTML; a bare string as plain text."""
    if isinstance(obj, str):
        return esc(obj).replace("\n", "<br>")
    o = as_dict(obj)
    raw = as_str(o.get("text"))
    if o.get("type") == "mrkdwn":
        return render_mrkdwn(raw, users=names.users, channels=names.channels, groups=names.groups)
    escaped = esc(raw).replace("\n", "<br>")
    return escaped if o.get("emoji") is False else replace_emoji(escaped)


def plain_text(obj: object) -> str:
    """A text object's text as plain (unescaped) text, for attributes."""
    if isinstance(obj, str):
        return obj
    o = as_dict(obj)
    raw = as_str(o.get("text"))
    return unslack(raw) if o.get("type") == "mrkdwn" else raw


class BlockContext:
    """What an element of a block renders with: the name maps, its block id, its message's ts."""

    def __init__(self, names: Names, block_id: str, message_ts: str) -> None:
        self.names = names
        self.block_id = block_id
        self.message_ts = message_ts

    def data(self, el: Mapping[str, Any]) -> str:
        return html_attrs(
            data_action_id=as_str(el.get("action_id")),
            data_block_id=self.block_id,
            data_message_ts=self.message_ts,
        )


def _confirm(confirm: object, names: Names) -> tuple[str, str]:
    """A confirm dialog: (data attributes, a `<template>`), or empty strings."""
    c = as_dict(confirm)
    if not c:
        return "", ""
    style = as_str(c.get("style"))
    attrs = html_attrs(
        data_confirm=True,
        data_confirm_title=plain_text(c.get("title")),
        data_confirm_text=plain_text(c.get("text")),
        data_confirm_confirm=plain_text(c.get("confirm")) or "Yes",
        data_confirm_deny=plain_text(c.get("deny")) or "Cancel",
        data_confirm_style=style,
    )
    go = "bk-button bk-confirm-yes" + (" bk-danger" if style == "danger" else " bk-primary")
    template = (
        f'<template class="bk-confirm"{html_attrs(data_style=style)}>'
        f'<div class="bk-dialog" role="dialog">'
        f'<div class="bk-dialog-title">{render_text(c.get("title"), names)}</div>'
        f'<div class="bk-dialog-text">{render_text(c.get("text"), names)}</div>'
        f'<div class="bk-dialog-buttons">'
        f'<button class="bk-button bk-confirm-no">{render_text(c.get("deny") or "Cancel", names)}'
        f"</button>"
        f'<button class="{go}">{render_text(c.get("confirm") or "Yes", names)}</button>'
        f"</div></div></template>"
    )
    return attrs, template


def _button(el: Mapping[str, Any], ctx: BlockContext) -> str:
    style = as_str(el.get("style"))
    cls = "bk-button" + (f" bk-{style}" if style in ("primary", "danger") else "")
    attrs = ctx.data(el) + html_attrs(data_value=as_str(el.get("value")))
    confirm_attrs, template = _confirm(el.get("confirm"), ctx.names)
    label = render_text(el.get("text"), ctx.names)
    url = safe_url(as_str(el.get("url")))
    if url is not None:
        return (
            f'<a class="{cls} bk-url-button"{html_attrs(href=url)} target="_blank" '
            f'rel="noopener noreferrer"{attrs}{confirm_attrs}>{label}</a>{template}'
        )
    return f'<button type="button" class="{cls}"{attrs}{confirm_attrs}>{label}</button>{template}'


def _option_label(opt: Mapping[str, Any], names: Names) -> str:
    return render_text(opt.get("text"), names)


def _select(el: Mapping[str, Any], ctx: BlockContext) -> str:
    kind = as_str(el.get("type"))
    multi = kind.startswith("multi_")
    initial = [as_dict(o) for o in as_list(el.get("initial_options"))]
    if el.get("initial_option"):
        initial.append(as_dict(el.get("initial_option")))
    chosen = {as_str(o.get("value")) for o in initial}

    def option(o: Mapping[str, Any]) -> str:
        value = as_str(o.get("value"))
        return (
            f"<option{html_attrs(value=value, selected=value in chosen)}>"
            f"{esc(plain_text(o.get('text')))}</option>"
        )

    body = ""
    placeholder = plain_text(el.get("placeholder"))
    if not multi:
        body += (
            f'<option value=""{html_attrs(selected=not chosen)} disabled>'
            f"{esc(placeholder)}</option>"
        )
    for o in map(as_dict, as_list(el.get("options"))):
        body += option(o)
    for group in map(as_dict, as_list(el.get("option_groups"))):
        inner = "".join(option(as_dict(o)) for o in as_list(group.get("options")))
        body += f"<optgroup{html_attrs(label=plain_text(group.get('label')))}>{inner}</optgroup>"
    if kind not in ("static_select", "multi_static_select"):  # users, channels, external…
        for o in initial:
            if as_str(o.get("value")) and not any(
                as_dict(x).get("value") == o.get("value") for x in as_list(el.get("options"))
            ):
                body += option(o)
        for key in ("initial_user", "initial_conversation", "initial_channel"):
            if as_str(el.get(key)):
                value = as_str(el.get(key))
                body += f"<option{html_attrs(value=value)} selected>{esc(value)}</option>"
    return (
        f'<select class="bk-select bk-{esc(kind)}"{ctx.data(el)}'
        f"{html_attrs(multiple=multi, data_placeholder=placeholder)}>{body}</select>"
    )


def _overflow(el: Mapping[str, Any], ctx: BlockContext) -> str:
    items = ""
    for o in map(as_dict, as_list(el.get("options"))):
        label = _option_label(o, ctx.names)
        url = safe_url(as_str(o.get("url")))
        if url is not None:
            items += (
                f'<a class="bk-overflow-item"{html_attrs(href=url)} target="_blank" '
                f'rel="noopener noreferrer">{label}</a>'
            )
        else:
            items += (
                f'<button type="button" class="bk-overflow-item"{ctx.data(el)}'
                f"{html_attrs(data_value=as_str(o.get('value')))}>{label}</button>"
            )
    confirm_attrs, template = _confirm(el.get("confirm"), ctx.names)
    return (
        f'<details class="bk-overflow"{ctx.data(el)}{confirm_attrs}>'
        f'<summary class="bk-overflow-button" aria-label="More actions">⋯</summary>'
        f'<div class="bk-overflow-menu">{items}</div></details>{template}'
    )


def _valid_date(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return ""


def _picker(el: Mapping[str, Any], ctx: BlockContext) -> str:
    kind = as_str(el.get("type"))
    if kind == "datepicker":
        kind_attr, value = "date", _valid_date(as_str(el.get("initial_date")))
    elif kind == "timepicker":
        time = as_str(el.get("initial_time"))
        kind_attr, value = "time", time if re.fullmatch(r"\d\d:\d\d", time) else ""
    else:
        kind_attr, value = "datetime-local", ""
        stamp = el.get("initial_date_time")
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            try:
                value = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M")
            except (OverflowError, OSError, ValueError):
                value = ""
    return (
        f'<input class="bk-picker bk-{esc(kind)}"{html_attrs(type=kind_attr, value=value)}'
        f"{ctx.data(el)}{html_attrs(placeholder=plain_text(el.get('placeholder')))}>"
    )


def _text_input(el: Mapping[str, Any], ctx: BlockContext) -> str:
    kind = as_str(el.get("type"))
    value = str(el.get("initial_value") or "")
    placeholder = plain_text(el.get("placeholder"))
    if kind == "plain_text_input" and el.get("multiline"):
        return (
            f'<textarea class="bk-input bk-multiline"{ctx.data(el)}'
            f'{html_attrs(placeholder=placeholder)} rows="4">{esc(value)}</textarea>'
        )
    input_type = {
        "email_text_input": "email",
        "url_text_input": "url",
        "number_input": "number",
    }.get(kind, "text")
    return (
        '<input class="bk-input"'
        f"{html_attrs(type=input_type, value=value, placeholder=placeholder)}"
        f"{ctx.data(el)}>"
    )


def _choices(el: Mapping[str, Any], ctx: BlockContext) -> str:
    kind = as_str(el.get("type"))
    radio = kind == "radio_buttons"
    initial = [as_dict(o) for o in as_list(el.get("initial_options"))]
    if el.get("initial_option"):
        initial.append(as_dict(el.get("initial_option")))
    chosen = {as_str(o.get("value")) for o in initial}
    name = as_str(el.get("action_id")) or f"{ctx.block_id}-choice"
    items = ""
    for o in map(as_dict, as_list(el.get("options"))):
        value = as_str(o.get("value"))
        description = ""
        if o.get("description"):
            description = (
                f'<span class="bk-choice-description">'
                f"{render_text(o.get('description'), ctx.names)}</span>"
            )
        items += (
            f'<label class="bk-choice"><input'
            f"{html_attrs(type='radio' if radio else 'checkbox', name=name, value=value)}"
            f"{html_attrs(checked=value in chosen)}>"
            f'<span class="bk-choice-text">{_option_label(o, ctx.names)}</span>'
            f"{description}</label>"
        )
    return f'<div class="bk-choices bk-{esc(kind)}"{ctx.data(el)}>{items}</div>'


def render_image_element(el: Mapping[str, Any], cls: str = "bk-image-element") -> str:
    """An image element (or an image block's image): only http/https images load, another
    shows a stand-in titled with its alt text."""
    src = safe_url(as_str(el.get("image_url")), IMAGE_SCHEMES)
    alt = as_str(el.get("alt_text"))
    if src is None:
        return f'<span class="{cls} bk-image-missing" title="{esc(alt)}">🖼️</span>'
    return f'<img class="{cls}"{html_attrs(src=src)} alt="{esc(alt)}" loading="lazy">'


_SELECTS = frozenset(
    f"{multi}{kind}_select"
    for multi in ("", "multi_")
    for kind in ("static", "external", "users", "conversations", "channels")
)


def render_element(el: object, ctx: BlockContext) -> str:
    """One interactive or context element."""
    e = as_dict(el)
    kind = as_str(e.get("type")) or "?"
    if kind == "button":
        return _button(e, ctx)
    if kind in _SELECTS:
        return _select(e, ctx)
    if kind == "overflow":
        return _overflow(e, ctx)
    if kind in ("datepicker", "timepicker", "datetimepicker"):
        return _picker(e, ctx)
    if kind in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
        return _text_input(e, ctx)
    if kind in ("radio_buttons", "checkboxes"):
        return _choices(e, ctx)
    if kind == "image":
        return render_image_element(e)
    if kind in ("mrkdwn", "plain_text"):
        return f'<span class="bk-context-text">{render_text(e, ctx.names)}</span>'
    return unsupported("element", kind, inline=True)
