"""The demo workbench: a Slack-like page in the browser over a running :class:`SimWorld`.

    async with SimWorld(pagerduty=True, jira=True) as world:
        async with serve_workbench(Workbench(world), port=8088) as url:
            ...  # open url

- ``GET /`` — one page (``workbench_static/``: HTML, CSS and a little JavaScript; nothing
  fetched from elsewhere): #payments-deploys as the Slack sim recorded it, rendered from the
  real Block Kit by :mod:`bot.sim.blockkit`, threads, a composer for slash commands, and
  panels with the simulated world (Rollouts, flags, PagerDuty, Jira, the audit log).
- ``GET /api/state`` — the rendered fragments the page polls and swaps.
- ``POST /api/command`` ``{"text": "/rollback payment-router", "user": "U0ONCALL"}`` — a
  SIGNED slash command through ``world.sender``, exactly as Slack sends it.
- ``POST /api/click`` ``{"message_ts", "action_id", "block_id", "value", "user"}`` — a
  signed ``block_actions`` for a button that is on that message (else 4xx saying why).
- ``POST /api/submit`` ``{"view_id", "values": {block_id: {action_id: text}}, "user"}`` — a
  signed ``view_submission`` of a modal the bot opened for that user (``views.open``); the
  modal closes or shows the errors the bot answered, as Slack does.
  ``POST /api/close`` ``{"view_id", "user"}`` — the user dismissed it (Cancel or ×).
- ``POST /api/alert`` ``{"service", "status": "firing" | "resolved"}`` — the scenario
  buttons: an Alertmanager webhook for one of the demo's SLO alerts (bearer token and all).

The bot does not know about any of this: every request reaches it at ``/slack/events``
signed, and every answer is read back from what the sims recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import html
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bot.sim import alerts as sim_alerts
from bot.sim import blockkit
from bot.sim.argo import current_weight
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL, CHANNEL_ID, ONCALL, SimWorld

COMMANDS = ("/rollback", "/release")
POLL_MS = 500


class PortInUseError(OSError):
    """The workbench's port is taken; the message says which option picks another."""


