"""The surfaces Block Kit is shown on: a message (`render_message`) and a view (`render_view`).

A message is what the Slack sim records: the avatar, the author `rollbot`, the time, its
blocks (or its text as mrkdwn when it has none), `(edited)`, "Only visible to you" for an
ephemeral one, and an `N replies` link. A view is a modal (title, blocks, close and submit
buttons) or an App Home tab (its blocks); another type is a placeholder.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.sim.blockkit.blocks import render_blocks
from bot.sim.blockkit.elements import render_text
from bot.sim.blockkit.markup import EMPTY, as_dict, as_list, as_str, esc, html_attrs, unsupported
from bot.sim.blockkit.mrkdwn import Names

__all__ = ["render_message", "render_view"]


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
    users: Mapping[str, str] = EMPTY,
    channels: Mapping[str, str] = EMPTY,
    groups: Mapping[str, str] = EMPTY,
    thread_count: int = 0,
) -> str:
    """One message: avatar, author `rollbot`, time, its blocks (or its text when it has
    none), `(edited)`, and an `N replies` link when `thread_count`."""
    m = as_dict(message)
    ts = str(m.get("ts") or "")
    thread_ts = str(m.get("thread_ts") or "")
    shown, iso = _time(ts)
    names = Names(users, channels, groups)
    blocks = as_list(m.get("blocks"))
    if blocks:
        body = render_blocks(blocks, users=users, channels=channels, groups=groups, message_ts=ts)
    else:
        body = (
            f'<div class="bk-blocks"><div class="bk-block bk-message-text">'
            f"{render_text({'type': 'mrkdwn', 'text': as_str(m.get('text'))}, names)}</div></div>"
        )
    meta = '<span class="bk-author">rollbot</span><span class="bk-app-badge">APP</span>'
    if shown:
        meta += f'<time class="bk-time"{html_attrs(datetime=iso)}>{shown}</time>'
    if m.get("edited"):
        meta += '<span class="bk-edited">(edited)</span>'
    if m.get("via") == "chat.postEphemeral":
        meta += '<span class="bk-ephemeral">Only visible to you</span>'
    replies = ""
    if thread_count > 0:
        word = "reply" if thread_count == 1 else "replies"
        replies = (
            f'<a class="bk-replies" href="#thread-{esc(thread_ts or ts)}"'
            f"{html_attrs(data_thread_ts=thread_ts or ts)}>{thread_count:,} {word}</a>"
        )
    return (
        f'<div class="bk-message"{html_attrs(data_ts=ts, data_thread_ts=thread_ts)}>'
        f'<div class="bk-avatar" aria-hidden="true">R</div>'
        f'<div class="bk-message-body"><div class="bk-meta">{meta}</div>{body}{replies}</div>'
        f"</div>"
    )


def render_view(
    view: Mapping[str, Any],
    *,
    users: Mapping[str, str] = EMPTY,
    channels: Mapping[str, str] = EMPTY,
    groups: Mapping[str, str] = EMPTY,
) -> str:
    """A modal (title, blocks, close and submit buttons) or a home tab (its blocks)."""
    v = as_dict(view)
    kind = as_str(v.get("type"))
    names = Names(users, channels, groups)
    blocks = render_blocks(as_list(v.get("blocks")), users=users, channels=channels, groups=groups)
    attrs = html_attrs(
        data_view_id=as_str(v.get("id")),
        data_callback_id=as_str(v.get("callback_id")),
        data_external_id=as_str(v.get("external_id")),
    )
    if kind == "home":
        return f'<div class="bk-view bk-home"{attrs}>{blocks}</div>'
    if kind != "modal":
        return f'<div class="bk-view"{attrs}>{unsupported("view", kind or "?")}{blocks}</div>'
    title = render_text(v.get("title"), names) if v.get("title") else ""
    buttons = ""
    if v.get("close"):
        buttons += (
            f'<button type="button" class="bk-button bk-view-close">'
            f"{render_text(v.get('close'), names)}</button>"
        )
    if v.get("submit"):
        buttons += (
            f'<button type="submit" class="bk-button bk-primary bk-view-submit">'
            f"{render_text(v.get('submit'), names)}</button>"
        )
    return (
        f'<div class="bk-view bk-modal" role="dialog"{attrs}>'
        f'<div class="bk-modal-header"><h2 class="bk-modal-title">{title}</h2>'
        f'<button type="button" class="bk-modal-x" aria-label="Close">×</button></div>'
        f'<div class="bk-modal-body">{blocks}</div>'
        f'<div class="bk-modal-footer">{buttons}</div></div>'
    )
