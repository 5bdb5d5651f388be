"""Block Kit → HTML, for the demo workbench (a Slack-like page).

Faithful enough that every card rollbot builds renders without placeholders, and safe:
every piece of text is HTML-escaped, only http/https/mailto URLs become links (and only
http/https images load), and malformed input never raises.

    render_mrkdwn(text, users=, channels=, groups=)     Slack mrkdwn → escaped inline HTML
    render_blocks(blocks, …, message_ts=)               a list of blocks
    render_message(message, …, thread_count=)           one message as the sim records it
    render_view(view, …)                                a modal (views.open) or a home tab
    UNKNOWN_CLASS                                       the class of the placeholder of an
                                                        unknown block or element
    CSS                                                 a small Slack-like stylesheet

Buttons render as `<button class="bk-button bk-primary|bk-danger" data-action-id=…
data-value=… data-block-id=… data-message-ts=…>`; a confirm dialog goes into
`data-confirm-*` attributes (plain text) and a `<template class="bk-confirm">` right
after the button (rendered HTML), for the page's script to show. URL buttons are links
(`target=_blank rel=noopener`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

__all__ = [
    "CSS",
    "EMOJI",
    "UNKNOWN_CLASS",
    "render_blocks",
    "render_message",
    "render_mrkdwn",
    "render_view",
]

UNKNOWN_CLASS = "bk-unknown"
_EMPTY: Mapping[str, str] = {}

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

_LINK_SCHEMES = ("http://", "https://", "mailto:")
_IMAGE_SCHEMES = ("http://", "https://")
_VOID = frozenset({"br", "hr", "img", "input"})


# ── small helpers ────────────────────────────────────────────────────────────


def _esc(value: object) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def _attrs(**attrs: object) -> str:
    """` name="value"` pairs (data_action_id → data-action-id); None and False omitted."""
    out = []
    for name, value in attrs.items():
        if value is None or value is False or value == "":
            continue
        key = name.rstrip("_").replace("_", "-")
        out.append(f" {key}" if value is True else f' {key}="{_esc(value)}"')
    return "".join(out)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _unslack(text: str) -> str:
    """Slack's three escapes back to characters (before escaping for HTML)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _safe_url(url: str, schemes: tuple[str, ...] = _LINK_SCHEMES) -> str | None:
    """The URL when it is a usable link with one of `schemes`, else None."""
    url = _unslack(url).strip()
    if not url or len(url) > 3000 or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    return url if url.lower().startswith(schemes) else None


def _emoji(escaped: str) -> str:
    return _EMOJI_RE.sub(lambda m: EMOJI[m.group(1)], escaped)


def _placeholder(kind: str, what: object, *, inline: bool = False) -> str:
    tag = "span" if inline else "div"
    return f'<{tag} class="{UNKNOWN_CLASS}">unsupported {_esc(kind)}: {_esc(what)}</{tag}>'


# ── mrkdwn ───────────────────────────────────────────────────────────────────

_PRE_RE = re.compile(r"```(.*?)```", re.DOTALL)
_CODE_RE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_ANGLE_RE = re.compile(r"<([^<>\n]+)>")
_BARE_URL_RE = re.compile(r"(?<![\w/@.])(?:https?://|mailto:)[^\s<>|\"']+")
_HOLE_RE = re.compile("[\ue000-\uf8ff]")
_STYLES = (  # a marker opens and closes only next to a space, punctuation or another marker
    (re.compile(r"(?<![^\W_])(?<!\*)\*(?=\S)([^*\n]+?)(?<=\S)\*(?![^\W_])(?!\*)"), "b"),
    (re.compile(r"(?<![^\W_])(?<!_)_(?=\S)([^_\n]+?)(?<=\S)_(?![^\W_])(?!_)"), "i"),
    (re.compile(r"(?<![^\W_])(?<!~)~(?=\S)([^~\n]+?)(?<=\S)~(?![^\W_])(?!~)"), "s"),
)


class _Names:
    def __init__(
        self, users: Mapping[str, str], channels: Mapping[str, str], groups: Mapping[str, str]
    ) -> None:
        self.users = users
        self.channels = channels
        self.groups = groups


