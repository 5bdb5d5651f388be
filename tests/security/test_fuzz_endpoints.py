"""Every endpoint fuzzed, signed and unsigned, well-formed and not (issue 12, "Also").

One simulated world for the module (rollbot served by uvicorn, with the Kubernetes, Argo,
Slack, PagerDuty, Jira and LaunchDarkly sims, and an attacker's HTTP server that records
every hit); Hypothesis draws the requests (`fuzz_strategies`: bodies shaped like each
sender's, with hostile text, clean or with faults injected). Aspects under test:

- no request is ever answered 5xx, and no answer carries a traceback;
- ``/slack/events``: whatever is not signed with the signing secret, within Slack's five
  minutes, is 401; what is signed is never 401 (unless it is not UTF-8, which Slack never
  sends); a command or interaction answered 200 shows its effect: an answer in the ack,
  or (after an empty ack or "working on it") one posted to its response_url or a modal
  opened with its trigger id; a byte-for-byte replay is acked as the first was, and a
  command's work runs once; over the limit, 413;
- ``/webhooks/alertmanager`` and ``/webhooks/pagerduty``: without the token, signature or
  workflow secret, 401 and nothing stored; authentic and accepted (2xx), the body is in the
  webhook inbox and is processed without error; authentic but unprocessable, 400 and kept
  as poison (its body in the inbox, marked poison); a PagerDuty delivery sent again under
  another ``X-Webhook-Id`` is a duplicate; over the limit, 413;
- ``/runbooks/…``: forged, altered, expired, other-service and outsider links, with the
  CSRF pair and Origin right or wrong, any method: never a 303 (an action that ran);
- ``/healthz``, ``/readyz`` and ``/metrics`` answer 200 to GET whatever the query; unknown
  paths and methods, and bytes that are not HTTP, are never 5xx;
- after each fuzz run, once every request has been handled (a signed sentinel's reply
  received, the work queue joined, the inbox drained: positive evidence, no sleeps), nothing
  hostile has run in the whole module: no write to the Kubernetes API, no flag flip, no
  PagerDuty acknowledge or resolve, no Jira ticket, nothing sent to an URL taken from an
  unsigned request, no Slack broadcast (``<!channel>``, ``<!here>``, ``<!everyone>``) or
  planted link in any mrkdwn, no audited action that ran;
- each run reached what it is about (`reached`): signed requests answered 200 and 400,
  answers after an empty ack, accepted and poisoned webhooks, each refusal of a link; a
  strategy that drifts to garbage fails the test instead of passing quietly.

The inputs that gave 500 (or a 202 that failed later) are kept as explicit `@example`s.

Hypothesis runs with ``derandomize=True`` (and no example database): the examples are a
function of the test's source, so CI sees the same ones as a developer. Each `@given`
function is synchronous and runs in a worker thread (`asyncio.to_thread`), sending each
request through the module's event loop, where rollbot is served (`Fuzz.run`); the test
itself then awaits the checks. The whole module takes about a minute.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.core import links
from bot.core.signatures import pagerduty_signature
from bot.sim import world as sim_world
from bot.sim.harness import (
    ALERTMANAGER_TOKEN,
    CHANNEL_ID,
    OUTSIDER,
    PD_LINK_SECRET,
    PD_WEBHOOK_SECRET,
    PD_WORKFLOW_SECRET,
    SIGNING_SECRET,
    SimWorld,
)
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim
from bot.web.guard import DEFAULT_LIMIT, LIMITS
from tests.helpers import Catcher
from tests.security import fuzz_strategies as fs

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]

T = TypeVar("T")
FALLBACK = "C0FALLBACK"
SLACK_LIMIT = LIMITS["/slack/"]
AM_LIMIT = LIMITS["/webhooks/alertmanager"]
PD_LIMIT = LIMITS["/webhooks/pagerduty"]
#: What a request's own answer must never be: a traceback or an exception's repr.
LEAKS = ("Traceback", 'File "', "Error(", "Exception(")


def fuzz_settings(max_examples: int) -> Callable[[T], T]:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # the same examples on every run and machine (CI reproducible)
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@dataclass
class Fuzz:
    """The module's world and what the checks need to remember across tests."""

    world: SimWorld
    ld: LaunchDarklySim
    attacker: Catcher
    client: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop
    incident_id: str
    db: str
    signatures: set[str] = field(default_factory=set)  # Slack signatures sent signed
    deliveries: set[str] = field(default_factory=set)  # PagerDuty deliveries accepted
    accepted: list[int] = field(default_factory=list)  # inbox rows of bodies accepted
    replayed: list[str] = field(default_factory=list)  # response_urls of replayed commands
    counter: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # "what status": how many

    def tally(self, what: str, status: int) -> None:
        key = f"{what} {status}"
        self.seen[key] = self.seen.get(key, 0) + 1

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """From the fuzz thread: run `coro` on the module's loop, where rollbot serves."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def unique(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:06d}"

    def rows(self, where: str = "1", args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """The webhook inbox, read straight from the database file."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            return list(conn.execute(f"SELECT * FROM webhook_inbox WHERE {where}", args))

    def copies(self, body: bytes) -> int:
        """How many rows of the inbox hold `body` (as kept: see `kept_as_poison`). The
        PagerDuty sim delivers its own webhooks meanwhile, so rows are not counted all."""
        text = body.decode("utf-8", "backslashreplace")
        kept = (text, text.replace("\x00", "\\x00"))
        return len(self.rows("body IN (?, ?)", kept))

    def mint_response_url(self) -> tuple[str, str]:
        url = self.world.slack.mint_response_url(channel=CHANNEL_ID)
        return url, url.rsplit("/", 1)[1]

    def replies(self, rid: str) -> list[Any]:
        return [r for r in self.world.slack.responses if r.id == rid]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fx(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("fuzz")
    with LaunchDarklySim() as ld:
        for key in (
            "payments.new-router.enabled",
            "payments.new-router.circuit-open",
            *sim_world.CHECKOUT_FLAGS.values(),
        ):
            ld.add_flag("default", key, on=False)
        async with (
            Catcher() as attacker,
            SimWorld(
                speed=600,
                workdir=workdir,
                pagerduty=True,
                jira=True,
                checkout=True,
                slack_rate_limits=False,
                settings={
                    "slack": {"fallback_channel": FALLBACK},
                    "flags": {"provider": "launchdarkly", "url": ld.url, "project": "default"},
                },
                env={"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN},
            ) as world,
        ):
            world.slack.add_channel(FALLBACK, "rollbot-ops")
            await world.wait_for_card()
            incident = await world.wait_for(
                lambda: world.pd.incident_by_key(fs.KEY), timeout=30, what="the incident"
            )
            async with httpx.AsyncClient(base_url=world.url, timeout=60) as client:
                yield Fuzz(
                    world=world,
                    ld=ld,
                    attacker=attacker,
                    client=client,
                    loop=asyncio.get_running_loop(),
                    incident_id=incident["id"],
                    db=str(workdir / "rollbot.db"),
                )


# ── what every answer must be ───────────────────────────────────────────────────────────


def no_5xx(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:500])
    assert not any(leak in response.text for leak in LEAKS), (what, response.text[:500])


# ── after each run: every request handled, nothing hostile ran ─────────────────────────


async def settle(fx: Fuzz) -> None:
    """Positive evidence that everything sent so far has been handled: a signed status
    command's reply arrives (the Slack path and its work queue run), the work queue is
    joined (every job submitted before it is done), and the webhook inbox has nothing left
    unprocessed (the webhooks' background tasks mark their rows when done)."""
    url, rid = fx.mint_response_url()
    body = urlencode(
        {
            "command": "/rollback",
            "text": "payment-router status",
            "user_id": OUTSIDER[0],
            "user_name": OUTSIDER[1],
            "channel_id": CHANNEL_ID,
            "team_id": "T0PAYMENTS",
            "response_url": url,
            "trigger_id": "1.2.3",
        }
    )
    sent = await fx.world.sender.signed(body).send()
    assert sent.status_code == 200
    await fx.world.wait_for(lambda: fx.replies(rid), timeout=30, what="the sentinel's reply")
    await asyncio.wait_for(fx.world.rollbot.work.join(), timeout=60)
    deadline = time.monotonic() + 60
    while await fx.world.rollbot.store.pending_webhooks():
        assert time.monotonic() < deadline, "webhook deliveries still unprocessed"
        await asyncio.sleep(0.02)


BROADCASTS = ("<!channel", "<!here", "<!everyone", "<https://evil.example")
RAN = {"succeeded", "failed", "error"}


def _mrkdwn_texts(value: Any) -> list[str]:
    """Every string Slack renders as mrkdwn in a message or view: top-level ``text`` and
    text objects of type mrkdwn (plain_text shows markup as typed)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "mrkdwn" and isinstance(item.get("text"), str):
                found.append(item["text"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


async def nothing_hostile_ran(fx: Fuzz) -> None:
    """The module-wide invariant, checked after `settle`."""
    world = fx.world
    writes = [f"{r.method} {r.path}" for r in world.kube.requests if r.method != "GET"]
    assert writes == [], writes
    flips = [r.path for r in fx.ld.requests if r.method not in ("GET", "HEAD")]
    assert flips == [], flips
    pd_actions = [e for e in world.pd.events() if e.get("event_action") != "trigger"]
    assert pd_actions == [], pd_actions
    pd_writes = [
        f"{r.method} {r.path}"
        for r in world.pd.requests
        if r.method in ("PUT", "PATCH", "DELETE") or r.path.endswith("/merge")
    ]
    assert pd_writes == [], pd_writes
    assert all(i["status"] == "triggered" for i in world.pd.incidents()), world.pd.incidents()
    assert world.jira.created_count == 0, world.jira.issues
    jira_writes = [f"{r.method} {r.path}" for r in world.jira.requests if r.method != "GET"]
    assert jira_writes == [], jira_writes
    assert fx.attacker.hits == []
    hostile = [r.id for r in world.slack.responses if r.id.startswith("hostile")]
    assert hostile == []
    for call in world.slack.calls:
        texts = [call.body.get("text")] if isinstance(call.body.get("text"), str) else []
        texts += _mrkdwn_texts(call.body.get("blocks")) + _mrkdwn_texts(call.body.get("view"))
        for text in texts:
            assert not any(b in text for b in BROADCASTS), (call.path, text)
    for reply in world.slack.responses:
        body = reply.body if isinstance(reply.body, dict) else {}
        texts = [body["text"]] if isinstance(body.get("text"), str) else []
        for text in texts + _mrkdwn_texts(body.get("blocks")):
            assert not any(b in text for b in BROADCASTS), ("response_url", text[:300])
    ran = [
        (e.entry.action, e.entry.actor, e.entry.result)
        for e in await world.rollbot.store.audit_entries()
        if e.entry.result in RAN
    ]
    assert ran == [], ran


def reached(fx: Fuzz, prefix: str, auths: tuple[str, ...], status: int) -> bool:
    """Whether a request of `prefix`, sent with one of `auths`, was answered `status`: the
    fuzz reached that code (a strategy that drifted to garbage fails here)."""
    return any(
        k.startswith(prefix) and k.endswith(f" {status}") and k.split()[-2] in auths
        for k in fx.seen
    )


# ── /slack/events ───────────────────────────────────────────────────────────────────────

#: How a request is (not) signed: half of them properly, the rest each way it can fail.
SLACK_FORGED = (
    "unsigned",
    "bad-signature",
    "other-secret",
    "stale",
    "future",
    "other-body",
    "v1-scheme",
    "timestamp:{now}.0",
    "timestamp:abc",
    "timestamp:",
    "timestamp:+{now}",
    "timestamp:1e3",
    "timestamp:-{now}",
    "timestamp:{now}{now}",
    "timestamp:\u0661\u0662\u0663",
)
SLACK_AUTH = st.one_of(st.just("signed"), st.sampled_from(SLACK_FORGED))


@st.composite
def slack_case(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ("command", "command", "interaction", "interaction", "event", "raw", "huge")
        )
    )
    case: dict[str, Any] = {"kind": kind, "auth": draw(SLACK_AUTH)}
    if case["auth"] == "signed" and draw(st.integers(0, 9)) == 0:
        case["replay"] = True  # sent twice, byte for byte
    if kind == "command":
        case["body"] = draw(fs.slash_command())
    elif kind == "interaction":
        case["body"] = draw(fs.interaction())
    elif kind == "event":
        case["body"] = draw(fs.event_callback())
    elif kind == "huge":
        case["body"] = {"size": draw(fs.padded(SLACK_LIMIT))}
    else:
        case["body"] = draw(fs.slack_raw_bodies)
    odd_types = ("text/plain", "application/json", "multipart/form-data; boundary=x", "")
    case["content_type"] = draw(st.sampled_from((None,) * 8 + odd_types))
    return case


def _substitute(value: Any, placeholder: str, actual: Any) -> Any:
    if value == placeholder:
        return actual
    if isinstance(value, dict):
        return {k: _substitute(v, placeholder, actual) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, placeholder, actual) for v in value]
    return value


def _slack_bytes(
    fx: Fuzz, case: dict[str, Any], response_url: str, trigger: str
) -> tuple[bytes, str]:
    """The body and its natural content type."""
    kind, body = case["kind"], case["body"]
    body = _substitute(body, fs.TRIGGER_ID, trigger)
    if kind == "command":
        fields = _substitute(body, fs.RESPONSE_URL, response_url)
        return _form(fields), "application/x-www-form-urlencoded"
    if kind == "interaction":
        payload = _substitute(body, fs.RESPONSE_URL, response_url)
        text = json.dumps(payload, ensure_ascii=True)
        return b"payload=" + quote(text).encode(), "application/x-www-form-urlencoded"
    if kind == "event":
        event = _substitute(body, fs.EVENT_ID, fx.unique("EvFUZZ"))
        return json.dumps(event, ensure_ascii=True).encode(), "application/json"
    if kind == "huge":
        fields = {
            "command": "/rollback",
            "user_id": OUTSIDER[0],
            "response_url": response_url,
            "text": "",
        }
        rest = len(urlencode(fields))
        fields["text"] = "x" * max(0, body["size"] - rest)
        return _form(fields), "application/x-www-form-urlencoded"
    return body, "application/x-www-form-urlencoded"


def _form(fields: dict[str, str]) -> bytes:
    """Form-encoded; a lone surrogate is kept as its (invalid) UTF-8 bytes, %-escaped."""
    return urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()


def _query(fields: dict[str, str]) -> str:
    """A query string; a lone surrogate as its (invalid) UTF-8 bytes, %-escaped."""
    return urlencode(fields, encoding="utf-8", errors="surrogatepass")


def _slack_headers(fx: Fuzz, body: bytes, auth: str) -> dict[str, str]:
    now = int(time.time())

    def sign(data: bytes, ts: int, secret: str = SIGNING_SECRET) -> str:
        base = f"v0:{ts}:".encode() + data
        return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()

    if auth == "unsigned":
        return {}
    if auth == "signed":
        # Within Slack's five minutes, a second this body was not yet signed at: the same
        # body drawn twice is not a byte-for-byte replay (unless the case asks for one).
        while (signature := sign(body, now)) in fx.signatures:
            now -= 1
        fx.signatures.add(signature)
        with contextlib.suppress(UnicodeDecodeError):  # as the sim's sender signs text
            assert signature == fx.world.sender.sign(body.decode("utf-8"), now)
        return {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": signature}
    if auth == "bad-signature":
        return {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + "0" * 64}
    if auth == "other-secret":
        return {
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": sign(body, now, "not-the-signing-secret"),
        }
    if auth in ("stale", "future"):
        ts = now - 400 if auth == "stale" else now + 400
        return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sign(body, ts)}
    if auth.startswith("timestamp:"):  # malformed, the signature made over it as given
        ts_text = auth.removeprefix("timestamp:").format(now=now)
        base = f"v0:{ts_text}:".encode() + body
        signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts_text, "X-Slack-Signature": signature}
    if auth == "other-body":
        return {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": sign(b"x" + body, now)}
    assert auth == "v1-scheme"
    return {
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": "v1=" + sign(body, now)[3:],
    }


async def send_slack(fx: Fuzz, case: dict[str, Any]) -> None:
    fx.counter += 1
    signed = case["auth"] == "signed"
    if signed:
        response_url, rid = fx.mint_response_url()
    else:  # the attacker's URL, or one at the Slack sim that no one minted
        rid = fx.unique("hostile")
        response_url = (
            f"{fx.attacker.url}/steal"
            if fx.counter % 2
            else f"{fx.world.slack.url}/response_url/{rid}"
        )
    trigger = fx.world.slack.mint_trigger_id(OUTSIDER[0])
    body, natural_type = _slack_bytes(fx, case, response_url, trigger)
    headers = _slack_headers(fx, body, case["auth"])
    headers["Content-Type"] = case["content_type"] or natural_type
    what = f"slack {case['kind']} {case['auth']}"
    if len(body) > SLACK_LIMIT:
        status = await status_before_body("/slack/events", headers, len(body), fx)
        fx.tally(what, status)
        assert status == 413, what
        return
    raw = {k: v.encode() for k, v in headers.items()}  # a header may hold non-ASCII
    response = await fx.client.post("/slack/events", content=body, headers=raw)
    fx.tally(what, response.status_code)
    no_5xx(response, what)
    if not signed:
        assert response.status_code == 401, (what, response.status_code, response.text[:300])
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        assert response.status_code == 401  # Slack never sends anything but UTF-8
        return
    assert response.status_code != 401, (what, response.text[:300])
    if case.get("replay"):  # acked as the first was; a command's work is not run again
        again = await fx.client.post("/slack/events", content=body, headers=raw)
        assert again.status_code == response.status_code, (what, again.text[:300])
        if case["kind"] == "command":
            fx.replayed.append(rid)
    if response.status_code != 200 or case["kind"] not in ("command", "interaction", "huge"):
        return
    working = response.content.startswith(b":hourglass_flowing_sand:")  # "working on it…"
    if (response.content.strip() and not working) or _acks_only(case):
        return
    # Acked empty, or "working on it": the answer goes to the response_url (when the body
    # kept the one the Slack sim minted for it), or a modal opens with the trigger id; one
    # of them comes.
    carried = case["kind"] == "huge" or (
        isinstance(case["body"], dict) and case["body"].get("response_url") == fs.RESPONSE_URL
    )
    if carried:

        def effect() -> list[Any]:
            opened = fx.world.slack.calls_to("views.open")
            return fx.replies(rid) or [c for c in opened if c.body.get("trigger_id") == trigger]

        await fx.world.wait_for(effect, timeout=30, what=f"the answer to {what}")
        fx.tally(f"{what} answered", 200)


async def status_before_body(path: str, headers: dict[str, str], length: int, fx: Fuzz) -> int:
    """The status rollbot answers to a request's headers alone, announcing `length` bytes
    of body and sending none (a body over the limit is refused before it is read)."""
    host, port = fx.world.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode() + b"\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return int(status.split()[1])


def _acks_only(case: dict[str, Any]) -> bool:
    """A click on the card's runbook URL button: Slack opens the link itself; rollbot
    only acks (bot.slack.listeners.actions.on_runbook)."""
    actions = case["body"].get("actions") if isinstance(case["body"], dict) else None
    return isinstance(actions, list) and any(
        isinstance(a, dict) and a.get("action_id") == "runbook_open" for a in actions
    )


def _signed(kind: str, body: Any) -> dict[str, Any]:
    return {"kind": kind, "auth": "signed", "body": body, "content_type": None}


def _outsider_command(text: str, command: str = "/rollback") -> dict[str, Any]:
    """What the outsider would try first: a well-formed command."""
    return _signed(
        "command",
        {
            "command": command,
            "text": text,
            "user_id": OUTSIDER[0],
            "user_name": OUTSIDER[1],
            "channel_id": CHANNEL_ID,
            "team_id": "T0PAYMENTS",
            "response_url": fs.RESPONSE_URL,
            "trigger_id": fs.TRIGGER_ID,
        },
    )


def _outsider_click(action_id: str, service: str = "payment-router") -> dict[str, Any]:
    """The outsider clicks a card's button, with the value rollbot rendered on it."""
    ns, revision = ("payments", 42) if service == "payment-router" else ("checkout", 17)
    value = {"s": service, "ns": ns, "n": service, "r": revision, "e": 1}
    return _signed(
        "interaction",
        {
            "type": "block_actions",
            "user": {"id": OUTSIDER[0], "username": OUTSIDER[1], "team_id": "T0PAYMENTS"},
            "team": {"id": "T0PAYMENTS"},
            "channel": {"id": CHANNEL_ID},
            "container": {"type": "message", "channel_id": CHANNEL_ID, "message_ts": "1.2"},
            "trigger_id": fs.TRIGGER_ID,
            "response_url": fs.RESPONSE_URL,
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "rollout_actions",
                    "type": "button",
                    "value": json.dumps(value, separators=(",", ":")),
                }
            ],
        },
    )


