"""Slack's side of the bot's Events/Interactivity endpoint: requests signed as Slack signs them.

`SlackSender` builds each request Slack sends to an app, one method per kind: a slash
command, a button click (`block_actions`), a modal's `view_submission`, an Events API
`event_callback` (`app_home_opened`), or any body (`signed`). Each returns a
`SignedRequest`: the body and headers exactly as Slack sends them (form-encoded or JSON,
`X-Slack-Signature` over the signing secret, `X-Slack-Retry-*` on retries; forged or aged
on demand). `await request.send()` posts it to the bot, and again for a replay:

    response = await sender.click(user, "rollout_abort", value, message=card).send()
    request = sender.slash_command(user, name, "payment-router abort", timestamp=old)
    assert verifier.is_valid_request(request.body, request.headers) is False

With a `SlackSim`, the trigger ids and response_urls it carries are minted by the sim (so
what the bot sends there is recorded, and a view opened with the trigger is the clicking
user's), and the sim applies the bot's answer to a view submission as Slack does.

`SlackSender(..., socket_mode=True)` delivers through the sim's Socket Mode server instead
(`SlackSim.socket`): the same request, as the envelope Slack sends in its place (no
signature: the app's connection is authenticated by its app-level token), answered by the
envelope's ack. `.send()` returns the ack as an HTTP answer would be (200, the ack's
payload as the JSON body), so a test reads both transports alike; each `SignedRequest` has
its own envelope id, so sending one twice is a redelivery of the same envelope.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from bot.sim.slack.limits import block_elements
from bot.sim.slack.socket_mode import envelope_of
from bot.sim.slack.workspace import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID

if TYPE_CHECKING:
    from bot.sim.slack.server import SlackSim

__all__ = ["SignedRequest", "SlackSender"]

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request body exactly as Slack sends it, with its signed headers, for `sender`'s
    `events_url`. `view_id` names the view a view_submission submits; `envelope_id` is the
    id of the envelope carrying it in Socket Mode (the same at every `send`)."""

    body: str
    headers: dict[str, str]
    sender: SlackSender = field(repr=False, compare=False)
    view_id: str | None = None
    envelope_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    async def send(self) -> httpx.Response:
        """POST this request to the sender's `events_url` (each call sends it again).

        A view submission's answer is then applied to the sim as Slack does: a 200 with an
        empty body or `{}` closes the view, `response_action` `errors` keeps it open
        (`sim.view_errors`), `update` replaces it, `push` stacks a new one, `clear` closes
        them all. Other statuses change nothing.

        In Socket Mode, the envelope goes to the sim's open connection and the answer is its
        ack (TimeoutError: none within the sender's `timeout`; the sim records it as missing)."""
        sender = self.sender
        if sender.socket_mode:
            response = await self._deliver()
        else:
            async with httpx.AsyncClient(timeout=sender.timeout) as client:
                response = await client.post(
                    sender.events_url, content=self.body.encode(), headers=self.headers
                )
        if sender.sim is not None and self.view_id and response.status_code == 200:
            try:
                answer = json.loads(response.content) if response.content.strip() else {}
            except json.JSONDecodeError:
                answer = {}
            sender.sim.view_answered(self.view_id, answer if isinstance(answer, dict) else {})
        return response

    async def _deliver(self) -> httpx.Response:
        sim = self.sender.sim
        if sim is None:
            raise RuntimeError("Socket Mode delivery needs the SlackSim (SlackSender(sim=…))")
        kind, payload, answered = envelope_of(self.body, self.headers)
        retry = self.headers.get("X-Slack-Retry-Num")
        envelope = await sim.socket.deliver(
            kind,
            payload,
            accepts_response_payload=answered,
            envelope_id=self.envelope_id,
            retry_attempt=int(retry) if retry is not None else None,
            retry_reason=self.headers.get("X-Slack-Retry-Reason"),
            wait=self.sender.timeout,
        )
        if envelope.acked_at is None:
            raise TimeoutError(
                f"{kind} envelope {envelope.envelope_id} not acknowledged within "
                f"{self.sender.timeout:g} s"
            )
        answer = envelope.ack_payload
        if answer is None:
            return httpx.Response(200)
        return httpx.Response(200, json=answer)