def _angle(inner: str, names: _Names) -> str:
    """One `<…>` of mrkdwn: a mention, a special, or a link (HTML)."""
    target, _, label = inner.partition("|")
    label = _unslack(label)
    if target.startswith("@"):
        uid = target[1:]
        name = names.users.get(uid) or label.lstrip("@") or uid
        return f'<span class="bk-mention"{_attrs(data_user_id=uid)}>@{_esc(name)}</span>'
    if target.startswith("#"):
        cid = target[1:]
        name = names.channels.get(cid) or label.lstrip("#") or cid
        return f'<span class="bk-channel"{_attrs(data_channel_id=cid)}>#{_esc(name)}</span>'
    if target.startswith("!subteam^"):
        sid = target[len("!subteam^") :]
        name = names.groups.get(sid) or label.lstrip("@") or sid
        return f'<span class="bk-mention bk-group"{_attrs(data_group_id=sid)}>@{_esc(name)}</span>'
    if target.startswith("!"):
        word = target[1:].split("^", 1)[0]
        if word in ("here", "channel", "everyone"):
            return f'<span class="bk-mention bk-broadcast">@{_esc(label or word)}</span>'
        return f'<span class="bk-special">{_esc(label or word)}</span>'
    url = _safe_url(target)
    shown = label or _unslack(target)
    if url is None:
        return _emoji(_esc(shown))
    return (
        f'<a class="bk-link"{_attrs(href=url)} target="_blank" rel="noopener noreferrer">'
        f"{_emoji(_esc(shown))}</a>"
    )


def _inline(text: str, names: _Names, holes: list[str]) -> str:
    """Text without pre blocks: code, links and mentions into holes, then emphasis."""

    def hole(rendered: str) -> str:
        holes.append(rendered)
        return chr(0xE000 + len(holes) - 1)

    text = _CODE_RE.sub(
        lambda m: hole(f'<code class="bk-code">{_esc(_unslack(m.group(1)))}</code>'), text
    )
    text = _ANGLE_RE.sub(lambda m: hole(_angle(m.group(1), names)), text)

    def bare(m: re.Match[str]) -> str:
        raw = m.group(0)
        trail = ""
        while raw and raw[-1] in ".,;:!?)":
            raw, trail = raw[:-1], raw[-1] + trail
        return (hole(_angle(raw, names)) if raw else "") + trail

    text = _BARE_URL_RE.sub(bare, text)
    out = _emoji(_esc(_unslack(text)))
    for pattern, tag in _STYLES:
        out = pattern.sub(rf"<{tag}>\1</{tag}>", out)
    return out


def _fill(text: str, holes: list[str]) -> str:
    def put(m: re.Match[str]) -> str:
        index = ord(m.group(0)) - 0xE000
        return holes[index] if index < len(holes) else ""

    return _HOLE_RE.sub(put, text)


def render_mrkdwn(
    text: str,
    *,
    users: Mapping[str, str] = _EMPTY,
    channels: Mapping[str, str] = _EMPTY,
    groups: Mapping[str, str] = _EMPTY,
) -> str:
    """Slack mrkdwn as escaped HTML: *bold*, _italic_, ~strike~, `code`, ```pre```,
    > quotes, <url|text> links (http/https/mailto only), <@U…>, <#C…|name>,
    <!subteam^S…|@handle>, <!here> (resolved through the name maps), :emoji:."""
    if not isinstance(text, str):
        text = str(text)
    names = _Names(users, channels, groups)
    text = _HOLE_RE.sub("", text)  # private-use characters are our placeholders
    holes: list[str] = []

    def pre(m: re.Match[str]) -> str:
        holes.append(f'<pre class="bk-pre">{_esc(_unslack(m.group(1).strip(chr(10))))}</pre>')
        return chr(0xE000 + len(holes) - 1)

    text = _PRE_RE.sub(pre, text)
    lines: list[str] = []
    quote: list[str] = []
    for line in text.split("\n"):
        quoted = re.match(r"^(?:>|&gt;) ?", line)
        if quoted:
            quote.append(_inline(line[quoted.end() :], names, holes))
            continue
        if quote:
            lines.append(f'<blockquote class="bk-quote">{"<br>".join(quote)}</blockquote>')
            quote = []
        lines.append(_inline(line, names, holes))
    if quote:
        lines.append(f'<blockquote class="bk-quote">{"<br>".join(quote)}</blockquote>')
    joined = ""
    for i, line in enumerate(lines):
        if i and not line.startswith("<blockquote") and not lines[i - 1].startswith("<blockq"):
            joined += "<br>"
        joined += line
    return _fill(joined, holes)


