"""What the Slack sim knows about its one workspace, and what Slack does to it.

`Workspace` holds the users, usergroups, channels and their history (edits applied, thread
replies linked by `thread_ts`), the ephemeral messages, the modals opened and still open,
the App Home views published, and the trigger ids minted. Its methods are Slack's own
bookkeeping: timestamps, block ids, storing a message in a channel or a thread, opening a
view, applying the bot's answer to a view submission or a body it posted to a
`response_url`.

It is the state the Web API methods (`bot.sim.slack.methods`) read and change, kept apart
from the HTTP server (`bot.sim.slack.server`) that serves them. It is not thread-safe:
`SlackSim` holds its lock around every use.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "ApiError",
    "Workspace",
    "dm_id",
    "short_id",
    "truthy",
]

TEAM_ID = "T0PAYMENTS"
TEAM_DOMAIN = "payments"
BOT_USER_ID = "U0ROLLBOT"
BOT_ID = "B0ROLLBOT"
APP_ID = "A0ROLLBOT"


class ApiError(Exception):
    """A Web API error: answered HTTP 200 with `{"ok": false, "error": …, **extra}`."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class Workspace:
    """The workspace's state and Slack's bookkeeping on it (the caller holds the lock)."""

    def __init__(self, *, trigger_ttl: float = 3.0) -> None:
        self.trigger_ttl = trigger_ttl
        self.home_tab_enabled = True  # False: views.publish answers not_enabled
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.history: dict[str, dict[str, dict[str, Any]]] = {}  # channel -> ts -> message
        self.ephemerals: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []  # every view views.open opened
        self.home: dict[str, list[dict[str, Any]]] = {}  # user -> home views published
        self.triggers: dict[str, float] = {}  # trigger id → when it was minted (monotonic)
        self.trigger_users: dict[str, str | None] = {}  # trigger id → the user it is for
        self.used_triggers: set[str] = set()
        self.open: dict[str, dict[str, Any]] = {}  # view id → open modal, oldest first
        self.view_users: dict[str, str | None] = {}  # view id → the user it was opened for
        self.view_errors: dict[str, dict[str, str]] = {}  # view id → last errors answered
        self._last_ts = 0
        self._block_ids = itertools.count(1)

    # ------------------------------------------------------------------ channels

    def resolve(self, channel: str) -> str:
        """`#name`, `name` or an id → the channel id; KeyError when there is none."""
        if channel in self.channels:
            return channel
        name = channel.lstrip("#")
        for cid, c in self.channels.items():
            if c["name"] == name:
                return cid
        raise KeyError(channel)

    def resolve_or_none(self, channel: Any) -> str | None:
        try:
            return self.resolve(str(channel)) if channel else None
        except KeyError:
            return None

    def channel_arg(self, args: dict[str, Any]) -> str:
        """The id of the call's `channel` argument; `channel_not_found` when unknown."""
        try:
            return self.resolve(str(args.get("channel") or ""))
        except KeyError:
            raise ApiError("channel_not_found") from None

    def open_dm(self, user: str) -> str:
        """The app's DM conversation with `user`, created on first use; its id."""
        cid = dm_id(user)
        if cid not in self.channels:
            self.channels[cid] = {"id": cid, "name": cid, "is_im": True, "user": user}
            self.history.setdefault(cid, {})
        return cid

    # ------------------------------------------------------------------ messages

    def next_ts(self) -> str:
        """A message timestamp, strictly after the last one handed out."""
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def with_block_ids(self, blocks: Any) -> list[dict[str, Any]]:
        """The blocks as Slack keeps them: each with a `block_id` (assigned when missing)."""
        out = []
        for b in blocks or []:
            b = dict(b)
            b.setdefault("block_id", short_id(next(self._block_ids)))
            out.append(b)
        return out

    def store_message(
        self,
        channel: str,
        text: str,
        blocks: Any,
        thread_ts: str | None,
        *,
        metadata: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Post as the bot in `channel` (in the thread of `thread_ts`: `thread_not_found`
        when there is no such message), with its message `metadata` and its (legacy)
        `attachments` if any; the message as stored."""
        ts = self.next_ts()
        message: dict[str, Any] = {
            "user": BOT_USER_ID,
            "type": "message",
            "ts": ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": text,
            "team": TEAM_ID,
            "blocks": self.with_block_ids(blocks),
        }
        if metadata is not None:
            message["metadata"] = metadata
        if attachments:
            message["attachments"] = [dict(a) for a in attachments]
        history = self.history.setdefault(channel, {})
        if thread_ts:
            parent = history.get(thread_ts)
            if parent is None:
                raise ApiError("thread_not_found")
            root = parent.get("thread_ts", thread_ts)
            message["thread_ts"] = root
            parent = history[root]
            parent["thread_ts"] = root
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["latest_reply"] = ts
        history[ts] = message
        return message

    def apply_response(
        self, body: dict[str, Any], channel: str | None, message_ts: str | None
    ) -> None:
        """What Slack does with a response_url body: replace/delete the original or post."""
        if channel is None:
            return
        if body.get("delete_original") and message_ts:
            self.history.get(channel, {}).pop(message_ts, None)
            return
        if truthy(body.get("replace_original")) and message_ts:
            old = self.history.get(channel, {}).get(message_ts)
            if old is not None:
                old["text"] = body.get("text", "")
                old["blocks"] = self.with_block_ids(body.get("blocks"))
                old["edited"] = {"user": BOT_USER_ID, "ts": self.next_ts()}
            return
        if body.get("response_type") == "in_channel":
            self.store_message(
                channel, body.get("text", ""), body.get("blocks"), body.get("thread_ts")
            )
        else:
            self.ephemerals.append(
                {
                    "channel": channel,
                    "user": None,
                    "text": body.get("text", ""),
                    "blocks": body.get("blocks") or [],
                    "via": "response_url",
                }
            )

    # ------------------------------------------------------------------ views

    def opened_view(
        self, view: dict[str, Any], *, view_id: str | None = None, root: str | None = None
    ) -> dict[str, Any]:
        """A view as Slack keeps and returns it: ids, a fresh hash, empty state."""
        vid = view_id or "V" + secrets.token_hex(5).upper()
        opened = {
            "id": vid,
            "team_id": TEAM_ID,
            "type": view.get("type", "modal"),
            "blocks": [],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": root or vid,
            "app_id": APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        opened["blocks"] = self.with_block_ids(view.get("blocks"))
        return opened

    def view_answered(self, view_id: str, body: dict[str, Any]) -> None:
        """Apply the bot's answer to a view_submission as Slack does."""
        action = body.get("response_action")
        view = self.open.get(view_id)
        if action == "errors":
            errors = body.get("errors")
            self.view_errors[view_id] = (
                {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
            )
            return
        self.view_errors[view_id] = {}
        if action == "update" and view is not None and isinstance(body.get("view"), dict):
            self.open[view_id] = self.opened_view(
                body["view"], view_id=view_id, root=view["root_view_id"]
            )
        elif action == "push" and view is not None and isinstance(body.get("view"), dict):
            pushed = self.opened_view(body["view"], root=view["root_view_id"])
            pushed["previous_view_id"] = view_id
            self.open[pushed["id"]] = pushed
            self.view_users[pushed["id"]] = self.view_users.get(view_id)
        elif action == "clear" and view is not None:
            for vid, v in list(self.open.items()):
                if v.get("root_view_id") == view["root_view_id"]:
                    self.open.pop(vid, None)
        else:  # an empty 200 (or {}, or response_action "clear" of a lone view)
            self.open.pop(view_id, None)


def dm_id(user: str) -> str:
    """The id of the app's DM conversation with `user` (U0ONCALL → D0ONCALL)."""
    return "D" + user[1:]


def truthy(value: Any) -> bool:
    """A boolean argument as Slack reads it: true, "true" or "1" (slack_sdk sends 1)."""
    return value is True or str(value).lower() in ("true", "1")


def short_id(n: int) -> str:
    """A block id as Slack makes them up: at least three characters of [A-Za-z0-9]."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    out = ""
    n += 3844  # at least three characters, like Slack's
    while n:
        n, r = divmod(n, len(alphabet))
        out = alphabet[r] + out
    return out