BREAK_GLASS_VIEW = {"id": "V1", "hash": "h", "type": "modal", "callback_id": "circuit_break_glass"}
REVERT_VIEW = {"id": "V2", "hash": "h", "type": "modal", "callback_id": "revert_record"}


async def test_slack_events_fuzzed(fx: Fuzz) -> None:
    @fuzz_settings(250)
    @given(case=slack_case())
    # Well formed, from someone who may not: refused, answered, nothing run.
    @example(case=_outsider_command("payment-router status"))
    @example(case={**_outsider_command("payment-router status"), "replay": True})
    @example(case=_outsider_command("payment-router abort"))
    @example(case=_outsider_command("payment-router ack"))
    @example(case=_outsider_command("checkout circuit open break-glass <!channel> down"))
    @example(case=_outsider_command("start payment-router 9.9.9", command="/release"))
    @example(case=_outsider_click("rollout_abort"))
    @example(case=_outsider_click("rollout_promote_full"))
    @example(case=_outsider_click("circuit_open", "checkout"))
    # Signed, and answered 500 (found by this fuzz, or by hand from what it found): Bolt
    # indexes into known keys unchecked, and rollbot's error handler raised without a
    # response_url; a slash command without user_id; odd values in a modal's state.
    @example(case=_signed("interaction", {"view": None}))
    @example(case=_signed("interaction", {"type": "view_submission", "view": None}))
    @example(case=_signed("interaction", {"type": "block_actions", "actions": []}))
    @example(case=_signed("interaction", {"type": "block_actions", "actions": {}}))
    @example(case=_signed("interaction", {"type": "block_actions", "actions": [{"action_id": 5}]}))
    @example(case=_signed("interaction", {"type": "interactive_message", "callback_id": 5}))
    @example(case=_signed("raw", b'{"command": "/rollback", "text": 5}'))
    @example(case=_signed("command", {"command": "/release", "text": "list"}))
    @example(
        case=_signed(
            "interaction",
            {
                "type": "view_submission",
                "user": {"id": OUTSIDER[0]},
                "view": {**BREAK_GLASS_VIEW, "state": {"values": {"break_glass_reason": "x"}}},
            },
        )
    )
    @example(
        case=_signed(
            "interaction",
            {
                "type": "view_submission",
                "user": {"id": OUTSIDER[0]},
                "view": {
                    **REVERT_VIEW,
                    "private_metadata": '{"s": "payment-router", "r": "x"}',
                    "state": {"values": {"revert_url": {"url": {"value": "https://x.example/1"}}}},
                },
            },
        )
    )
    def run(case: dict[str, Any]) -> None:
        fx.run(send_slack(fx, case))

    await asyncio.to_thread(run)
    await settle(fx)
    await nothing_hostile_ran(fx)
    for kind, status in (
        ("command", 200),
        ("interaction", 200),
        ("event", 200),
        ("interaction", 400),
        ("huge", 200),
    ):
        assert reached(fx, f"slack {kind}", ("signed",), status), (kind, status, fx.seen)
    assert reached(fx, "slack huge", ("signed", *SLACK_FORGED), 413), fx.seen
    for kind in ("command", "interaction"):  # an answer came after an empty ack
        assert any(k.startswith(f"slack {kind} signed answered") for k in fx.seen), fx.seen
    assert reached(fx, "slack", SLACK_FORGED, 401), fx.seen
    # A command sent twice byte for byte ran once: at most one answer on its response_url
    # (the work queue is joined, so a second would be there).
    answers = [len(fx.replies(rid)) for rid in fx.replayed]
    assert 1 in answers and max(answers) == 1, answers