def _text(obj: object, names: _Names) -> str:
    """A text object (plain_text or mrkdwn) as HTML; a bare string as plain text."""
    if isinstance(obj, str):
        return _esc(obj).replace("\n", "<br>")
    o = _dict(obj)
    raw = _str(o.get("text"))
    if o.get("type") == "mrkdwn":
        return render_mrkdwn(raw, users=names.users, channels=names.channels, groups=names.groups)
    escaped = _esc(raw).replace("\n", "<br>")
    return escaped if o.get("emoji") is False else _emoji(escaped)


def _plain(obj: object) -> str:
    """A text object's text as plain (unescaped) text, for attributes."""
    if isinstance(obj, str):
        return obj
    o = _dict(obj)
    raw = _str(o.get("text"))
    return _unslack(raw) if o.get("type") == "mrkdwn" else raw


# ── elements ─────────────────────────────────────────────────────────────────


class _Ctx:
    def __init__(self, names: _Names, block_id: str, message_ts: str) -> None:
        self.names = names
        self.block_id = block_id
        self.message_ts = message_ts

    def data(self, el: Mapping[str, Any]) -> str:
        return _attrs(
            data_action_id=_str(el.get("action_id")),
            data_block_id=self.block_id,
            data_message_ts=self.message_ts,
        )


def _confirm(confirm: object, names: _Names) -> tuple[str, str]:
    """A confirm dialog: (data attributes, a `<template>`), or empty strings."""
    c = _dict(confirm)
    if not c:
        return "", ""
    style = _str(c.get("style"))
    attrs = _attrs(
        data_confirm=True,
        data_confirm_title=_plain(c.get("title")),
        data_confirm_text=_plain(c.get("text")),
        data_confirm_confirm=_plain(c.get("confirm")) or "Yes",
        data_confirm_deny=_plain(c.get("deny")) or "Cancel",
        data_confirm_style=style,
    )
    go = "bk-button bk-confirm-yes" + (" bk-danger" if style == "danger" else " bk-primary")
    template = (
        f'<template class="bk-confirm"{_attrs(data_style=style)}>'
        f'<div class="bk-dialog" role="dialog">'
        f'<div class="bk-dialog-title">{_text(c.get("title"), names)}</div>'
        f'<div class="bk-dialog-text">{_text(c.get("text"), names)}</div>'
        f'<div class="bk-dialog-buttons">'
        f'<button class="bk-button bk-confirm-no">{_text(c.get("deny") or "Cancel", names)}'
        f"</button>"
        f'<button class="{go}">{_text(c.get("confirm") or "Yes", names)}</button>'
        f"</div></div></template>"
    )
    return attrs, template


def _button(el: Mapping[str, Any], ctx: _Ctx) -> str:
    style = _str(el.get("style"))
    cls = "bk-button" + (f" bk-{style}" if style in ("primary", "danger") else "")
    attrs = ctx.data(el) + _attrs(data_value=_str(el.get("value")))
    confirm_attrs, template = _confirm(el.get("confirm"), ctx.names)
    label = _text(el.get("text"), ctx.names)
    url = _safe_url(_str(el.get("url")))
    if url is not None:
        return (
            f'<a class="{cls} bk-url-button"{_attrs(href=url)} target="_blank" '
            f'rel="noopener noreferrer"{attrs}{confirm_attrs}>{label}</a>{template}'
        )
    return f'<button type="button" class="{cls}"{attrs}{confirm_attrs}>{label}</button>{template}'


def _option_label(opt: Mapping[str, Any], names: _Names) -> str:
    return _text(opt.get("text"), names)