@dataclass(frozen=True, slots=True)
class FlagSource:
    """A flag panel row source: the provider's name, the flag keys and how to read one."""

    provider: str
    keys: tuple[str, ...]
    is_on: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class AlertScenario:
    """A scenario button: the SLO alert Alertmanager would send about `service`."""

    service: str
    alertname: str
    summary: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class _Sent:
    """What the page sent to the bot as someone: for the "Only visible to you" answers."""

    user: str
    at: float
    label: str
    response_rid: str
    ack: dict[str, Any] = field(default_factory=dict)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


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
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ names

    def users(self) -> dict[str, str]:
        with self.world.slack._lock:
            return {uid: str(u["name"]) for uid, u in self.world.slack._users.items()}

    def channels(self) -> dict[str, str]:
        with self.world.slack._lock:
            return {cid: str(c["name"]) for cid, c in self.world.slack._channels.items()}

    def groups(self) -> dict[str, str]:
        with self.world.slack._lock:
            return {gid: str(g["handle"]) for gid, g in self.world.slack._usergroups.items()}

    def _names(self) -> dict[str, dict[str, str]]:
        return {"users": self.users(), "channels": self.channels(), "groups": self.groups()}

    # ------------------------------------------------------------------ state

    async def state(self, user: str | None = None) -> dict[str, Any]:
        user = user or self.default_user
        names = self._names()
        messages = self.world.slack.messages(CHANNEL_ID)
        tops = [m for m in messages if m.get("thread_ts") in (None, m.get("ts"))]
        channel = "".join(
            f'<div class="wb-message" data-ts="{_esc(m["ts"])}">'
            + blockkit.render_message(
                m,
                users=names["users"],
                channels=names["channels"],
                groups=names["groups"],
                thread_count=int(m.get("reply_count") or 0),
            )
            + "</div>"
            for m in tops
        )
        threads = {
            m["ts"]: "".join(
                f'<div class="wb-message wb-reply" data-ts="{_esc(r["ts"])}">'
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
            "ephemerals": self._ephemerals(user, names),
            "users": [{"id": uid, "name": name} for uid, name in names["users"].items()],
            "user": user,
            "modal": self._modal(user, names),
            "panels": {
                "scenarios": self._scenarios_panel(),
                "rollouts": self._rollouts_panel(),
                "flags": self._flags_panel(),
                "pagerduty": self._pagerduty_panel(),
                "jira": self._jira_panel(),
                "audit": await self._audit_panel(),
            },
        }

    @staticmethod
    def _buttons(message: dict[str, Any]) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
        for block in message.get("blocks") or []:
            elements = list(block.get("elements") or [])
            if isinstance(block.get("accessory"), dict):
                elements.append(block["accessory"])
            for element in elements:
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
        addressed to them; oldest first. `key` names one for a click on its buttons."""
        sent = {s.response_rid: s for s in self._sent if s.user == user}
        items: list[tuple[float, str, str, dict[str, Any]]] = []
        for i, s in enumerate(self._sent):
            if s.user == user and (s.ack.get("text") or s.ack.get("blocks")):
                items.append((s.at, f"a{i}", s.label, s.ack))
        for i, r in enumerate(self.world.slack.responses):
            if r.id not in sent:
                continue
            body = r.body
            if body.get("replace_original") in (True, "true") or body.get("delete_original"):
                continue
            if body.get("response_type") == "in_channel":
                continue
            items.append((r.at, f"r{i}", sent[r.id].label, body))
        for i, e in enumerate(self.world.slack.ephemerals):
            if e.get("via") == "chat.postEphemeral" and e.get("user") == user:
                items.append((float(e.get("ts") or 0), f"e{i}", "", e))
        items.sort(key=lambda item: item[0])
        return items

    def _ephemerals(self, user: str, names: dict[str, dict[str, str]]) -> str:
        return "".join(
            f'<div class="wb-ephemeral" data-ephemeral="{_esc(key)}">'
            '<div class="wb-ephemeral-head">Only visible to you'
            + (f" · {_esc(label)}" if label else "")
            + f"</div>{self._body_html(body, names)}</div>"
            for _, key, label, body in self._ephemeral_bodies(user)[-20:]
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

    def _rollouts_panel(self) -> str:
        rows = []
        for ro in self.world.kube.list("rollouts"):
            meta, spec, status = ro["metadata"], ro.get("spec") or {}, ro.get("status") or {}
            steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
            idx = int(status.get("currentStepIndex", 0) or 0)
            weight = current_weight(status, steps, idx)
            revision = (meta.get("annotations") or {}).get("rollout.argoproj.io/revision", "?")
            phase = str(status.get("phase", ""))
            flags = " · aborted" if status.get("abort") else ""
            flags += " · paused" if status.get("pauseConditions") else ""
            promoted = bool(status.get("stableRS")) and status.get("stableRS") == status.get(
                "currentPodHash"
            )
            where = "stable 100 %" if promoted else f"canary {weight} %"
            image = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
            version = str(image[0].get("image", "")).rsplit(":", 1)[-1]
            rows.append(
                f'<tr data-rollout="{_esc(meta["name"])}"><td>{_esc(meta["namespace"])}/'
                f"{_esc(meta['name'])}</td><td>{_esc(revision)} ({_esc(version)})</td>"
                f"<td>{min(idx, len(steps))}/{len(steps)}</td>"
                f'<td class="wb-weight">{where}</td>'
                f'<td class="wb-phase">{_esc(phase)}{_esc(flags)}</td></tr>'
            )
        return _table(("Rollout", "Revision", "Step", "Weight", "Phase"), rows)

    def _scenarios_panel(self) -> str:
        if not self.alerts:
            return ""
        rows = []
        for service, scenario in self.alerts.items():
            firing = service in self._firing
            action = "resolved" if firing else "firing"
            label = "Resolve the alert" if firing else "Fire the SLO alert"
            rows.append(
                f"<tr><td>{_esc(service)}</td><td><code>{_esc(scenario.alertname)}</code> "
                f"{_esc(scenario.summary)}</td><td>"
                f'<button type="button" class="wb-scenario" data-service="{_esc(service)}" '
                f'data-status="{action}">{label}</button></td></tr>'
            )
        return _table(("Service", "Alertmanager alert", ""), rows)

    def _flags_panel(self) -> str:
        rows = []
        for source in self.flags:
            for key in source.keys:
                on = source.is_on(key)
                rows.append(
                    f"<tr><td>{_esc(source.provider)}</td><td><code>{_esc(key)}</code></td>"
                    f'<td class="{"wb-on" if on else "wb-off"}">{"on" if on else "off"}</td></tr>'
                )
        return _table(("Provider", "Flag", "State"), rows) if self.flags else ""

    def _pagerduty_panel(self) -> str:
        pd = getattr(self.world, "pd", None)
        if pd is None:
            return ""
        rows = [
            f"<tr><td>{_esc(i.get('id'))}</td><td>{_esc(i.get('status'))}</td>"
            f"<td>{_esc(i.get('title'))}</td></tr>"
            for i in pd.incidents()
        ]
        return _table(("Incident", "Status", "Title"), rows)

    def _jira_panel(self) -> str:
        jira = getattr(self.world, "jira", None)
        if jira is None:
            return ""
        rows = []
        for key, issue in sorted(jira.issues.items()):
            fields = issue.get("fields") or {}
            status = (fields.get("status") or {}).get("name", "")
            rows.append(
                f"<tr><td>{_esc(key)}</td><td>{_esc(status)}</td>"
                f"<td>{_esc(fields.get('duedate') or '')}</td>"
                f"<td>{_esc(fields.get('summary', ''))}</td></tr>"
            )
        return _table(("Key", "Status", "Due", "Summary"), rows)

    async def _audit_panel(self) -> str:
        records = await self.world.rollbot.store.audit_entries()
        rows = [
            f"<tr><td>{r.seq}</td><td>{_esc(r.entry.at.strftime('%H:%M:%S'))}</td>"
            f"<td>{_esc(r.entry.actor)}</td><td>{_esc(r.entry.action)}</td>"
            f"<td>{_esc(r.entry.target)}</td><td>{_esc(r.entry.result)}</td></tr>"
            for r in records[-30:]
        ]
        return _table(("#", "At", "Actor", "Action", "Target", "Result"), rows[::-1])

    # ------------------------------------------------------------------ actions

    def _user(self, user_id: Any) -> tuple[str, str]:
        uid = str(user_id or self.default_user)
        users = self.users()
        if uid not in users:
            raise _BadRequest(f"unknown user {uid!r}; known: {', '.join(users)}", 400)
        return uid, users[uid]

    async def command(self, text: str, user_id: Any = None) -> dict[str, Any]:
        text = text.strip()
        command, _, rest = text.partition(" ")
        if command not in COMMANDS:
            raise _BadRequest(
                f"not a slash command this app has: {command or text!r} "
                f"(try {' or '.join(COMMANDS)})",
                400,
            )
        uid, name = self._user(user_id)
        async with self._lock:
            request = self.world.sender.slash_command_request(
                uid, name, rest.strip(), command=command, channel_id=CHANNEL_ID
            )
            sent = _Sent(uid, time.time(), text, _rid(self.world.sender.last_response_url))
            self._sent.append(sent)
        response = await self.world.sender.send(request)
        sent.ack = _ack_body(response)
        return {"status": response.status_code}

    async def click(self, body: dict[str, Any]) -> dict[str, Any]:
        ts, action_id = str(body.get("message_ts") or ""), str(body.get("action_id") or "")
        key = str(body.get("ephemeral") or "")
        if not (ts or key) or not action_id:
            raise _BadRequest("action_id and message_ts (or ephemeral) are required", 400)
        if key:
            # A button on an "Only visible to you" message: only its recipient sees it.
            uid, _ = self._user(body.get("user"))
            found_message = next(
                (dict(b) for _, k, _, b in self._ephemeral_bodies(uid) if k == key), None
            )
            if found_message is None:
                raise _BadRequest(f"no ephemeral message {key!r} for {uid}", 404)
            message: dict[str, Any] | None = {"response_type": "ephemeral", **found_message}
            ts = key
        else:
            message = self.world.slack.message(CHANNEL_ID, ts)
        if message is None:
            raise _BadRequest(f"no message {ts} in {CHANNEL}", 404)
        found = [
            (block, el) for block, el in self._buttons(message) if el["action_id"] == action_id
        ]
        if not found:
            have = sorted({el["action_id"] for _, el in self._buttons(message)})
            raise _BadRequest(
                f"message {ts} has no button {action_id!r} (it has: {', '.join(have) or 'none'})",
                404,
            )
        block, button = found[0]
        if body.get("block_id") and body["block_id"] != block.get("block_id"):
            raise _BadRequest(
                f"button {action_id!r} is in block {block.get('block_id')!r}, "
                f"not {body['block_id']!r}",
                409,
            )
        uid, name = self._user(body.get("user"))
        async with self._lock:
            request = self.world.sender.click_request(
                uid,
                action_id,
                str(button.get("value", "")),
                message=message,
                channel_id=CHANNEL_ID,
                block_id=block.get("block_id"),
                user_name=name,
            )
            label = str((button.get("text") or {}).get("text") or action_id)
            sent = _Sent(uid, time.time(), label, _rid(self.world.sender.last_response_url))
            self._sent.append(sent)
        response = await self.world.sender.send(request)
        sent.ack = _ack_body(response)
        return {"status": response.status_code}

    def _open_view(self, user: str, view_id: str) -> dict[str, Any]:
        views = self.world.slack.open_views(user)
        for view in views:
            if view["id"] == view_id:
                return view
        have = ", ".join(v["id"] for v in views) or "none"
        raise _BadRequest(f"no open modal {view_id!r} for {user} (open: {have})", 404)

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        uid, name = self._user(body.get("user"))
        view = self._open_view(uid, str(body.get("view_id") or ""))
        values = body.get("values") or {}
        if not isinstance(values, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
            for v in values.values()
        ):
            raise _BadRequest("values must be {block_id: {action_id: text}}", 400)
        response = await self.world.sender.view_submission(uid, view, values, user_name=name)
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
            raise _BadRequest(
                f"no alert scenario for {service!r} (have: {', '.join(self.alerts) or 'none'})",
                404,
            )
        if status not in ("firing", "resolved"):
            raise _BadRequest(f"status must be firing or resolved, not {status!r}", 400)
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
        async def index(request: Request) -> Response:
            page = _static("index.html")
            page = page.replace("/*CSS*/", blockkit.CSS + "\n" + _static("workbench.css"))
            page = page.replace("/*JS*/", _static("workbench.js"))
            page = page.replace("__POLL_MS__", str(POLL_MS))
            page = page.replace("__CHANNEL__", _esc(CHANNEL))
            return HTMLResponse(page)

        async def state(request: Request) -> Response:
            try:
                return JSONResponse(await self.state(request.query_params.get("user")))
            except _BadRequest as err:
                return JSONResponse({"error": str(err)}, status_code=err.status)

        async def command(request: Request) -> Response:
            return await _json_call(
                request, lambda b: self.command(b.get("text", ""), b.get("user"))
            )

        async def click(request: Request) -> Response:
            return await _json_call(request, self.click)

        async def submit(request: Request) -> Response:
            return await _json_call(request, self.submit)

        async def close(request: Request) -> Response:
            return await _json_call(request, self.close)

        async def alert(request: Request) -> Response:
            return await _json_call(request, self.alert)

        return Starlette(
            routes=[
                Route("/", index),
                Route("/api/state", state),
                Route("/api/command", command, methods=["POST"]),
                Route("/api/click", click, methods=["POST"]),
                Route("/api/submit", submit, methods=["POST"]),
                Route("/api/close", close, methods=["POST"]),
                Route("/api/alert", alert, methods=["POST"]),
            ]
        )


class _BadRequest(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def _json_call(request: Request, call: Callable[[dict[str, Any]], Any]) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as err:
        return JSONResponse({"error": f"the body is not JSON: {err}"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
    try:
        return JSONResponse(await call(body))
    except _BadRequest as err:
        return JSONResponse({"error": str(err)}, status_code=err.status)


def _ack_body(response: Any) -> dict[str, Any]:
    """The bot's immediate answer to a slash command or click (Slack shows a body's text)."""
    if response.status_code != 200 or not response.content:
        return {}
    if "json" in response.headers.get("content-type", ""):
        with contextlib.suppress(ValueError):
            body = response.json()
            return body if isinstance(body, dict) else {}
    return {"text": response.text}


def _table(head: Iterable[str], rows: list[str]) -> str:
    if not rows:
        return '<p class="wb-empty">nothing yet</p>'
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join(rows)
    return f'<table class="wb-table"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _static(name: str) -> str:
    return (resources.files("bot.sim") / "workbench_static" / name).read_text(encoding="utf-8")


def bind(port: int, *, option: str = "--ui-port") -> socket.socket:
    """A loopback socket on `port` (0: any free), or PortInUseError naming `option`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener still refuses
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} is in use: pass {option} N") from None
        raise
    return sock


@contextlib.asynccontextmanager
async def serve_workbench(
    workbench: Workbench, *, port: int = 0, sock: socket.socket | None = None
) -> AsyncIterator[str]:
    """Serve the workbench on loopback in this event loop (the world's); yield its URL."""
    sock = sock or bind(port)
    server = uvicorn.Server(uvicorn.Config(workbench.app(), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise TimeoutError("the workbench did not start within 10 s")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=5)
        sock.close()


__all__ = ["AlertScenario", "FlagSource", "PortInUseError", "Workbench", "bind", "serve_workbench"]