# ── the webhooks ────────────────────────────────────────────────────────────────────────


def _json_bytes(value: Any, ascii_only: bool) -> bytes:
    """JSON as a sender would write it; a lone surrogate, unescaped, becomes bytes that
    are not UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def webhook_case(
    draw: st.DrawFn,
    shaped: st.SearchStrategy[Any],
    authentic: tuple[str, ...],
    forged: tuple[str, ...],
    limit: int,
) -> dict[str, Any]:
    kind = draw(st.sampled_from(("shaped",) * 6 + ("raw", "huge")))
    auth = st.one_of(st.sampled_from(authentic), st.sampled_from(forged))  # half and half
    case: dict[str, Any] = {"kind": kind, "auth": draw(auth)}
    if kind == "shaped":
        case["body"] = draw(shaped)
        case["ascii"] = draw(st.sampled_from((True, True, True, False)))
    elif kind == "huge":
        case["size"] = draw(fs.padded(limit))
    else:
        case["body"] = draw(fs.webhook_raw_bodies)
    return case


def _sized(body: dict[str, Any], field: list[Any], size: int) -> bytes:
    """`body` with the string at `field` (a path into it) padded so the JSON is `size`
    bytes long."""
    target = body
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = ""
    rest = len(json.dumps(body))
    target[field[-1]] = "x" * max(0, size - rest)
    return json.dumps(body).encode()


def _placeholders(fx: Fuzz, value: Any) -> Any:
    value = _substitute(value, fs.EVENT_ID, fx.unique("01FUZZEVENT"))
    return _substitute(value, fs.INCIDENT, fx.incident_id)


async def post_webhook(
    fx: Fuzz, path: str, body: bytes, headers: dict[str, str], limit: int, what: str
) -> httpx.Response | None:
    """POST `body`; None when it is over `limit` (then only its headers were sent, and the
    answer was 413 before any of the body was read)."""
    if len(body) > limit:
        assert await status_before_body(path, headers, len(body), fx) == 413, what
        return None
    before = fx.copies(body)
    response = await fx.client.post(path, content=body, headers=headers)
    fx.tally(what, response.status_code)
    no_5xx(response, what)
    if response.status_code == 401:
        assert fx.copies(body) == before, (what, "an unauthenticated body was stored")
    return response


def kept_as_poison(fx: Fuzz, response: httpx.Response, body: bytes, source: str) -> None:
    """A 400 to an authentic body: it is kept, as poison, byte for byte (bytes that are
    not UTF-8 and NUL as backslash escapes)."""
    row = response.json()["kept_as"]
    assert isinstance(row, int), response.text
    [kept] = fx.rows("id = ?", (row,))
    assert kept["poison"] == 1 and kept["source"] == source
    assert kept["body"] == body.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def kept_for_processing(fx: Fuzz, row: int, body: bytes, source: str) -> None:
    [kept] = fx.rows("id = ?", (row,))
    assert kept["poison"] == 0 and kept["source"] == source and kept["body"] == body.decode()
    fx.accepted.append(row)


def processed_cleanly(fx: Fuzz) -> None:
    """After `settle`: every body accepted was processed, without an error."""
    marks = ",".join("?" * len(fx.accepted))
    failed = [
        (r["id"], r["source"], r["error"], r["body"][:300])
        for r in fx.rows(f"id IN ({marks})", tuple(fx.accepted))
        if r["processed_at"] is None or r["error"] is not None
    ]
    assert failed == [], failed


# Alertmanager ────────────────────────────────────────────────────────────────────────

AM_AUTHENTIC = ("bearer", "bearer-lowercase", "bearer-padded")
AM_FORGED = ("none", "wrong-token", "basic", "bearer-empty", "pagerduty-secret", "token-prefix")


def _am_headers(auth: str) -> dict[str, str]:
    value = {
        "bearer": f"Bearer {ALERTMANAGER_TOKEN}",
        "bearer-lowercase": f"bearer {ALERTMANAGER_TOKEN}",
        "bearer-padded": f"Bearer   {ALERTMANAGER_TOKEN}",
        "wrong-token": "Bearer not-the-token",
        "basic": "Basic " + base64.b64encode(f"x:{ALERTMANAGER_TOKEN}".encode()).decode(),
        "bearer-empty": "Bearer",
        "pagerduty-secret": f"Bearer {PD_WORKFLOW_SECRET}",
        "token-prefix": f"Bearer {ALERTMANAGER_TOKEN[:-1]}",
    }.get(auth)
    headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.27.0"}
    if value is not None:
        headers["Authorization"] = value
    return headers


async def send_alertmanager(fx: Fuzz, case: dict[str, Any]) -> None:
    if case["kind"] == "huge":
        big = {
            "version": "4",
            "status": "firing",
            "alerts": [{"status": "firing", "labels": {"alertname": "FuzzBig"}, "annotations": {}}],
        }
        body = _sized(big, ["alerts", 0, "annotations", "summary"], case["size"])
    elif case["kind"] == "shaped":
        body = _json_bytes(case["body"], case["ascii"])
    else:
        body = case["body"]
    what = f"alertmanager {case['kind']} {case['auth']}"
    path = "/webhooks/alertmanager"
    response = await post_webhook(fx, path, body, _am_headers(case["auth"]), AM_LIMIT, what)
    if response is None:
        return
    if case["auth"] not in AM_AUTHENTIC:
        assert response.status_code == 401, (what, response.status_code, response.text[:300])
    elif response.status_code == 200:
        kept_for_processing(fx, response.json()["id"], body, "alertmanager")
    else:
        assert response.status_code == 400, (what, response.status_code, response.text[:300])
        kept_as_poison(fx, response, body, "alertmanager")


async def test_alertmanager_webhook_fuzzed(fx: Fuzz) -> None:
    @fuzz_settings(100)
    @given(
        case=webhook_case(
            shaped=fs.alertmanager_body(), authentic=AM_AUTHENTIC, forged=AM_FORGED, limit=AM_LIMIT
        )
    )
    def run(case: dict[str, Any]) -> None:
        fx.run(send_alertmanager(fx, case))

    await asyncio.to_thread(run)
    await settle(fx)
    processed_cleanly(fx)
    await nothing_hostile_ran(fx)
    for auths, status in ((AM_AUTHENTIC, 200), (AM_AUTHENTIC, 400), (AM_FORGED, 401)):
        assert reached(fx, "alertmanager", auths, status), (status, fx.seen)


# PagerDuty ───────────────────────────────────────────────────────────────────────────

PD_AUTHENTIC = ("signed", "signed-rotation", "workflow")
PD_FORGED = (
    "none",
    "bad-signature",
    "other-body",
    "bearer-webhook-secret",
    "bearer-wrong",
    "v0-scheme",
)


def _pd_headers(body: bytes, auth: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Webhook-Id": "fuzz"}
    good = pagerduty_signature(PD_WEBHOOK_SECRET, body)
    headers.update(
        {
            "signed": {"X-PagerDuty-Signature": good},
            "signed-rotation": {"X-PagerDuty-Signature": f"v1={'0' * 64},{good}"},
            "workflow": {"Authorization": f"Bearer {PD_WORKFLOW_SECRET}"},
            "none": {},
            "bad-signature": {"X-PagerDuty-Signature": "v1=" + "0" * 64},
            "other-body": {
                "X-PagerDuty-Signature": pagerduty_signature(PD_WEBHOOK_SECRET, body + b" ")
            },
            "bearer-webhook-secret": {"Authorization": f"Bearer {PD_WEBHOOK_SECRET}"},
            "bearer-wrong": {"Authorization": f"Bearer {PD_WORKFLOW_SECRET}x"},
            "v0-scheme": {"X-PagerDuty-Signature": "v0=" + good.removeprefix("v1=")},
        }[auth]
    )
    return headers


async def send_pagerduty(fx: Fuzz, case: dict[str, Any]) -> None:
    if case["kind"] == "huge":
        note = {
            "event": {
                "id": fx.unique("01FUZZBIG"),
                "event_type": "incident.annotated",
                "agent": {"summary": "Fuzz"},
                "data": {
                    "type": "incident_note",
                    "incident": {"id": fx.incident_id, "incident_key": fs.KEY},
                },
            }
        }
        body = _sized(note, ["event", "data", "content"], case["size"])
    elif case["kind"] == "shaped":
        body = _json_bytes(_placeholders(fx, case["body"]), case["ascii"])
    else:
        body = case["body"]
    what = f"pagerduty {case['kind']} {case['auth']}"
    headers = _pd_headers(body, case["auth"])
    response = await post_webhook(fx, "/webhooks/pagerduty", body, headers, PD_LIMIT, what)
    if response is None:
        return
    source = "pagerduty-workflow" if case["auth"] == "workflow" else "pagerduty"
    if case["auth"] not in PD_AUTHENTIC:
        assert response.status_code == 401, (what, response.status_code, response.text[:300])
    elif response.status_code == 202:
        delivery = response.json()["id"]
        assert delivery not in fx.deliveries, (what, delivery)
        fx.deliveries.add(delivery)
        rows = fx.rows("body = ? AND source = ?", (body.decode(), source))
        assert len(rows) == 1, (what, len(rows))
        kept_for_processing(fx, rows[0]["id"], body, source)
        if case.get("again"):  # delivered again, under another X-Webhook-Id
            headers["X-Webhook-Id"] = "fuzz-again"
            again = await post_webhook(fx, "/webhooks/pagerduty", body, headers, PD_LIMIT, what)
            assert again is not None and again.status_code == 200, (what, again)
            assert again.json() == {"status": "duplicate", "id": delivery}, again.text
            assert len(fx.rows("body = ? AND source = ?", (body.decode(), source))) == 1
    elif response.status_code == 200:  # a delivery accepted before
        assert response.json()["status"] == "duplicate", (what, response.text[:300])
        assert response.json()["id"] in fx.deliveries, (what, response.text[:300])
    else:
        assert response.status_code == 400, (what, response.status_code, response.text[:300])
        kept_as_poison(fx, response, body, source)


@st.composite
def pagerduty_case(draw: st.DrawFn) -> dict[str, Any]:
    workflow = draw(st.booleans())
    shaped = fs.workflow_body() if workflow else fs.pagerduty_event()
    authentic = ("workflow",) if workflow else ("signed", "signed-rotation")
    case = draw(webhook_case(shaped, authentic, PD_FORGED, PD_LIMIT))
    case["again"] = draw(st.integers(0, 4)) == 0
    if case["kind"] != "shaped" and draw(st.booleans()):
        case["auth"] = draw(st.sampled_from(PD_AUTHENTIC))
    return case


def _authentic(auth: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "shaped", "auth": auth, "body": body, "ascii": True, "again": False}


async def test_pagerduty_webhook_fuzzed(fx: Fuzz) -> None:
    @fuzz_settings(150)
    @given(case=pagerduty_case())
    # Authentic, answered 202, then failed in processing instead of being kept as poison
    # (found by this fuzz).
    @example(
        case=_authentic(
            "workflow",
            {"action": "Rollback Tier 1: abort", "incident": "x", "user": {"id": "PGHOST01"}},
        )
    )
    @example(
        case=_authentic(
            "workflow",
            {
                "action": "Rollback Tier 1: abort",
                "incident": {"id": fs.INCIDENT, "incident_key": fs.KEY},
                "user": "x",
            },
        )
    )
    @example(
        case=_authentic(
            "signed",
            {
                "event": {
                    "id": fs.EVENT_ID,
                    "event_type": "incident.annotated",
                    "data": {"type": "incident_note", "incident": "x"},
                    "agent": "y",
                }
            },
        )
    )
    @example(
        case=_authentic(
            "signed",
            {
                "event": {
                    "id": fs.EVENT_ID,
                    "event_type": "incident.escalated",
                    "data": {"type": "incident", "incident_key": fs.KEY, "assignments": ["x"]},
                }
            },
        )
    )
    def run(case: dict[str, Any]) -> None:
        fx.run(send_pagerduty(fx, case))

    await asyncio.to_thread(run)
    await settle(fx)
    processed_cleanly(fx)
    await nothing_hostile_ran(fx)
    signed = ("signed", "signed-rotation")
    for auths, status in (
        (signed, 202),
        (signed, 200),  # a duplicate
        (signed, 400),
        (("workflow",), 202),
        (("workflow",), 400),
        (PD_FORGED, 401),
    ):
        assert reached(fx, "pagerduty", auths, status), (auths, status, fx.seen)


# ── /runbooks/… ─────────────────────────────────────────────────────────────────────────

RUNBOOK_LIMIT = LIMITS["/runbooks/"]
#: The links a caller can hold. Only ever for someone who may not act (the outsider, or a
#: Slack id nobody has): a link is a person's credential, and the on-call's would act.
TOKENS = (
    "none",
    "garbage",
    "outsider",
    "outsider",
    "outsider-expired",
    "outsider-other-service",
    "nobody",
    "other-secret",
    "altered",
    "too-long",
)
ORIGINS = ("none", "self", "public", "evil", "null", "referer-evil")
METHODS = ("GET", "GET", "POST", "POST", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")


@st.composite
def runbook_case(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly what a browser holding a link sends (the action form, the renew form, the
    page), with the link, CSRF pair and Origin each right or wrong; now and then any
    method on any path under /runbooks."""
    scenario = draw(st.sampled_from(("act",) * 5 + ("renew", "renew", "page", "page", "any")))
    service = draw(st.sampled_from(fs.SERVICES))
    method, path, tail = {
        "act": ("POST", None, "/actions"),
        "renew": ("POST", None, "/renew"),
        "page": ("GET", None, ""),
        "any": (None, None, None),
    }[scenario]
    if scenario == "any":
        method = draw(st.sampled_from(METHODS))
        path = draw(st.sampled_from((None, None, "/runbooks", "/runbooks/", "/runbooks//")))
        service = draw(st.sampled_from(fs.SERVICES) | fs.text())
        tail = draw(st.sampled_from(("", "/actions", "/renew", "/x", "/actions/x")))
    return {
        "method": method,
        "path": path,
        "service": service,
        "tail": tail,
        "token": draw(st.sampled_from(TOKENS)),
        "csrf": draw(st.sampled_from(("none", "right", "right", "wrong"))),
        "cookie": draw(st.sampled_from(("none", "right", "right", "wrong"))),
        "origin": draw(st.sampled_from(ORIGINS)),
        "action": draw(st.sampled_from(("abort", "circuit-open", "circuit-close")) | fs.text()),
        "query": draw(st.dictionaries(fs.text(), fs.text(), max_size=2)),
        "form": draw(st.dictionaries(fs.text(), fs.text(), max_size=2)),
        "content_type": draw(
            st.sampled_from(
                ("application/x-www-form-urlencoded",) * 4
                + (
                    "application/x-www-form-urlencoded; charset=latin-1",
                    "multipart/form-data; boundary=x",
                    "application/json",
                    "",
                )
            )
        ),
        "raw": draw(
            st.one_of(st.none(), st.none(), st.binary(max_size=64), fs.padded(RUNBOOK_LIMIT))
        ),
    }