def _select(el: Mapping[str, Any], ctx: _Ctx) -> str:
    kind = _str(el.get("type"))
    multi = kind.startswith("multi_")
    initial = [_dict(o) for o in _list(el.get("initial_options"))]
    if el.get("initial_option"):
        initial.append(_dict(el.get("initial_option")))
    chosen = {_str(o.get("value")) for o in initial}

    def option(o: Mapping[str, Any]) -> str:
        value = _str(o.get("value"))
        return (
            f"<option{_attrs(value=value, selected=value in chosen)}>"
            f"{_esc(_plain(o.get('text')))}</option>"
        )

    body = ""
    placeholder = _plain(el.get("placeholder"))
    if not multi:
        body += (
            f'<option value=""{_attrs(selected=not chosen)} disabled>{_esc(placeholder)}</option>'
        )
    for o in map(_dict, _list(el.get("options"))):
        body += option(o)
    for group in map(_dict, _list(el.get("option_groups"))):
        inner = "".join(option(_dict(o)) for o in _list(group.get("options")))
        body += f"<optgroup{_attrs(label=_plain(group.get('label')))}>{inner}</optgroup>"
    if kind not in ("static_select", "multi_static_select"):  # users, channels, external…
        for o in initial:
            if _str(o.get("value")) and not any(
                _dict(x).get("value") == o.get("value") for x in _list(el.get("options"))
            ):
                body += option(o)
        for key in ("initial_user", "initial_conversation", "initial_channel"):
            if _str(el.get(key)):
                value = _str(el.get(key))
                body += f"<option{_attrs(value=value)} selected>{_esc(value)}</option>"
    return (
        f'<select class="bk-select bk-{_esc(kind)}"{ctx.data(el)}'
        f"{_attrs(multiple=multi, data_placeholder=placeholder)}>{body}</select>"
    )


def _overflow(el: Mapping[str, Any], ctx: _Ctx) -> str:
    items = ""
    for o in map(_dict, _list(el.get("options"))):
        label = _option_label(o, ctx.names)
        url = _safe_url(_str(o.get("url")))
        if url is not None:
            items += (
                f'<a class="bk-overflow-item"{_attrs(href=url)} target="_blank" '
                f'rel="noopener noreferrer">{label}</a>'
            )
        else:
            items += (
                f'<button type="button" class="bk-overflow-item"{ctx.data(el)}'
                f"{_attrs(data_value=_str(o.get('value')))}>{label}</button>"
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


def _picker(el: Mapping[str, Any], ctx: _Ctx) -> str:
    kind = _str(el.get("type"))
    if kind == "datepicker":
        kind_attr, value = "date", _valid_date(_str(el.get("initial_date")))
    elif kind == "timepicker":
        time = _str(el.get("initial_time"))
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
        f'<input class="bk-picker bk-{_esc(kind)}"{_attrs(type=kind_attr, value=value)}'
        f"{ctx.data(el)}{_attrs(placeholder=_plain(el.get('placeholder')))}>"
    )


def _text_input(el: Mapping[str, Any], ctx: _Ctx) -> str:
    kind = _str(el.get("type"))
    value = str(el.get("initial_value") or "")
    placeholder = _plain(el.get("placeholder"))
    if kind == "plain_text_input" and el.get("multiline"):
        return (
            f'<textarea class="bk-input bk-multiline"{ctx.data(el)}'
            f'{_attrs(placeholder=placeholder)} rows="4">{_esc(value)}</textarea>'
        )
    input_type = {
        "email_text_input": "email",
        "url_text_input": "url",
        "number_input": "number",
    }.get(kind, "text")
    return (
        f'<input class="bk-input"{_attrs(type=input_type, value=value, placeholder=placeholder)}'
        f"{ctx.data(el)}>"
    )


def _choices(el: Mapping[str, Any], ctx: _Ctx) -> str:
    kind = _str(el.get("type"))
    radio = kind == "radio_buttons"
    initial = [_dict(o) for o in _list(el.get("initial_options"))]
    if el.get("initial_option"):
        initial.append(_dict(el.get("initial_option")))
    chosen = {_str(o.get("value")) for o in initial}
    name = _str(el.get("action_id")) or f"{ctx.block_id}-choice"
    items = ""
    for o in map(_dict, _list(el.get("options"))):
        value = _str(o.get("value"))
        description = ""
        if o.get("description"):
            description = (
                f'<span class="bk-choice-description">'
                f"{_text(o.get('description'), ctx.names)}</span>"
            )
        items += (
            f'<label class="bk-choice"><input'
            f"{_attrs(type='radio' if radio else 'checkbox', name=name, value=value)}"
            f"{_attrs(checked=value in chosen)}>"
            f'<span class="bk-choice-text">{_option_label(o, ctx.names)}</span>'
            f"{description}</label>"
        )
    return f'<div class="bk-choices bk-{_esc(kind)}"{ctx.data(el)}>{items}</div>'


