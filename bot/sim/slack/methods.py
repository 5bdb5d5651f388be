"""The Web API methods the Slack sim answers, with Slack's shapes and errors.

One function per method rollbot calls (auth.*, chat.*, views.*, users.*, usergroups.*,
conversations.*), each taking the `Workspace` and the call's arguments (query, form or JSON
body, merged; the token already checked and removed) and returning what Slack adds to
`{"ok": true}`, or raising `ApiError` for `{"ok": false, "error": …}`. `HANDLERS` maps the
method names to them; the server (`bot.sim.slack.server`) does authentication, rate limits
and recording around them.

Message metadata (https://api.slack.com/metadata): chat.postMessage keeps its `metadata`
(`{"event_type": …, "event_payload": {…}}`, JSON text in a form) with the message;
conversations.history and conversations.replies return it only when asked with
`include_all_metadata`, so a client that forgets to ask finds none. Those two read the
history as Slack does: by channel id (a name is `channel_not_found`), `oldest`/`latest`
exclusive unless `inclusive`, `limit` per page with `has_more` and an opaque
`response_metadata.next_cursor`; history newest first and without thread replies, replies
oldest first after their parent. conversations.list pages the channels the same way, for a
client that knows a channel by its name only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from bot.sim.slack.limits import block_errors, modal_errors
from bot.sim.slack.workspace import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    ApiError,
    Workspace,
    truthy,
)

__all__ = ["HANDLERS", "Handler"]

Handler = Callable[[Workspace, dict[str, Any]], dict[str, Any]]


def _json_arg(value: Any) -> Any:
    """An argument that holds JSON (`blocks`, `view`): a form sends it as text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ApiError("invalid_arguments") from None
    return value