def _token(fx: Fuzz, kind: str, service: str) -> tuple[str | None, str | None]:
    """(token, its nonce when the link is rollbot's)."""
    now = datetime.now(UTC)
    nonce = fx.unique("fuzznonce")
    try:
        service.encode("utf-8")
    except UnicodeEncodeError:
        service = "payment-router"  # a link's claims are UTF-8: no lone surrogate

    def issue(*, secret: str = PD_LINK_SECRET, for_service: str = service, **kw: Any) -> str:
        claims = {
            "service": for_service,
            "user_id": OUTSIDER[0],
            "user_name": "Someone <!channel>",
            "issued_at": now,
            "ttl": timedelta(minutes=15),
            "nonce": nonce,
        } | kw
        return links.issue(secret.encode(), **claims)

    if kind == "none":
        return None, None
    if kind == "garbage":
        return "eyJ" + fx.unique("x") + ".not-a-mac", None
    if kind == "outsider":
        return issue(), nonce
    if kind == "outsider-expired":
        return issue(issued_at=now - timedelta(hours=2)), nonce
    if kind == "outsider-other-service":
        other = "checkout" if service != "checkout" else "payment-router"
        return issue(for_service=other), nonce
    if kind == "nobody":
        return issue(user_id="U0NOBODY", user_name="Nobody"), nonce
    if kind == "other-secret":
        return issue(secret="not-the-link-secret"), None
    if kind == "altered":
        good = issue()
        return good[:-2] + ("AA" if not good.endswith("AA") else "BB"), None
    assert kind == "too-long"
    return issue() + "A" * 3000, None