def _image_element(el: Mapping[str, Any], cls: str = "bk-image-element") -> str:
    src = _safe_url(_str(el.get("image_url")), _IMAGE_SCHEMES)
    alt = _str(el.get("alt_text"))
    if src is None:
        return f'<span class="{cls} bk-image-missing" title="{_esc(alt)}">🖼️</span>'
    return f'<img class="{cls}"{_attrs(src=src)} alt="{_esc(alt)}" loading="lazy">'


_SELECTS = frozenset(
    f"{multi}{kind}_select"
    for multi in ("", "multi_")
    for kind in ("static", "external", "users", "conversations", "channels")
)


def _element(el: object, ctx: _Ctx) -> str:
    """One interactive or context element."""
    e = _dict(el)
    kind = _str(e.get("type")) or "?"
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
        return _image_element(e)
    if kind in ("mrkdwn", "plain_text"):
        return f'<span class="bk-context-text">{_text(e, ctx.names)}</span>'
    return _placeholder("element", kind, inline=True)


# ── rich text ────────────────────────────────────────────────────────────────


def _rich_inline(el: object, names: _Names) -> str:
    e = _dict(el)
    kind = _str(e.get("type"))
    style = _dict(e.get("style"))
    if kind == "text":
        out = _esc(_str(e.get("text"))).replace("\n", "<br>")
    elif kind == "link":
        url = _safe_url(_str(e.get("url")))
        label = _esc(_str(e.get("text")) or _str(e.get("url")))
        out = (
            f'<a class="bk-link"{_attrs(href=url)} target="_blank" rel="noopener noreferrer">'
            f"{label}</a>"
            if url
            else label
        )
    elif kind == "emoji":
        name = _str(e.get("name"))
        out = EMOJI.get(name) or _esc(f":{name}:")
    elif kind == "user":
        out = _angle(f"@{_str(e.get('user_id'))}", names)
    elif kind == "channel":
        out = _angle(f"#{_str(e.get('channel_id'))}", names)
    elif kind == "usergroup":
        out = _angle(f"!subteam^{_str(e.get('usergroup_id'))}", names)
    elif kind == "broadcast":
        out = _angle(f"!{_str(e.get('range')) or 'here'}", names)
    elif kind == "date":
        out = f'<span class="bk-date">{_esc(_str(e.get("fallback")) or e.get("timestamp"))}</span>'
    else:
        return _placeholder("element", kind or "?", inline=True)
    for flag, tag in (("code", "code"), ("strike", "s"), ("italic", "i"), ("bold", "b")):
        if style.get(flag):
            out = f"<{tag}>{out}</{tag}>"
    return out


def _rich(el: object, names: _Names) -> str:
    e = _dict(el)
    kind = _str(e.get("type"))
    inner = "".join(_rich_inline(x, names) for x in _list(e.get("elements")))
    if kind == "rich_text_section":
        return f'<div class="bk-rich-section">{inner}</div>'
    if kind == "rich_text_preformatted":
        return f'<pre class="bk-pre">{inner}</pre>'
    if kind == "rich_text_quote":
        return f'<blockquote class="bk-quote">{inner}</blockquote>'
    if kind == "rich_text_list":
        tag = "ol" if e.get("style") == "ordered" else "ul"
        indent = e.get("indent") if isinstance(e.get("indent"), int) else 0
        items = "".join(f"<li>{_rich(x, names)}</li>" for x in _list(e.get("elements")))
        return f'<{tag} class="bk-rich-list"{_attrs(data_indent=indent or None)}>{items}</{tag}>'
    return _placeholder("element", kind or "?")


# ── blocks ───────────────────────────────────────────────────────────────────


def _section(b: Mapping[str, Any], ctx: _Ctx) -> str:
    body = ""
    if b.get("text"):
        body += f'<div class="bk-text">{_text(b.get("text"), ctx.names)}</div>'
    fields = _list(b.get("fields"))
    if fields:
        cells = "".join(f'<div class="bk-field">{_text(f, ctx.names)}</div>' for f in fields)
        body += f'<div class="bk-fields">{cells}</div>'
    accessory = ""
    if b.get("accessory"):
        accessory = f'<div class="bk-accessory">{_element(b.get("accessory"), ctx)}</div>'
    return f'<div class="bk-section-body">{body}</div>{accessory}'


