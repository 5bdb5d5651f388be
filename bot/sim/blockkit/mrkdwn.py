"""Slack mrkdwn → escaped inline HTML (`render_mrkdwn`).

*bold*, _italic_, ~strike~, `code`, ```pre```, > quotes, <url|text> links, mentions of
users, channels and user groups (resolved through `Names`), <!here> and :emoji:. Code,
pre blocks, links and mentions are rendered first and parked in private-use characters
("holes") so that emphasis never reaches inside them; every piece of outside text is
escaped on the way. `render_angle` (one `<…>`) is shared with the rich-text renderer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot.sim.blockkit.emoji import replace_emoji
from bot.sim.blockkit.markup import EMPTY, esc, html_attrs, safe_url, unslack

__all__ = ["Names", "render_angle", "render_mrkdwn"]

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


class Names:
    """The display names mentions resolve through: user, channel and user-group ids → names."""

    def __init__(
        self, users: Mapping[str, str], channels: Mapping[str, str], groups: Mapping[str, str]
    ) -> None:
        self.users = users
        self.channels = channels
        self.groups = groups


def render_angle(inner: str, names: Names) -> str:
    """One `<…>` of mrkdwn: a mention, a special, or a link (HTML)."""
    target, _, label = inner.partition("|")
    label = unslack(label)
    if target.startswith("@"):
        uid = target[1:]
        name = names.users.get(uid) or label.lstrip("@") or uid
        return f'<span class="bk-mention"{html_attrs(data_user_id=uid)}>@{esc(name)}</span>'
    if target.startswith("#"):
        cid = target[1:]
        name = names.channels.get(cid) or label.lstrip("#") or cid
        return f'<span class="bk-channel"{html_attrs(data_channel_id=cid)}>#{esc(name)}</span>'
    if target.startswith("!subteam^"):
        sid = target[len("!subteam^") :]
        name = names.groups.get(sid) or label.lstrip("@") or sid
        return (
            f'<span class="bk-mention bk-group"{html_attrs(data_group_id=sid)}>@{esc(name)}</span>'
        )
    if target.startswith("!"):
        word = target[1:].split("^", 1)[0]
        if word in ("here", "channel", "everyone"):
            return f'<span class="bk-mention bk-broadcast">@{esc(label or word)}</span>'
        return f'<span class="bk-special">{esc(label or word)}</span>'
    url = safe_url(target)
    shown = label or unslack(target)
    if url is None:
        return replace_emoji(esc(shown))
    return (
        f'<a class="bk-link"{html_attrs(href=url)} target="_blank" rel="noopener noreferrer">'
        f"{replace_emoji(esc(shown))}</a>"
    )


def _inline(text: str, names: Names, holes: list[str]) -> str:
    """Text without pre blocks: code, links and mentions into holes, then emphasis."""

    def hole(rendered: str) -> str:
        holes.append(rendered)
        return chr(0xE000 + len(holes) - 1)

    text = _CODE_RE.sub(
        lambda m: hole(f'<code class="bk-code">{esc(unslack(m.group(1)))}</code>'), text
    )
    text = _ANGLE_RE.sub(lambda m: hole(render_angle(m.group(1), names)), text)

    def bare(m: re.Match[str]) -> str:
        raw = m.group(0)
        trail = ""
        while raw and raw[-1] in ".,;:!?)":
            raw, trail = raw[:-1], raw[-1] + trail
        return (hole(render_angle(raw, names)) if raw else "") + trail

    text = _BARE_URL_RE.sub(bare, text)
    out = replace_emoji(esc(unslack(text)))
    for pattern, tag in _STYLES:
        out = pattern.sub(rf"<{tag}>\1</{tag}>", out)
    return out


def _fill(text: str, holes: list[str]) -> str:
    """`text` with each hole put back; a hole holding holes (a link whose label is `code`:
    the code's hole was made first, so a hole only holds lower ones) is filled too."""

    def put(m: re.Match[str]) -> str:
        index = ord(m.group(0)) - 0xE000
        return _fill(holes[index], holes[:index]) if index < len(holes) else ""

    return _HOLE_RE.sub(put, text)


def render_mrkdwn(
    text: str,
    *,
    users: Mapping[str, str] = EMPTY,
    channels: Mapping[str, str] = EMPTY,
    groups: Mapping[str, str] = EMPTY,
) -> str:
    """Slack mrkdwn as escaped HTML: *bold*, _italic_, ~strike~, `code`, ```pre```,
    > quotes, <url|text> links (http/https/mailto only), <@U…>, <#C…|name>,
    <!subteam^S…|@handle>, <!here> (resolved through the name maps), :emoji:."""
    if not isinstance(text, str):
        text = str(text)
    names = Names(users, channels, groups)
    text = _HOLE_RE.sub("", text)  # private-use characters are our placeholders
    holes: list[str] = []

    def pre(m: re.Match[str]) -> str:
        holes.append(f'<pre class="bk-pre">{esc(unslack(m.group(1).strip(chr(10))))}</pre>')
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