async def send_runbook(fx: Fuzz, case: dict[str, Any]) -> None:
    service = case["service"]
    segment = quote(service.encode("utf-8", "surrogatepass"), safe="")
    path = case["path"] or f"/runbooks/{segment}{case['tail']}"
    token, nonce = _token(fx, case["token"], service)
    right = links.csrf_token(PD_LINK_SECRET.encode(), nonce or "x")
    csrf = {"none": None, "right": right, "wrong": "0" * len(right)}[case["csrf"]]
    cookie = {"none": None, "right": right, "wrong": "1" * len(right)}[case["cookie"]]
    headers: dict[str, str] = {"Content-Type": case["content_type"]}
    headers.update(
        {
            "none": {},
            "self": {"Origin": fx.world.url},
            "public": {"Origin": fx.world.url},
            "evil": {"Origin": "https://evil.example"},
            "null": {"Origin": "null"},
            "referer-evil": {"Referer": "https://evil.example/page"},
        }[case["origin"]]
    )
    if cookie is not None:
        headers["Cookie"] = f"rollbot_csrf={cookie}"
    query = dict(case["query"])
    form = dict(case["form"])
    for fields in (query, form):
        if token is not None:
            fields["token"] = token
    if csrf is not None:
        form["csrf"] = csrf
    form["action"] = case["action"]
    if isinstance(case["raw"], int):
        body = _form({**form, "pad": ""})
        body = _form({**form, "pad": "x" * max(0, case["raw"] - len(body))})
    elif isinstance(case["raw"], bytes):
        body = case["raw"]
    else:
        body = _form(form)
    shown = case["path"] or f"/runbooks/{'<known>' if service in fs.SERVICES else '<x>'}"
    what = f"runbooks {case['method']} {shown}{case['tail']} {case['token']}"
    if case["method"] in ("GET", "HEAD", "OPTIONS"):
        body = b""
    if len(body) > RUNBOOK_LIMIT:
        assert await status_before_body(path, headers, len(body), fx) == 413, what
        return
    raw = {k: v.encode() for k, v in headers.items()}
    target = f"{path}?{_query(query)}" if query else path
    response = await fx.client.request(case["method"], target, content=body, headers=raw)
    fx.tally(what, response.status_code)
    no_5xx(response, what)
    # 303 is the answer to an action that ran (post/redirect/get): never, for these links.
    assert response.status_code != 303, (what, response.headers.get("location"))