def _context(b: Mapping[str, Any], ctx: _Ctx) -> str:
    out = ""
    for el in _list(b.get("elements")):
        e = _dict(el)
        if e.get("type") == "image":
            out += _image_element(e, "bk-context-image")
        elif e.get("type") in ("mrkdwn", "plain_text"):
            out += f'<span class="bk-context-text">{_text(e, ctx.names)}</span>'
        else:
            out += _placeholder("element", e.get("type") or "?", inline=True)
    return out


def _image_block(b: Mapping[str, Any], ctx: _Ctx) -> str:
    title = ""
    if b.get("title"):
        title = (
            f'<figcaption class="bk-image-title">{_text(b.get("title"), ctx.names)}</figcaption>'
        )
    return f'<figure class="bk-figure">{title}{_image_element(b, "bk-image")}</figure>'


def _input(b: Mapping[str, Any], ctx: _Ctx) -> str:
    label = _text(b.get("label"), ctx.names)
    optional = ' <span class="bk-optional">(optional)</span>' if b.get("optional") else ""
    hint = ""
    if b.get("hint"):
        hint = f'<div class="bk-hint">{_text(b.get("hint"), ctx.names)}</div>'
    return (
        f'<label class="bk-label">{label}{optional}</label>'
        f'<div class="bk-input-element">{_element(b.get("element"), ctx)}</div>{hint}'
    )


_BLOCKS: dict[str, Callable[[Mapping[str, Any], _Ctx], str]] = {
    "header": lambda b, ctx: _text(b.get("text"), ctx.names),
    "section": _section,
    "context": _context,
    "divider": lambda b, ctx: "<hr>",
    "actions": lambda b, ctx: "".join(_element(el, ctx) for el in _list(b.get("elements"))),
    "image": _image_block,
    "input": _input,
    "rich_text": lambda b, ctx: "".join(_rich(el, ctx.names) for el in _list(b.get("elements"))),
}


def _block(block: object, names: _Names, message_ts: str) -> str:
    b = _dict(block)
    kind = _str(b.get("type"))
    render = _BLOCKS.get(kind)
    if render is None:
        return _placeholder("block", kind or "?")
    block_id = _str(b.get("block_id"))
    ctx = _Ctx(names, block_id, message_ts)
    try:
        inner = render(b, ctx)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError):
        return _placeholder("block", f"malformed {kind}")
    tag = "h3" if kind == "header" else "div"
    return f'<{tag} class="bk-block bk-{kind}"{_attrs(data_block_id=block_id)}>{inner}</{tag}>'


def render_blocks(
    blocks: Sequence[Mapping[str, Any]],
    *,
    users: Mapping[str, str] = _EMPTY,
    channels: Mapping[str, str] = _EMPTY,
    groups: Mapping[str, str] = _EMPTY,
    message_ts: str = "",
) -> str:
    """The blocks as HTML, one element per block; unknown ones as a placeholder."""
    names = _Names(users, channels, groups)
    items = _list(blocks) if not isinstance(blocks, str) else []
    inner = "".join(_block(b, names, str(message_ts or "")) for b in items)
    return f'<div class="bk-blocks">{inner}</div>'


# ── messages and views ───────────────────────────────────────────────────────