def _require_text(args: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    text = str(args.get("text") or "")
    blocks = _json_arg(args.get("blocks"))
    if not text and not blocks:
        raise ApiError("no_text")
    if blocks is not None:
        errors = block_errors(blocks)
        if errors:
            raise ApiError("invalid_blocks", errors=errors)
    if len(text) > 40_000:
        raise ApiError("msg_too_long")
    return text, blocks


def _view_refused(errors: list[str]) -> ApiError:
    return ApiError(
        "invalid_arguments",
        response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
    )


# ---------------------------------------------------------------------- auth.*


def _auth_test(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": f"https://{TEAM_DOMAIN}.slack.com/",
        "team": "Payments",
        "user": "rollbot",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


# ---------------------------------------------------------------------- chat.*


def _metadata_arg(value: Any) -> dict[str, Any] | None:
    """chat.postMessage's `metadata`: an event type and its payload, or None when absent.
    Not JSON is `invalid_metadata_format`; not that shape, `invalid_metadata_schema`."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ApiError("invalid_metadata_format") from None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not value["event_type"]
        or not isinstance(value.get("event_payload"), dict)
    ):
        raise ApiError("invalid_metadata_schema")
    return {"event_type": value["event_type"], "event_payload": value["event_payload"]}


def _post_message(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    # A user id as the channel posts in the app's DM with that user, as Slack does: the
    # answer names the DM conversation (D…), which chat.update then takes.
    user = str(args.get("channel") or "")
    if user in ws.users and user not in ws.channels:
        args = {**args, "channel": ws.open_dm(user)}
    channel = ws.channel_arg(args)
    if ws.channels[channel].get("is_archived"):
        raise ApiError("is_archived")  # Slack: "Channel has been archived."
    text, blocks = _require_text(args)
    metadata = _metadata_arg(args.get("metadata"))
    thread_ts = args.get("thread_ts") or None
    message = ws.store_message(channel, text, blocks, thread_ts, metadata=metadata)
    return {"channel": channel, "ts": message["ts"], "message": json.loads(json.dumps(message))}


def _update(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    channel = ws.channel_arg(args)
    ts = str(args.get("ts") or "")
    message = ws.history.get(channel, {}).get(ts)
    if message is None:
        raise ApiError("message_not_found")
    text, blocks = _require_text(args)
    message["text"] = text
    if blocks is not None:
        message["blocks"] = ws.with_block_ids(blocks)
    message["edited"] = {"user": BOT_USER_ID, "ts": ws.next_ts()}
    return {"channel": channel, "ts": ts, "text": text, "message": dict(message)}


def _post_ephemeral(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    channel = ws.channel_arg(args)
    user = str(args.get("user") or "")
    if user not in ws.users:
        raise ApiError("user_not_found")
    text, blocks = _require_text(args)
    ts = ws.next_ts()
    ws.ephemerals.append(
        {
            "channel": channel,
            "user": user,
            "text": text,
            "blocks": blocks or [],
            "ts": ts,
            "thread_ts": args.get("thread_ts"),
            "via": "chat.postEphemeral",
        }
    )
    return {"message_ts": ts}


# ---------------------------------------------------------------------- views.*


#: A trigger id as Slack mints them ("132456.7890123.abcdef", its docs say); another is
#: `invalid_trigger_id`.
_TRIGGER = re.compile(r"^[0-9]+\.[0-9]+\.[0-9a-f]+$")


def _views_open(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """Slack's trigger errors: not shaped as its trigger ids (`invalid_trigger_id`), older
    than `trigger_ttl` (`expired_trigger_id`), used before (`exchanged_trigger_id`)."""
    trigger = str(args.get("trigger_id") or "")
    view = _json_arg(args.get("view"))
    if not trigger:
        raise ApiError("invalid_arguments")
    if not _TRIGGER.match(trigger):
        raise ApiError("invalid_trigger_id")
    minted = ws.triggers.get(trigger)
    if minted is not None and time.monotonic() - minted > ws.trigger_ttl:
        raise ApiError("expired_trigger_id")
    if trigger in ws.used_triggers:
        raise ApiError("exchanged_trigger_id")
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise ApiError("invalid_arguments")
    if len(json.dumps(view)) > 250_000:
        raise ApiError("view_too_large")
    errors = modal_errors(view)
    if errors:
        raise _view_refused(errors)
    ws.used_triggers.add(trigger)
    opened = ws.opened_view(view)
    ws.views.append(opened)
    ws.open[opened["id"]] = opened
    ws.view_users[opened["id"]] = ws.trigger_users.get(trigger)
    return {"view": json.loads(json.dumps(opened))}


def _views_update(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """Replace an open modal (by `view_id`, or the `external_id` it was opened with). Slack's
    errors: neither id (`invalid_arguments`), a view not open (closed, submitted:
    `not_found`), a `hash` that is not the view's current one (`hash_conflict`: someone
    updated it since it was read)."""
    view = _json_arg(args.get("view"))
    view_id = str(args.get("view_id") or "")
    external = str(args.get("external_id") or "")
    if not (view_id or external) or not isinstance(view, dict) or view.get("type") != "modal":
        raise ApiError("invalid_arguments")
    if not view_id:
        view_id = next(
            (vid for vid, v in ws.open.items() if external and v.get("external_id") == external),
            "",
        )
    current = ws.open.get(view_id)
    if current is None:
        raise ApiError("not_found")
    wanted = args.get("hash")
    if wanted and wanted != current.get("hash"):
        raise ApiError("hash_conflict")
    if len(json.dumps(view)) > 250_000:
        raise ApiError("view_too_large")
    errors = modal_errors(view)
    if errors:
        raise _view_refused(errors)
    updated = ws.opened_view(view, view_id=view_id, root=current.get("root_view_id"))
    ws.views.append(updated)
    ws.open[view_id] = updated
    return {"view": json.loads(json.dumps(updated))}


def _views_publish(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """Publish a user's Home tab: the same view id per user, a new hash each time."""
    user = str(args.get("user_id") or "")
    view = _json_arg(args.get("view"))
    if not user or not isinstance(view, dict) or view.get("type") != "home":
        raise ApiError("invalid_arguments")
    if not ws.home_tab_enabled:
        raise ApiError("not_enabled")
    if len(json.dumps(view)) > 250_000:
        raise ApiError("view_too_large")
    errors = block_errors(view.get("blocks"), max_blocks=100, pointer="/view/blocks")
    if errors:
        raise _view_refused(errors)
    history = ws.home.setdefault(user, [])
    current = history[-1] if history else None
    wanted_hash = args.get("hash")
    if wanted_hash and current is not None and wanted_hash != current["hash"]:
        raise ApiError("hash_conflict")
    view_id = current["id"] if current is not None else "V" + secrets.token_hex(5).upper()
    published = {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": "home",
        "close": None,
        "submit": None,
        "blocks": ws.with_block_ids(view.get("blocks")),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        "clear_on_close": False,
        "notify_on_close": False,
        "root_view_id": view_id,
        "previous_view_id": None,
        "app_id": APP_ID,
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    }
    history.append(published)
    return {"view": json.loads(json.dumps(published))}


# ---------------------------------------------------------------------- users.*, usergroups.*


def _users_info(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    user = ws.users.get(str(args.get("user") or ""))
    if user is None:
        raise ApiError("user_not_found")
    return {"user": json.loads(json.dumps(user))}


def _users_lookup_by_email(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    email = str(args.get("email") or "").strip().lower()
    if not email:
        raise ApiError("invalid_arguments")
    for user in ws.users.values():
        if str(user["profile"].get("email") or "").lower() == email and not user["deleted"]:
            return {"user": json.loads(json.dumps(user))}
    raise ApiError("users_not_found")


def _usergroup_users(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    group = ws.usergroups.get(str(args.get("usergroup") or ""))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"users": list(group["users"])}


# ---------------------------------------------------------------------- conversations.*


def _channel_object(channel: dict[str, Any]) -> dict[str, Any]:
    im = bool(channel.get("is_im"))
    return {
        "id": channel["id"],
        "name": channel["name"],
        "is_channel": not im,
        "is_group": False,
        "is_im": im,
        "is_private": False,
        "is_archived": bool(channel.get("is_archived")),
        "is_member": True,
        "context_team_id": TEAM_ID,
    }


def _conversation(ws: Workspace, args: dict[str, Any]) -> str:
    """The `channel` argument of a conversations.* method: an id (names are not taken)."""
    channel = str(args.get("channel") or "")
    if channel not in ws.channels:
        raise ApiError("channel_not_found")
    return channel


def _conversations_info(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    return {"channel": _channel_object(ws.channels[_conversation(ws, args)])}


def _cursor(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _uncursor(args: dict[str, Any], prefix: str) -> str | None:
    """What the call's `cursor` points at (after `prefix`), None without one."""
    cursor = str(args.get("cursor") or "")
    if not cursor:
        return None
    try:
        value = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    if not value.startswith(prefix):
        raise ApiError("invalid_cursor")
    return value[len(prefix) :]


def _limit(args: dict[str, Any], *, default: int, most: int) -> int:
    try:
        limit = int(args.get("limit") or default)
    except ValueError:
        raise ApiError("invalid_limit") from None
    return min(max(limit, 1), most)


def _in_range(ts: str, args: dict[str, Any]) -> bool:
    """Whether `ts` is between the call's `oldest` and `latest` (exclusive unless
    `inclusive`), compared as Slack's timestamps are: as numbers."""
    inclusive = truthy(args.get("inclusive"))
    value = float(ts)
    try:
        oldest = float(args.get("oldest") or 0)
    except ValueError:
        raise ApiError("invalid_ts_oldest") from None
    try:
        latest = float(args["latest"]) if args.get("latest") else float("inf")
    except ValueError:
        raise ApiError("invalid_ts_latest") from None
    if inclusive:
        return oldest <= value <= latest
    return oldest < value < latest


def _as_read(message: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """A stored message as a history method returns it: its metadata only when asked."""
    out: dict[str, Any] = json.loads(json.dumps(message))
    if not truthy(args.get("include_all_metadata")):
        out.pop("metadata", None)
    return out


def _page(
    messages: list[dict[str, Any]], args: dict[str, Any], *, prefix: str, limit: int
) -> tuple[list[dict[str, Any]], str]:
    """One page of `messages` (in the order they are returned) from the call's cursor on,
    and the next cursor ("" after the last page)."""
    after = _uncursor(args, prefix)
    if after is not None:
        keys = [m["ts"] for m in messages]
        messages = messages[keys.index(after) + 1 :] if after in keys else []
    page = messages[:limit]
    more = len(messages) > limit
    return page, _cursor(prefix + page[-1]["ts"]) if more else ""


def _conversations_history(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """The channel's messages, newest first; a thread's replies are not among them."""
    channel = _conversation(ws, args)
    found = [
        m
        for ts, m in sorted(ws.history.get(channel, {}).items(), reverse=True)
        if m.get("thread_ts") in (None, ts) and _in_range(ts, args)
    ]
    page, cursor = _page(found, args, prefix="history:", limit=_limit(args, default=100, most=999))
    return {
        "messages": [_as_read(m, args) for m in page],
        "has_more": bool(cursor),
        "pin_count": 0,
        "channel_actions_ts": None,
        "channel_actions_count": 0,
        "response_metadata": {"next_cursor": cursor},
    }


def _conversations_replies(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """A thread: its parent first, then its replies oldest first (`ts` may name either)."""
    channel = _conversation(ws, args)
    history = ws.history.get(channel, {})
    message = history.get(str(args.get("ts") or ""))
    if message is None:
        raise ApiError("thread_not_found")
    root = str(message.get("thread_ts") or message["ts"])
    replies = [
        m
        for ts, m in sorted(history.items())
        if m.get("thread_ts") == root and ts != root and _in_range(ts, args)
    ]
    first = _uncursor(args, "replies:") is None
    thread = [history[root], *replies] if first else replies
    page, cursor = _page(
        thread, args, prefix="replies:", limit=_limit(args, default=100, most=1000)
    )
    return {
        "messages": [_as_read(m, args) for m in page],
        "has_more": bool(cursor),
        "response_metadata": {"next_cursor": cursor},
    }


def _conversations_list(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """The workspace's channels of the asked `types` (default public_channel), by id;
    archived ones left out with `exclude_archived`."""
    types = set(str(args.get("types") or "public_channel").split(","))
    unarchived = str(args.get("exclude_archived") or "").lower() in ("1", "true")
    channels = [
        c
        for _, c in sorted(ws.channels.items())
        if ("im" if c.get("is_im") else "public_channel") in types
        and not (unarchived and c.get("is_archived"))
    ]
    after = _uncursor(args, "list:")
    if after is not None:
        channels = [c for c in channels if c["id"] > after]
    limit = _limit(args, default=100, most=1000)
    page = channels[:limit]
    more = len(channels) > limit
    return {
        "channels": [_channel_object(c) for c in page],
        "response_metadata": {"next_cursor": _cursor("list:" + page[-1]["id"]) if more else ""},
    }


HANDLERS: dict[str, Handler] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _post_ephemeral,
    "views.open": _views_open,
    "views.update": _views_update,
    "views.publish": _views_publish,
    "users.info": _users_info,
    "users.lookupByEmail": _users_lookup_by_email,
    "usergroups.users.list": _usergroup_users,
    "conversations.info": _conversations_info,
    "conversations.history": _conversations_history,
    "conversations.replies": _conversations_replies,
    "conversations.list": _conversations_list,
}