async def test_runbook_pages_fuzzed(fx: Fuzz) -> None:
    @fuzz_settings(100)
    @given(case=runbook_case())
    def run(case: dict[str, Any]) -> None:
        fx.run(send_runbook(fx, case))

    await asyncio.to_thread(run)
    await settle(fx)
    await nothing_hostile_ran(fx)
    # The fuzz reached each refusal: the outsider's valid link (not authorised), a bad
    # link, an expired one, a failed CSRF or Origin check, an unknown service.
    seen = " | ".join(f"{k}={v}" for k, v in fx.seen.items() if k.startswith("runbooks"))

    for status in (200, 403, 404, 405, 410):
        assert f" {status}=" in seen, (status, seen)


# ── health, metrics, and everything else ────────────────────────────────────────────────

OTHER_METHODS = ("GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO")
OTHER_PATHS = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
    "/slack",
    "/slack/events/x",
    "/webhooks",
    "/webhooks/",
    "/webhooks/alertmanager/x",
    "/webhooks/pagerduty/../alertmanager",
    "/metrics/",
    "/favicon.ico",
    "/..%2f..%2fetc/passwd",
    "//healthz",
    "/%00",
    "/" + "a" * 4000,
)


@st.composite
def other_case(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "method": draw(st.sampled_from(OTHER_METHODS)),
        "path": draw(
            st.sampled_from(OTHER_PATHS)
            | fs.text().map(lambda t: "/" + quote(t.encode("utf-8", "surrogatepass")))
        ),
        "query": draw(st.dictionaries(fs.text(), fs.text(), max_size=3)),
        "body": draw(st.binary(max_size=64) | fs.padded(DEFAULT_LIMIT)),
        "headers": draw(
            st.dictionaries(
                st.sampled_from(("X-Forwarded-For", "X-Real-IP", "Accept", "Cookie", "X-Fuzz")),
                st.sampled_from(("127.0.0.1", "*/*", "a=b", "x" * 1000, "")),
                max_size=3,
            )
        ),
    }