def _time(ts: object) -> tuple[str, str]:
    """(`14:03`, ISO datetime) of a Slack ts; empty strings when it is not one."""
    try:
        at = datetime.fromtimestamp(float(str(ts)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return "", ""
    return at.strftime("%H:%M"), at.isoformat()


def render_message(
    message: Mapping[str, Any],
    *,
    users: Mapping[str, str] = _EMPTY,
    channels: Mapping[str, str] = _EMPTY,
    groups: Mapping[str, str] = _EMPTY,
    thread_count: int = 0,
) -> str:
    """One message: avatar, author `rollbot`, time, its blocks (or its text when it has
    none), `(edited)`, and an `N replies` link when `thread_count`."""
    m = _dict(message)
    ts = str(m.get("ts") or "")
    thread_ts = str(m.get("thread_ts") or "")
    shown, iso = _time(ts)
    names = _Names(users, channels, groups)
    blocks = _list(m.get("blocks"))
    if blocks:
        body = render_blocks(blocks, users=users, channels=channels, groups=groups, message_ts=ts)
    else:
        body = (
            f'<div class="bk-blocks"><div class="bk-block bk-message-text">'
            f"{_text({'type': 'mrkdwn', 'text': _str(m.get('text'))}, names)}</div></div>"
        )
    meta = '<span class="bk-author">rollbot</span><span class="bk-app-badge">APP</span>'
    if shown:
        meta += f'<time class="bk-time"{_attrs(datetime=iso)}>{shown}</time>'
    if m.get("edited"):
        meta += '<span class="bk-edited">(edited)</span>'
    if m.get("via") == "chat.postEphemeral":
        meta += '<span class="bk-ephemeral">Only visible to you</span>'
    replies = ""
    if thread_count > 0:
        word = "reply" if thread_count == 1 else "replies"
        replies = (
            f'<a class="bk-replies" href="#thread-{_esc(thread_ts or ts)}"'
            f"{_attrs(data_thread_ts=thread_ts or ts)}>{thread_count:,} {word}</a>"
        )
    return (
        f'<div class="bk-message"{_attrs(data_ts=ts, data_thread_ts=thread_ts)}>'
        f'<div class="bk-avatar" aria-hidden="true">R</div>'
        f'<div class="bk-message-body"><div class="bk-meta">{meta}</div>{body}{replies}</div>'
        f"</div>"
    )


def render_view(
    view: Mapping[str, Any],
    *,
    users: Mapping[str, str] = _EMPTY,
    channels: Mapping[str, str] = _EMPTY,
    groups: Mapping[str, str] = _EMPTY,
) -> str:
    """A modal (title, blocks, close and submit buttons) or a home tab (its blocks)."""
    v = _dict(view)
    kind = _str(v.get("type"))
    names = _Names(users, channels, groups)
    blocks = render_blocks(_list(v.get("blocks")), users=users, channels=channels, groups=groups)
    attrs = _attrs(
        data_view_id=_str(v.get("id")),
        data_callback_id=_str(v.get("callback_id")),
        data_external_id=_str(v.get("external_id")),
    )
    if kind == "home":
        return f'<div class="bk-view bk-home"{attrs}>{blocks}</div>'
    if kind != "modal":
        return f'<div class="bk-view"{attrs}>{_placeholder("view", kind or "?")}{blocks}</div>'
    title = _text(v.get("title"), names) if v.get("title") else ""
    buttons = ""
    if v.get("close"):
        buttons += (
            f'<button type="button" class="bk-button bk-view-close">'
            f"{_text(v.get('close'), names)}</button>"
        )
    if v.get("submit"):
        buttons += (
            f'<button type="submit" class="bk-button bk-primary bk-view-submit">'
            f"{_text(v.get('submit'), names)}</button>"
        )
    return (
        f'<div class="bk-view bk-modal" role="dialog"{attrs}>'
        f'<div class="bk-modal-header"><h2 class="bk-modal-title">{title}</h2>'
        f'<button type="button" class="bk-modal-x" aria-label="Close">×</button></div>'
        f'<div class="bk-modal-body">{blocks}</div>'
        f'<div class="bk-modal-footer">{buttons}</div></div>'
    )


CSS = """
.bk-message{display:flex;gap:8px;padding:8px 20px;font:15px/1.46668 -apple-system,
  BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d1c1d}
.bk-message:hover{background:#f8f8f8}
.bk-avatar{flex:none;width:36px;height:36px;border-radius:6px;background:#4a154b;color:#fff;
  display:flex;align-items:center;justify-content:center;font-weight:700}
.bk-message-body{flex:1;min-width:0}
.bk-meta{display:flex;gap:6px;align-items:baseline}
.bk-author{font-weight:900}
.bk-app-badge{font-size:10px;font-weight:700;background:#e8e8e8;color:#616061;padding:0 3px;
  border-radius:2px}
.bk-time,.bk-edited,.bk-ephemeral{font-size:12px;color:#616061}
.bk-block{margin:4px 0;overflow-wrap:anywhere}
.bk-header{font-size:18px;font-weight:900;margin:8px 0 4px}
.bk-section{display:flex;gap:12px;align-items:flex-start}
.bk-section-body{flex:1;min-width:0}
.bk-fields{display:grid;grid-template-columns:1fr 1fr;gap:8px 16px;margin-top:4px}
.bk-context{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;font-size:13px;
  color:#616061}
.bk-context-image{width:20px;height:20px;border-radius:4px}
.bk-divider,.bk-block hr{border:0;border-top:1px solid #dddddd;margin:8px 0}
.bk-actions{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.bk-button{display:inline-flex;align-items:center;height:28px;padding:0 12px;font:inherit;
  font-size:13px;font-weight:700;border:1px solid #bbbabb;border-radius:4px;background:#fff;
  color:#1d1c1d;cursor:pointer;text-decoration:none}
.bk-button:hover{background:#f8f8f8}
.bk-primary{background:#007a5a;border-color:#007a5a;color:#fff}
.bk-primary:hover{background:#148567}
.bk-danger{background:#e01e5a;border-color:#e01e5a;color:#fff}
.bk-danger:hover{background:#e23067}
.bk-link{color:#1264a3;text-decoration:none}
.bk-link:hover{text-decoration:underline}
.bk-mention,.bk-channel{color:#1264a3;background:#e8f5fa;border-radius:3px;padding:0 2px}
.bk-code{font:12px Menlo,Consolas,monospace;color:#e01e5a;background:#f6f6f6;
  border:1px solid #dddddd;border-radius:3px;padding:1px 3px}
.bk-pre{font:12px/1.5 Menlo,Consolas,monospace;background:#f8f8f8;border:1px solid #dddddd;
  border-radius:4px;padding:8px;margin:4px 0;white-space:pre-wrap}
.bk-quote{border-left:4px solid #dddddd;margin:4px 0;padding:0 0 0 12px}
.bk-image{max-width:360px;max-height:360px;border-radius:8px}
.bk-image-element{width:88px;height:88px;border-radius:4px;object-fit:cover}
.bk-select,.bk-input,.bk-picker{font:inherit;font-size:14px;padding:4px 8px;
  border:1px solid #bbbabb;border-radius:4px;background:#fff}
.bk-input,.bk-multiline{width:100%;box-sizing:border-box}
.bk-overflow{position:relative;display:inline-block}
.bk-overflow>summary{list-style:none;cursor:pointer;border:1px solid #bbbabb;border-radius:4px;
  padding:0 8px}
.bk-overflow-menu{position:absolute;right:0;z-index:1;display:flex;flex-direction:column;
  background:#fff;border:1px solid #dddddd;border-radius:6px;padding:4px 0;min-width:160px}
.bk-overflow-item{font:inherit;text-align:left;border:0;background:none;padding:4px 16px;
  color:inherit;text-decoration:none;cursor:pointer}
.bk-overflow-item:hover{background:#1264a3;color:#fff}
.bk-choices{display:flex;flex-direction:column;gap:4px}
.bk-choice-description{display:block;color:#616061;font-size:13px;margin-left:22px}
.bk-label{display:block;font-weight:700;margin-bottom:4px}
.bk-optional,.bk-hint{color:#616061;font-weight:400;font-size:13px}
.bk-replies{display:inline-block;margin-top:4px;font-size:13px;font-weight:700;color:#1264a3;
  text-decoration:none}
.bk-view{font:15px/1.46668 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,
  sans-serif;color:#1d1c1d}
.bk-modal{width:520px;max-width:100%;background:#fff;border-radius:8px;
  box-shadow:0 0 0 1px rgba(29,28,29,.13),0 18px 48px rgba(0,0,0,.35)}
.bk-modal-header{display:flex;justify-content:space-between;align-items:center;
  padding:16px 24px;border-bottom:1px solid #dddddd}
.bk-modal-title{margin:0;font-size:22px;font-weight:900}
.bk-modal-x{border:0;background:none;font-size:20px;cursor:pointer}
.bk-modal-body{padding:16px 24px}
.bk-modal-footer{display:flex;justify-content:flex-end;gap:8px;padding:16px 24px;
  border-top:1px solid #dddddd}
.bk-home{padding:16px 24px}
.bk-unknown{color:#616061;background:#fff4e5;border:1px dashed #e8912d;border-radius:4px;
  padding:2px 6px;font-size:12px}
"""