class SlackSender:
    """Builds slash commands (`command="/release"` for another one), button clicks, view
    submissions and Events API callbacks (`app_home_opened`) to the bot exactly as Slack
    sends them; `.send()` on one posts it.

    Every kind takes the same signing options: `retry_num` (and `retry_reason`, default
    "http_timeout") adds Slack's retry headers, `bad_signature` forges the signature,
    `timestamp` signs for another time (a stale request).

    With `sim`, response_urls and trigger_ids are minted by the sim, so what the bot sends
    to `response_url` is recorded there (and replaces/deletes the clicked message as Slack
    would). `last_response_url` / `last_trigger_id` say what the last request carried.
    `socket_mode=True` (with `sim`): `.send()` delivers through the sim's Socket Mode
    server (see the module).
    """

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        *,
        team_id: str = TEAM_ID,
        team_domain: str = TEAM_DOMAIN,
        api_app_id: str = APP_ID,
        sim: SlackSim | None = None,
        timeout: float = 10.0,
        socket_mode: bool = False,
    ) -> None:
        self.events_url = events_url
        self.socket_mode = socket_mode
        self.signing_secret = signing_secret
        self.team_id, self.team_domain, self.api_app_id = team_id, team_domain, api_app_id
        self.sim = sim
        self.timeout = timeout
        self.last_response_url: str | None = None
        self.last_trigger_id: str | None = None

    # ------------------------------------------------------------------ signing

    def sign(self, body: str, timestamp: int) -> str:
        base = f"v0:{timestamp}:{body}".encode()
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return f"v0={digest}"

    def signed(
        self,
        body: str,
        *,
        content_type: str = FORM,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """Headers Slack adds: timestamp, `v0=` HMAC-SHA256 of `v0:{ts}:{body}`, retries."""
        ts = int(time.time()) if timestamp is None else int(timestamp)
        signature = self.sign(body, ts)
        if bad_signature:
            signature = "v0=" + hashlib.sha256(b"forged" + body.encode()).hexdigest()
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature,
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return SignedRequest(body, headers, self)

    # ------------------------------------------------------------------ what Slack sends

    def slash_command(
        self,
        user_id: str,
        user_name: str,
        text: str,
        *,
        command: str = "/rollback",
        channel_id: str = "C0PAYDEPLOY",
        channel_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """A slash command: the signed form-encoded body and headers Slack sends."""
        self.last_trigger_id = self._trigger_id(user_id)
        self.last_response_url = self._response_url(channel_id, None)
        fields = {
            "token": "verification_token_unused",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name or self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "enterprise_id": "",
            "enterprise_name": "",
            "response_url": self.last_response_url,
            "trigger_id": self.last_trigger_id,
        }
        return self.signed(
            urlencode(fields),
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    def click(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        message: dict[str, Any],
        channel_id: str = "C0PAYDEPLOY",
        block_id: str | None = None,
        user_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """A button click on `message`: the signed `payload=<json>` body (form-encoded) of
        a `block_actions` payload.

        On an ephemeral message (a response_url or chat.postEphemeral body: `response_type`
        "ephemeral" or `is_ephemeral`), Slack says `container.is_ephemeral: true` and sends
        no `message` (as in the fixture slack/bolt-python.block_actions.json)."""
        found_block, label = _find_button(message, action_id)
        block_id = block_id or found_block or "actions"
        ephemeral = message.get("response_type") == "ephemeral" or bool(message.get("is_ephemeral"))
        message_ts = message.get("ts") or (f"{time.time():.6f}" if ephemeral else None)
        self.last_trigger_id = self._trigger_id(user_id)
        self.last_response_url = self._response_url(channel_id, message_ts)
        now = time.time()
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user_id, user_name),
            "api_app_id": self.api_app_id,
            "token": "verification_token_unused",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": self.last_trigger_id,
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self._channel_name(channel_id)},
            "message": message,
            "state": {"values": {}},
            "response_url": self.last_response_url,
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": {"type": "plain_text", "text": label or action_id, "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{now:.6f}",
                }
            ],
        }
        if ephemeral:
            del payload["message"]
        return self.signed(
            _payload_form(payload),
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    def view_submission(
        self,
        user_id: str,
        view: dict[str, Any],
        values: dict[str, dict[str, str]],
        *,
        user_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """`user_id` pressing the submit button of `view` (as views.open answered it) with
        `values` ({block_id: {action_id: text}}) typed into its plain_text_input elements:
        the signed `payload=<json>` body of a `view_submission` payload. Sent, its answer
        is applied to the sim's view (see `SignedRequest.send`)."""
        state = {
            block_id: {
                action_id: {"type": "plain_text_input", "value": text}
                for action_id, text in by_action.items()
            }
            for block_id, by_action in values.items()
        }
        self.last_trigger_id = self._trigger_id(user_id)
        submitted = {
            "id": view.get("id"),
            "team_id": view.get("team_id", self.team_id),
            "type": view.get("type", "modal"),
            "blocks": view.get("blocks") or [],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": state},
            "hash": view.get("hash", ""),
            "title": view.get("title"),
            "clear_on_close": view.get("clear_on_close", False),
            "notify_on_close": view.get("notify_on_close", False),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": view.get("previous_view_id"),
            "root_view_id": view.get("root_view_id", view.get("id")),
            "app_id": view.get("app_id", APP_ID),
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": view.get("app_installed_team_id", self.team_id),
            "bot_id": view.get("bot_id", BOT_ID),
        }
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": self._user(user_id, user_name),
            "api_app_id": self.api_app_id,
            "token": "verification_token_unused",
            "trigger_id": self.last_trigger_id,
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        request = self.signed(
            _payload_form(payload),
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )
        return replace(request, view_id=str(view["id"]) if view.get("id") else None)

    def event_callback(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """An Events API `event_callback` wrapping `event`: its signed JSON body."""
        now = int(time.time())
        body = {
            "token": "verification_token_unused",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or "Ev" + secrets.token_hex(5).upper(),
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_hex(16),
        }
        return self.signed(
            json.dumps(body, separators=(",", ":")),
            content_type="application/json",
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    def app_home_opened(
        self,
        user_id: str,
        *,
        tab: str = "home",
        channel: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """A user opening the app's Home (or Messages) tab: the signed `event_callback` of
        `app_home_opened`, with the user's current home view once one was published (when
        the sim knows it), as Slack sends it."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": channel or "D" + user_id[1:],
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        if tab == "home" and self.sim is not None:
            current = self.sim.home_view(user_id)
            if current is not None:
                event["view"] = current
        return self.event_callback(
            event,
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    # ------------------------------------------------------------------ helpers

    def _user(self, user_id: str, user_name: str | None) -> dict[str, Any]:
        return {
            "id": user_id,
            "username": user_name or user_id.lower(),
            "name": user_name or user_id.lower(),
            "team_id": self.team_id,
        }

    def _channel_name(self, channel_id: str) -> str:
        if self.sim is not None:
            with contextlib.suppress(KeyError):
                return self.sim.channel_name(channel_id)
        return "payments-deploys"

    def _trigger_id(self, user: str | None = None) -> str:
        if self.sim is not None:
            return self.sim.mint_trigger_id(user)
        return f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(8)}"

    def _response_url(self, channel: str, message_ts: str | None) -> str:
        if self.sim is not None:
            return self.sim.mint_response_url(channel=channel, message_ts=message_ts)
        return (
            f"https://hooks.slack.com/commands/{self.team_id}/"
            f"{secrets.randbelow(10**12)}/{secrets.token_hex(12)}"
        )


def _payload_form(payload: dict[str, Any]) -> str:
    """`payload=<json>`, form-encoded: how Slack posts interactivity payloads."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def _find_button(message: dict[str, Any], action_id: str) -> tuple[str | None, str | None]:
    """The block id and label of the button `action_id` in `message` (None, None: none)."""
    for block in message.get("blocks") or []:
        for el in block_elements(block):
            if isinstance(el, dict) and el.get("action_id") == action_id:
                text = el.get("text") or {}
                return block.get("block_id"), text.get("text")
    return None, None
