"""The Web API methods the Slack sim answers, with Slack's shapes and errors.

One function per method rollbot calls (auth.*, chat.*, views.*, users.*, usergroups.*,
conversations.*), each taking the `Workspace` and the call's arguments (query, form or JSON
body, merged; the token already checked and removed) and returning what Slack adds to
`{"ok": true}`, or raising `ApiError` for `{"ok": false, "error": …}`. `HANDLERS` maps the
method names to them; the server (`bot.sim.slack.server`) does authentication, rate limits
and recording around them.
"""

from __future__ import annotations

import json
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


def _post_message(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    # A user id as the channel posts in the app's DM with that user, as Slack does: the
    # answer names the DM conversation (D…), which chat.update then takes.
    user = str(args.get("channel") or "")
    if user in ws.users and user not in ws.channels:
        args = {**args, "channel": ws.open_dm(user)}
    channel = ws.channel_arg(args)
    text, blocks = _require_text(args)
    thread_ts = args.get("thread_ts") or None
    message = ws.store_message(channel, text, blocks, thread_ts)
    return {"channel": channel, "ts": message["ts"], "message": dict(message)}


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


def _views_open(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    trigger = str(args.get("trigger_id") or "")
    view = _json_arg(args.get("view"))
    if not trigger:
        raise ApiError("invalid_arguments")
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


def _conversations_info(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    channel = ws.channels.get(str(args.get("channel") or ""))
    if channel is None:
        raise ApiError("channel_not_found")
    return {
        "channel": {
            "id": channel["id"],
            "name": channel["name"],
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_private": False,
            "is_archived": False,
            "is_member": True,
            "context_team_id": TEAM_ID,
        }
    }


HANDLERS: dict[str, Handler] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _post_ephemeral,
    "views.open": _views_open,
    "views.publish": _views_publish,
    "users.info": _users_info,
    "users.lookupByEmail": _users_lookup_by_email,
    "usergroups.users.list": _usergroup_users,
    "conversations.info": _conversations_info,
}