async def send_other(fx: Fuzz, case: dict[str, Any]) -> None:
    body = case["body"] if isinstance(case["body"], bytes) else b"x" * case["body"]
    path = case["path"]
    what = f"other {case['method']} {path[:40]}"
    if len(body) > DEFAULT_LIMIT and path.startswith(("/healthz", "/readyz", "/metrics")):
        assert await status_before_body(path, {}, len(body), fx) == 413, what
        return
    if len(body) > DEFAULT_LIMIT:
        body = body[:DEFAULT_LIMIT]
    target = f"{path}?{_query(case['query'])}" if case["query"] else path
    response = await fx.client.request(
        case["method"],
        target,
        content=body if case["method"] not in ("GET", "HEAD") else b"",
        headers=case["headers"],
    )
    fx.tally(what, response.status_code)
    no_5xx(response, what)
    if case["method"] in ("GET", "HEAD") and path in ("/healthz", "/readyz", "/metrics"):
        assert response.status_code == 200, (what, response.status_code, response.text[:300])


async def test_health_metrics_and_unknown_paths_fuzzed(fx: Fuzz) -> None:
    @fuzz_settings(100)
    @given(case=other_case())
    def run(case: dict[str, Any]) -> None:
        fx.run(send_other(fx, case))

    await asyncio.to_thread(run)
    await settle(fx)
    await nothing_hostile_ran(fx)
    answered = {k.rsplit(" ", 1)[1] for k in fx.seen if k.startswith("other ")}
    assert {"200", "404", "405"} <= answered, fx.seen


