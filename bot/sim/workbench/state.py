"""The workbench's model over a running :class:`SimWorld`: what the page shows, what it sends.

:class:`Workbench` renders #payments-deploys as the Slack sim recorded it (messages, threads,
the buttons' confirm dialogs, the "Only visible to you" answers of each user, the modal open
for them) with the panels of :mod:`bot.sim.workbench.panels`, and turns the page's commands,
clicks, modal submissions and scenario buttons into the signed requests Slack (or
Alertmanager) would send. Refusals are :class:`BadRequest` with the status to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from bot.sim import alerts as sim_alerts
from bot.sim import blockkit
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL, CHANNEL_ID, ONCALL, SimWorld
from bot.sim.slack import block_elements
from bot.sim.workbench.app import BadRequest, build_app
from bot.sim.workbench.panels import (
    AlertScenario,
    FlagSource,
    audit_panel,
    esc,
    flags_panel,
    gitops_panel,
    jira_panel,
    pagerduty_panel,
    rollout_facts,
    rollouts_panel,
    scenarios_panel,
)

__all__ = ["COMMANDS", "Workbench"]

COMMANDS = ("/rollback", "/release")


@dataclass(slots=True)
class _Sent:
    """What the page sent to the bot as someone: for the "Only visible to you" answers."""

    user: str
    at: float
    label: str
    response_rid: str
    ack: dict[str, Any] = field(default_factory=dict)
    # The "Only visible to you" message whose button was clicked, if any: its response_url
    # may replace or delete that message (`replace_original`, `delete_original`).
    source: str = ""


def _rid(response_url: str | None) -> str:
    return (response_url or "").rsplit("/", 1)[-1]


class Workbench:
    """The page's model over a world: renders its state and sends signed requests."""

    def __init__(
        self,
        world: SimWorld,
        *,
        flags: Iterable[FlagSource] = (),
        alerts: Iterable[AlertScenario] = (),
    ) -> None:
        self.world = world
        self.flags = list(flags)
        self.alerts = {a.service: a for a in alerts}
        self._firing: set[str] = set()
        self.default_user = ONCALL[0]
        self._sent: list[_Sent] = []
        self._dismissed: dict[str, set[str]] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ names

    def users(self) -> dict[str, str]:
        return self.world.slack.user_names()

    def channels(self) -> dict[str, str]:
        return self.world.slack.channel_names()

    def groups(self) -> dict[str, str]:
        return self.world.slack.usergroup_handles()

    def _names(self) -> dict[str, dict[str, str]]:
        return {"users": self.users(), "channels": self.channels(), "groups": self.groups()}

    # ------------------------------------------------------------------ state

    async def state(self, user: str | None = None) -> dict[str, Any]:
        user = user or self.default_user
        names = self._names()
        messages = self.world.slack.messages(CHANNEL_ID)
        tops = [m for m in messages if m.get("thread_ts") in (None, m.get("ts"))]
        # Slack shows a user's "Only visible to you" messages in the channel, in time with
        # the others (not in a pane over them), each with a Dismiss link.
        items = [
            (
                float(m["ts"]),
                f'<div class="wb-message" data-ts="{esc(m["ts"])}">'
                + blockkit.render_message(
                    m,
                    users=names["users"],
                    channels=names["channels"],
                    groups=names["groups"],
                    thread_count=int(m.get("reply_count") or 0),
                )
                + "</div>",
            )
            for m in tops
        ] + self._ephemerals(user, names)
        items.sort(key=lambda item: item[0])
        channel = "".join(html for _, html in items) or self._waiting()
        threads = {
            m["ts"]: "".join(
                f'<div class="wb-message wb-reply" data-ts="{esc(r["ts"])}">'
                + blockkit.render_message(
                    r, users=names["users"], channels=names["channels"], groups=names["groups"]
                )
                + "</div>"
                for r in self.world.slack.thread(CHANNEL_ID, m["ts"])
            )
            for m in tops
            if m.get("reply_count")
        }
        return {
            "channel": {"id": CHANNEL_ID, "name": CHANNEL, "html": channel},
            "threads": threads,
            "confirms": self._confirms(messages) | self._ephemeral_confirms(user),
            "users": [{"id": uid, "name": name} for uid, name in names["users"].items()],
            "user": user,
            "modal": self._modal(user, names),
            "panels": {
                "scenarios": scenarios_panel(self.alerts, self._firing),
                "rollouts": rollouts_panel(self.world),
                "flags": flags_panel(self.flags),
                "pagerduty": pagerduty_panel(self.world),
                "jira": jira_panel(self.world),
                "gitops": gitops_panel(self.world),
                "audit": await audit_panel(self.world),
            },
        }

    @staticmethod
    def _buttons(message: dict[str, Any]) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
        for block in message.get("blocks") or []:
            for element in block_elements(block):
                if isinstance(element, dict) and element.get("action_id"):
                    yield block, element

    def _confirms(self, messages: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
        """`"{ts} {action_id}"` → the button's confirm dialog texts (from the real blocks)."""
        out: dict[str, dict[str, str]] = {}
        for message in messages:
            for _, button in self._buttons(message):
                confirm = button.get("confirm")
                if not isinstance(confirm, dict):
                    continue
                out[f"{message['ts']} {button['action_id']}"] = {
                    key: str((confirm.get(key) or {}).get("text", ""))
                    for key in ("title", "text", "confirm", "deny")
                } | {"style": str(confirm.get("style", ""))}
        return out

    def _ephemeral_confirms(self, user: str) -> dict[str, dict[str, str]]:
        """The confirm dialogs of buttons on `user`'s ephemeral messages, keyed
        `"eph:{key} {action_id}"` (those messages have no ts in the channel)."""
        bodies = [{**body, "ts": f"eph:{key}"} for _, key, _, body in self._ephemeral_bodies(user)]
        return self._confirms(bodies)

    def _ephemeral_bodies(self, user: str) -> list[tuple[float, str, str, dict[str, Any]]]:
        """(at, key, label, body) of what only `user` sees: the acks of what they sent,
        response_url bodies of their commands and clicks, and chat.postEphemeral messages
        addressed to them; oldest first, less those they dismissed. `key` names one for a
        click on its buttons.

        As Slack does, a response_url body with `replace_original` from a click on one of
        these messages replaces it where it stands (`delete_original` removes it); on a
        channel message, that is the bot's business with the message, not a new one."""
        sent = {s.response_rid: s for s in self._sent if s.user == user}
        items: dict[str, tuple[float, str, str, dict[str, Any]]] = {}
        for i, s in enumerate(self._sent):
            if s.user == user and (s.ack.get("text") or s.ack.get("blocks")):
                items[f"a{i}"] = (s.at, f"a{i}", s.label, s.ack)
        for i, r in enumerate(self.world.slack.responses):
            if r.id not in sent:
                continue
            body, source = r.body, sent[r.id].source
            if body.get("delete_original") in (True, "true"):
                items.pop(source, None)
                continue
            if body.get("replace_original") in (True, "true"):
                if source in items:
                    at, _, label, _ = items[source]
                    items[source] = (at, source, label, body)
                continue
            if body.get("response_type") == "in_channel":
                continue
            items[f"r{i}"] = (r.at, f"r{i}", sent[r.id].label, body)
        for i, e in enumerate(self.world.slack.ephemerals):
            if e.get("via") == "chat.postEphemeral" and e.get("user") == user:
                items[f"e{i}"] = (float(e.get("ts") or 0), f"e{i}", "", e)
        dismissed = self._dismissed.get(user, set())
        return sorted(
            (item for key, item in items.items() if key not in dismissed),
            key=lambda item: item[0],
        )

    def _ephemerals(self, user: str, names: dict[str, dict[str, str]]) -> list[tuple[float, str]]:
        return [
            (
                at,
                f'<div class="wb-message wb-ephemeral" data-ephemeral="{esc(key)}">'
                '<div class="wb-ephemeral-head">Only visible to you'
                + (f" · {esc(label)}" if label else "")
                + ' <button type="button" class="wb-dismiss" data-dismiss="'
                + esc(key)
                + '">Dismiss</button>'
                + f"</div>{self._body_html(body, names)}</div>",
            )
            for at, key, label, body in self._ephemeral_bodies(user)[-20:]
        ]

    def _waiting(self) -> str:
        """The channel before rollbot has said anything: what it is watching, and what will
        appear here (the first card comes when a Rollout or an alert needs a human)."""
        rollouts = "".join(
            f"<li><code>{esc(f.namespace)}/{esc(f.name)}</code> revision {esc(f.revision)}"
            f" ({esc(f.version)}): {esc(f.sentence)}</li>"
            for f in rollout_facts(self.world)
        )
        return (
            '<div class="wb-waiting" role="status"><p><strong>Nothing needs a human yet.'
            f"</strong> rollbot is watching:</p><ul>{rollouts}</ul><p>Its card appears here"
            " when a canary's analysis fails or is inconclusive, or when an SLO alert fires"
            " (<em>Fire the SLO alert</em>, on the right). Meanwhile, try"
            " <code>/rollback help</code> below.</p></div>"
        )

    def _modal(self, user: str, names: dict[str, dict[str, str]]) -> dict[str, Any] | None:
        """The top modal open for `user` (the last views.open), with the errors the bot
        answered to its last submission, keyed by block id."""
        views = self.world.slack.open_views(user)
        if not views:
            return None
        view = views[-1]
        return {
            "id": view["id"],
            "html": blockkit.render_view(
                view, users=names["users"], channels=names["channels"], groups=names["groups"]
            ),
            "errors": self.world.slack.view_errors(view["id"]),
        }

    @staticmethod
    def _body_html(body: dict[str, Any], names: dict[str, dict[str, str]]) -> str:
        if body.get("blocks"):
            return blockkit.render_blocks(
                body["blocks"],
                users=names["users"],
                channels=names["channels"],
                groups=names["groups"],
            )
        return blockkit.render_mrkdwn(
            str(body.get("text", "")),
            users=names["users"],
            channels=names["channels"],
            groups=names["groups"],
        )

    # ------------------------------------------------------------------ actions

    def _user(self, user_id: Any) -> tuple[str, str]:
        uid = str(user_id or self.default_user)
        users = self.users()
        if uid not in users:
            raise BadRequest(f"unknown user {uid!r}; known: {', '.join(users)}", 400)
        return uid, users[uid]

    async def command(self, text: str, user_id: Any = None) -> dict[str, Any]:
        text = text.strip()
        command, _, rest = text.partition(" ")
        if command not in COMMANDS:
            raise BadRequest(
                f"not a slash command this app has: {command or text!r} "
                f"(try {' or '.join(COMMANDS)})",
                400,
            )
        uid, name = self._user(user_id)
        async with self._lock:
            request = self.world.sender.slash_command(
                uid, name, rest.strip(), command=command, channel_id=CHANNEL_ID
            )
            sent = _Sent(uid, time.time(), text, _rid(self.world.sender.last_response_url))
            self._sent.append(sent)
        response = await request.send()
        sent.ack = _ack_body(response)
        return {"status": response.status_code}

    async def click(self, body: dict[str, Any]) -> dict[str, Any]:
        ts, action_id = str(body.get("message_ts") or ""), str(body.get("action_id") or "")
        key = str(body.get("ephemeral") or "")
        if not (ts or key) or not action_id:
            raise BadRequest("action_id and message_ts (or ephemeral) are required", 400)
        if key:
            # A button on an "Only visible to you" message: only its recipient sees it.
            uid, _ = self._user(body.get("user"))
            found_message = next(
                (dict(b) for _, k, _, b in self._ephemeral_bodies(uid) if k == key), None
            )
            if found_message is None:
                raise BadRequest(f"no ephemeral message {key!r} for {uid}", 404)
            message: dict[str, Any] | None = {"response_type": "ephemeral", **found_message}
            ts = key
        else:
            message = self.world.slack.message(CHANNEL_ID, ts)
        if message is None:
            raise BadRequest(f"no message {ts} in {CHANNEL}", 404)
        found = [
            (block, el) for block, el in self._buttons(message) if el["action_id"] == action_id
        ]
        if not found:
            have = sorted({el["action_id"] for _, el in self._buttons(message)})
            raise BadRequest(
                f"message {ts} has no button {action_id!r} (it has: {', '.join(have) or 'none'})",
                404,
            )
        block, button = found[0]
        if body.get("block_id") and body["block_id"] != block.get("block_id"):
            raise BadRequest(
                f"button {action_id!r} is in block {block.get('block_id')!r}, "
                f"not {body['block_id']!r}",
                409,
            )
        uid, name = self._user(body.get("user"))
        async with self._lock:
            request = self.world.sender.click(
                uid,
                action_id,
                str(button.get("value", "")),
                message=message,
                channel_id=CHANNEL_ID,
                block_id=block.get("block_id"),
                user_name=name,
            )
            label = str((button.get("text") or {}).get("text") or action_id)
            sent = _Sent(
                uid, time.time(), label, _rid(self.world.sender.last_response_url), source=key
            )
            self._sent.append(sent)
        response = await request.send()
        sent.ack = _ack_body(response)
        return {"status": response.status_code}

    async def dismiss(self, body: dict[str, Any]) -> dict[str, Any]:
        """Dismiss one of the user's "Only visible to you" messages (Slack's Dismiss)."""
        uid, _ = self._user(body.get("user"))
        key = str(body.get("ephemeral") or "")
        if not any(k == key for _, k, _, _ in self._ephemeral_bodies(uid)):
            raise BadRequest(f"no ephemeral message {key!r} for {uid}", 404)
        self._dismissed.setdefault(uid, set()).add(key)
        return {"dismissed": key}

    def _open_view(self, user: str, view_id: str) -> dict[str, Any]:
        views = self.world.slack.open_views(user)
        for view in views:
            if view["id"] == view_id:
                return view
        have = ", ".join(v["id"] for v in views) or "none"
        raise BadRequest(f"no open modal {view_id!r} for {user} (open: {have})", 404)

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        uid, name = self._user(body.get("user"))
        view = self._open_view(uid, str(body.get("view_id") or ""))
        values = body.get("values") or {}
        if not isinstance(values, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
            for v in values.values()
        ):
            raise BadRequest("values must be {block_id: {action_id: text}}", 400)
        response = await self.world.sender.view_submission(uid, view, values, user_name=name).send()
        return {"status": response.status_code, "errors": self.world.slack.view_errors(view["id"])}

    async def close(self, body: dict[str, Any]) -> dict[str, Any]:
        uid, _ = self._user(body.get("user"))
        view = self._open_view(uid, str(body.get("view_id") or ""))
        self.world.slack.close_view(view["id"])
        return {"closed": view["id"]}

    async def alert(self, body: dict[str, Any]) -> dict[str, Any]:
        service, status = str(body.get("service") or ""), str(body.get("status") or "firing")
        scenario = self.alerts.get(service)
        if scenario is None:
            raise BadRequest(
                f"no alert scenario for {service!r} (have: {', '.join(self.alerts) or 'none'})",
                404,
            )
        if status not in ("firing", "resolved"):
            raise BadRequest(f"status must be firing or resolved, not {status!r}", 400)
        payload = sim_alerts.webhook(
            [
                sim_alerts.alert(
                    scenario.alertname,
                    service=service,
                    status=status,
                    labels=dict(scenario.labels),
                    summary=scenario.summary,
                )
            ]
        )
        response = await sim_alerts.send(
            f"{self.world.url}/webhooks/alertmanager", ALERTMANAGER_TOKEN, payload
        )
        if response.status_code == 200:
            if status == "firing":
                self._firing.add(service)
            else:
                self._firing.discard(service)
        return {"status": response.status_code}

    # ------------------------------------------------------------------ the app

    def app(self) -> Starlette:
        """The page and its JSON API over this workbench (:mod:`bot.sim.workbench.app`)."""
        return build_app(self)


def _ack_body(response: Any) -> dict[str, Any]:
    """The bot's immediate answer to a slash command or click (Slack shows a body's text)."""
    if response.status_code != 200 or not response.content:
        return {}
    if "json" in response.headers.get("content-type", ""):
        with contextlib.suppress(ValueError):
            body = response.json()
            return body if isinstance(body, dict) else {}
    return {"text": response.text}