#: Bytes on the socket that are not (quite) HTTP.
RAW_REQUESTS = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://evil.example/healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-" + b"a" * 70000 + b": 1\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: \x00\x01\r\n\r\n",
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Content-Length: 7\r\n\r\nabcdefg",
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /webhooks/pagerduty HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nabc\r\n0\r\n\r\n",
            b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
            b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
            b"\r\n\r\n\r\n",
        )
    ),
)


async def send_raw(fx: Fuzz, data: bytes) -> None:
    """Write `data` and a blank line (so that a request line or header block ends), read
    the status line: an answer, if any, is not 5xx. No answer (the server closed, or
    waits for more) is fine for bytes that are not HTTP."""
    host, port = fx.world.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data + b"\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
        except (ConnectionError, TimeoutError):
            line = b""
    finally:
        writer.close()
    if not line.startswith(b"HTTP/1."):
        fx.tally("raw", 0)
        return
    status = int(line.split()[1])
    fx.tally("raw", status)
    assert status < 500, (data[:200], line)


async def test_bytes_that_are_not_http(fx: Fuzz) -> None:
    @fuzz_settings(50)
    @given(data=RAW_REQUESTS)
    def run(data: bytes) -> None:
        fx.run(send_raw(fx, data))

    await asyncio.to_thread(run)
    await settle(fx)  # the server still answers, and what it answered changed nothing
    await nothing_hostile_ran(fx)
    assert fx.seen.get("raw 200") and fx.seen.get("raw 400"), fx.seen
