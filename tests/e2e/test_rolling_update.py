"""A rolling update completes (issue 15): three real `rollbot serve` replicas, one after the
other, on one real PostgreSQL, behind a Service, under a steady stream of traffic.

The sequence, as a Deployment's rolling update of two replicas with ``maxSurge: 1``
performs it:

1. A and B serve (A leads; the Tier 1 card with Abort is posted by A's watch);
2. C starts on the same database and joins the Service once its ``/readyz`` is 200;
3. A leaves the Service, then gets SIGTERM; someone else (B or C) takes the lease;
4. the Abort on the card is clicked through the Service;
5. B leaves the Service, then gets SIGTERM; C leads and serves alone, and the traffic goes
   on through it for a while before it stops.

The Service is modelled in the test, client-side (`Service`): its endpoints are the
replicas that are Ready, and each request goes to the next endpoint, round-robin, on its
own connection (kube-proxy balances connections, not requests; one request per
connection makes every request a balancing decision). A replica joins the endpoints once
its ``/readyz`` answers 200. Before a replica is stopped it leaves the endpoints first, as
Kubernetes removes a terminating pod from its Service and a ``preStop`` sleep keeps the
pod up until that removal has reached every node; only then does it get SIGTERM. A request
already sent to it must still be answered: each stop holds one request open across the
SIGTERM (a webhook to A, a slash command to B, their bodies half sent), the rest of the
body sent only once the replica's log says it is waiting for that connection to close.

The traffic (`Traffic`), one request every `TICK` seconds through the Service, from before
C starts until after C serves alone: signed slash commands (``payment-router``: the status
reply, posted to the command's response_url), and Alertmanager webhooks for payment-router
and checkout, each alert firing (and, while it fires, sent again as Alertmanager repeats a
group), then resolved. An alert's resolve is sent once every earlier webhook carrying it is
processed (its inbox row, in PostgreSQL), as a group's next notification comes a
``group_interval`` after the last one: rollbot applies a group's webhooks in the order it
processes them, and a webhook stored by a standby waits for the leader's replay.

Checked against the sims' and the database's own records:
- no request refused: every answer 2xx, no connection error (the held ones included);
- none lost: every slash command's reply reached its response_url; every webhook stored was
  processed (no pending inbox row, none with an error); each card ends showing the alerts
  still firing, and none resolved;
- no card posted twice: one top-level message per card key in the channel, one per service;
- the abort: one PATCH of ``status.abort`` reached the Kubernetes sim, and the card says
  "Aborted, verified";
- the graceful stops exit 0 or -15 (uvicorn re-raises the SIGTERM once the lifespan ended),
  and someone else leads after each (the takeovers are measured).

Before each stop, the stream is waited on until a webhook a standby stored is still
waiting for the leader's replay: the next leader must process it.

Figures: ``rolling_update_requests``, ``refused``, ``lost``, ``duplicate_cards``, the
takeovers after A's and B's exits (``takeover_after_a_s``, ``takeover_after_b_s``: 0 when C
already led), and ``left_to_the_next_leader`` (the webhooks standbys had stored and the
leader not processed yet, at A's stop and at B's).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import sqlalchemy as sa

from bot.sim import alerts as sim_alerts
from bot.sim import world as sim_world
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, ONCALL, SimWorld
from tests.e2e.serving import Replica, leading, stopping
from tests.helpers import eventually

pytestmark = [pytest.mark.timeout(180), pytest.mark.peer("postgres")]

LEASE = 1.5  # server.leader_lease_seconds: a takeover at the next try, a third of it
TICK = 0.15  # one request through the Service every TICK seconds
# The kinds of request in turn. Its period (5) is prime to the number of endpoints (2
# or 3, or 1): round-robin sends each kind to every endpoint (a period of 2 sent every
# command to one replica and every webhook to the other).
PATTERN = ("command", "webhook", "command", "webhook", "webhook")
PHASE = 20  # requests answered through each set of endpoints before the next step
SERVICES = (sim_world.ROLLOUT, sim_world.CHECKOUT)
FIRING_AT_ONCE = 2  # per service: a new alert fires while fewer are unresolved
SLACK = "/slack/events"
ALERTMANAGER = "/webhooks/alertmanager"


def _figure(name: str, value: object) -> None:
    print(f"FIGURE {name}={value}")


# ── the Service ──────────────────────────────────────────────────────────────────────────


@dataclass
class Answer:
    """One request through the Service (or held open to one replica), and how it ended."""

    kind: str  # "command", "webhook", "click"
    endpoint: str  # the replica's name
    status: int | None = None  # None: no answer (a connection error)
    error: str | None = None
    body: Any = None

    @property
    def refused(self) -> bool:
        return self.status is None or not 200 <= self.status < 300


class Service:
    """A Kubernetes Service over the replicas, client-side: the Ready endpoints, and one
    request to each in turn (round-robin), each on its own connection."""

    def __init__(self) -> None:
        self.endpoints: list[Replica] = []
        self.answers: list[Answer] = []
        self._turn = itertools.count()
        self._client = httpx.AsyncClient(
            timeout=15, limits=httpx.Limits(max_keepalive_connections=0)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def join(self, replica: Replica) -> None:
        """Once its /readyz answers 200 (a standby is Ready too)."""
        await replica.wait_status("/readyz", 200, timeout=30)
        self.endpoints.append(replica)

    def leave(self, replica: Replica) -> None:
        self.endpoints.remove(replica)

    def answered_by(self, replica: Replica) -> int:
        return sum(1 for a in self.answers if a.endpoint == replica.name and not a.refused)

    async def more_answers(self, n: int, *, what: str) -> None:
        """Until `n` more requests have been answered (by the endpoints there are now)."""
        before = sum(1 for a in self.answers if a.status is not None)
        await eventually(
            lambda: sum(1 for a in self.answers if a.status is not None) >= before + n,
            timeout=n * TICK * 4 + 10,
            what=what,
        )

    async def post(
        self, kind: str, path: str, content: bytes, headers: Mapping[str, str]
    ) -> Answer:
        """POST to the next endpoint; the answer (or the connection error) is recorded."""
        replica = self.endpoints[next(self._turn) % len(self.endpoints)]
        return await self._send(replica, kind, path, content, headers)

    async def _send(
        self,
        replica: Replica,
        kind: str,
        path: str,
        content: bytes | AsyncIterator[bytes],
        headers: Mapping[str, str],
    ) -> Answer:
        answer = Answer(kind, replica.name)
        self.answers.append(answer)
        try:
            response = await self._client.post(
                f"{replica.url}{path}", content=content, headers=dict(headers)
            )
        except httpx.TransportError as err:
            answer.error = repr(err)
            return answer
        answer.status = response.status_code
        with contextlib.suppress(ValueError):
            answer.body = response.json()
        return answer

    @contextlib.asynccontextmanager
    async def held(
        self,
        replica: Replica,
        kind: str,
        path: str,
        content: bytes,
        headers: Mapping[str, str],
    ) -> AsyncIterator[asyncio.Task[Answer]]:
        """A request to `replica` whose first half is on the wire when the block starts
        (and the replica has read it: it answered a /healthz sent after it); the second
        half is sent when the block ends. Yields the task that answers."""
        half_sent = asyncio.Event()
        release = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield content[: len(content) // 2]
            half_sent.set()  # httpx asks for the next chunk once it wrote this one
            await release.wait()
            yield content[len(content) // 2 :]

        sized = {**headers, "Content-Length": str(len(content))}
        task = asyncio.create_task(self._send(replica, kind, path, body(), sized))
        try:
            await asyncio.wait_for(half_sent.wait(), timeout=10)
            # The replica's event loop reads a socket as soon as it is readable: a later
            # request on a new connection answered means it has read the held one's
            # headers (uvicorn now counts that connection as a request in progress).
            assert (await replica.get("/healthz")).status_code == 200
            yield task
        finally:
            release.set()


# ── the traffic ──────────────────────────────────────────────────────────────────────────


@dataclass
class Alert:
    """One alert of the stream: its webhooks' inbox rows, and whether it was resolved."""

    service: str
    name: str
    rows: list[int] = field(default_factory=list)
    sending: int = 0  # its webhooks not answered yet
    resolved: bool = False

    @property
    def settled(self) -> bool:
        """Every webhook sent for it is answered, and processed (rows: the processed)."""
        return self.sending == 0 and bool(self.rows)

    @property
    def summary(self) -> str:
        return f"rolling update alert {self.name}"

    def webhook(self, status: str) -> dict[str, Any]:
        alert = sim_alerts.alert(
            self.name,
            service=self.service,
            status=status,
            labels={"slo": "error_rate"},
            summary=self.summary,
            ends_at=datetime.now(UTC) if status == "resolved" else None,
        )
        return sim_alerts.webhook([alert])


class Traffic:
    """The stream through the Service: a slash command and a webhook in turn, every TICK
    seconds, each sent without waiting for the last to be answered."""

    def __init__(self, world: SimWorld, service: Service, db_url: str) -> None:
        self.world = world
        self.service = service
        self.commands: dict[str, Answer] = {}  # response_url id → its command's answer
        self.alerts: list[Alert] = []
        self._engine = sa.create_engine(db_url)
        self._processed: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._names = itertools.count(1)

    def close(self) -> None:
        self._engine.dispose()

    # requests

    def command(self) -> tuple[str, bytes, dict[str, str]]:
        """A signed `/rollback payment-router` (its status reply), and its response_url id."""
        request = self.world.sender.slash_command(ONCALL[0], ONCALL[1], sim_world.ROLLOUT)
        response_url = parse_qs(request.body)["response_url"][0]
        return response_url.rsplit("/", 1)[-1], request.body.encode(), request.headers

    async def send_command(self) -> None:
        rid, body, headers = self.command()
        self.commands[rid] = await self.service.post("command", SLACK, body, headers)

    def new_alert(self, service: str) -> Alert:
        alert = Alert(service, f"RollingUpdate{next(self._names):03d}")
        self.alerts.append(alert)
        return alert

    async def send_webhook(self, alert: Alert, status: str) -> None:
        async with self.sending(alert):
            answer = await self.service.post(
                "webhook", ALERTMANAGER, *_alertmanager_request(alert.webhook(status))
            )
            self.keep_row(alert, answer)

    @staticmethod
    @contextlib.asynccontextmanager
    async def sending(alert: Alert) -> AsyncIterator[None]:
        """A webhook for `alert` on its way: no resolve is decided meanwhile."""
        alert.sending += 1
        try:
            yield
        finally:
            alert.sending -= 1

    @staticmethod
    def keep_row(alert: Alert, answer: Answer) -> None:
        if isinstance(answer.body, dict) and "id" in answer.body:
            alert.rows.append(int(answer.body["id"]))

    async def next_webhook(self, service: str) -> None:
        """A new alert while fewer than FIRING_AT_ONCE are unresolved; else the resolve of
        the oldest whose webhooks are all answered and processed; else a repeat of the
        newest firing."""
        unresolved = [a for a in self.alerts if a.service == service and not a.resolved]
        if len(unresolved) < FIRING_AT_ONCE:
            await self.send_webhook(self.new_alert(service), "firing")
            return
        self._processed = await asyncio.to_thread(self._processed_rows)
        done = [a for a in unresolved if a.settled and set(a.rows) <= self._processed]
        if done:
            done[0].resolved = True
            await self.send_webhook(done[0], "resolved")
        else:
            await self.send_webhook(unresolved[-1], "firing")

    async def stored_by_standbys(self, replicas: list[Replica]) -> int:
        """Until a webhook that one of `replicas` stored as a standby waits for the
        leader's replay (stored, not processed); how many do."""
        names = {r.name for r in replicas if not await leading(r.url)}

        async def waiting() -> int:
            stored = {
                int(a.body["id"])
                for a in self.service.answers
                if a.kind == "webhook" and a.endpoint in names and isinstance(a.body, dict)
            }
            return len(stored - await asyncio.to_thread(self._processed_rows))

        return await eventually(
            waiting, timeout=20, what=f"a webhook stored by {sorted(names)}, not processed"
        )

    def _processed_rows(self) -> set[int]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id FROM webhook_inbox WHERE processed_at IS NOT NULL")
            )
            return {int(r[0]) for r in rows}

    # the stream

    async def run(self, stop: asyncio.Event) -> None:
        services = itertools.cycle(SERVICES)
        for kind in itertools.cycle(PATTERN):
            if stop.is_set():
                break
            work = self.send_command() if kind == "command" else self.next_webhook(next(services))
            task = asyncio.create_task(work)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK)  # the stream's pace
        if self._tasks:
            await asyncio.gather(*self._tasks)


def _alertmanager_request(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return json.dumps(payload).encode(), {
        "Content-Type": "application/json",
        "User-Agent": "Alertmanager/0.25.0",
        "Authorization": f"Bearer {ALERTMANAGER_TOKEN}",
    }


# ── the records ──────────────────────────────────────────────────────────────────────────


def _inbox(url: str) -> list[tuple[int, bool, str | None]]:
    """Every inbox row: its id, whether it was processed, its error."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, processed_at IS NOT NULL, error FROM webhook_inbox")
            ).all()
    finally:
        engine.dispose()
    return [(int(r[0]), bool(r[1]), r[2]) for r in rows]


def _texts(card: Mapping[str, Any] | None) -> list[str]:
    """The card's texts (header, sections, context), for a failure's message."""
    out = []
    for block in (card or {}).get("blocks") or []:
        if isinstance(block.get("text"), dict):
            out.append(str(block["text"].get("text", ""))[:200])
        for element in block.get("elements") or []:
            text = element.get("text")
            out.append(str(text.get("text", "") if isinstance(text, dict) else text)[:200])
    return out


def _card_key(message: Mapping[str, Any]) -> str | None:
    """The key rollbot posted the message under (Slack message metadata), if any."""
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    key = payload.get("key")
    return key if isinstance(key, str) else None


def _top_level(world: SimWorld) -> list[dict[str, Any]]:
    return [
        m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m.get("ts"))
    ]


def _alert_lines(card: Mapping[str, Any] | None) -> list[str]:
    """The card's firing-alert lines (`• summary`), without the bullet."""
    for block in (card or {}).get("blocks") or []:
        text = str((block.get("text") or {}).get("text", ""))
        if text.startswith("*Firing alerts*"):
            return sorted(line.removeprefix("• ") for line in text.splitlines()[1:])
    return []


def _firing_alerts(world: SimWorld, traffic: Traffic) -> dict[str, tuple[list[str], list[str]]]:
    """Per service: (the alerts its card shows firing, the summaries still firing)."""
    return {
        service: (
            _alert_lines(world.card(service)),
            sorted(
                f"{a.name}: {a.summary}"
                for a in traffic.alerts
                if a.service == service and not a.resolved
            ),
        )
        for service in SERVICES
    }


async def _leader(replicas: list[Replica]) -> Replica | None:
    for replica in replicas:
        if await leading(replica.url):
            return replica
    return None


async def _graceful_exit(replica: Replica) -> int:
    code = await asyncio.to_thread(replica.proc.wait, 30)
    assert code in (0, -signal.SIGTERM), replica.tail()
    assert "Application shutdown complete" in replica.log.read_text(), replica.tail()
    return code


async def _waiting_for_connections(replica: Replica) -> None:
    """Until `replica` (signalled) says it waits for a connection in progress to close."""
    await eventually(
        lambda: "Waiting for connections to close" in replica.log.read_text(),
        timeout=15,
        what=lambda: f"{replica.name} draining its connections\n{replica.tail()}",
    )


# ── the test ─────────────────────────────────────────────────────────────────────────────


async def test_a_rolling_update_completes(
    postgres_server: Any, postgres_db_url: str, tmp_path: Path
) -> None:
    settings = {"server": {"leader_lease_seconds": LEASE}}
    async with SimWorld(
        speed=600,
        start_bot=False,
        checkout=True,
        database_url=postgres_db_url,
        settings=settings,
    ) as world:
        replicas: list[Replica] = []
        service = Service()
        traffic = Traffic(world, service, postgres_db_url)
        stop = asyncio.Event()
        stream: asyncio.Task[None] | None = None
        with stopping(replicas):
            try:
                # 1. A leads and posts the card; B serves beside it.
                a = await Replica.start(world, "a", tmp_path)
                replicas.append(a)
                await a.wait_leading()
                world.attach_bot(a.url)  # the sender's requests go through `service`
                b = await Replica.start(world, "b", tmp_path)
                replicas.append(b)
                await service.join(a)
                await service.join(b)
                card = await world.wait_for(
                    lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
                    timeout=60,
                    what="the card with Abort (Tier 1)",
                )
                stream = asyncio.create_task(traffic.run(stop))
                started = time.monotonic()

                # 2. C starts on the same database and joins once Ready.
                c = await Replica.start(world, "c", tmp_path)
                replicas.append(c)
                await service.join(c)
                await service.more_answers(PHASE, what="traffic through A, B and C")
                assert service.answered_by(c) > 0

                # 3. A leaves the Service, then stops, a webhook to it half sent, and a
                # webhook a standby stored waiting for A's replay.
                pending_a = await traffic.stored_by_standbys([b, c])
                held_alert = traffic.new_alert(sim_world.ROLLOUT)
                async with traffic.sending(held_alert):
                    async with service.held(
                        a,
                        "webhook",
                        ALERTMANAGER,
                        *_alertmanager_request(held_alert.webhook("firing")),
                    ) as held_a:
                        service.leave(a)
                        signalled_a = time.monotonic()
                        a.proc.send_signal(signal.SIGTERM)
                        await _waiting_for_connections(a)
                    traffic.keep_row(held_alert, await held_a)
                await _graceful_exit(a)
                exited_a = time.monotonic()
                successor = await eventually(
                    lambda: _leader([b, c]), timeout=10 * LEASE, what="B or C leading"
                )
                takeover_a = time.monotonic() - exited_a
                print(
                    f"A: {successor.name} leads {takeover_a:.2f} s after A's exit, "
                    f"{time.monotonic() - signalled_a:.2f} s after its SIGTERM"
                )

                # 4. The Abort, clicked through the Service mid-way.
                abort = world.button(card, "rollout_abort")
                assert abort is not None
                click = world.sender.click(
                    ONCALL[0],
                    "rollout_abort",
                    abort["value"],
                    message=card,
                    channel_id=CHANNEL_ID,
                    block_id=abort["block_id"],
                    user_name=ONCALL[1],
                )
                clicked = await service.post("click", SLACK, click.body.encode(), click.headers)
                await service.more_answers(PHASE, what="traffic through B and C")

                # 5. B leaves the Service, then stops, a slash command to it half sent, and
                # a webhook the standby (B or C) stored waiting for the leader's replay.
                pending_b = await traffic.stored_by_standbys([b, c])
                rid, body, headers = traffic.command()
                async with service.held(b, "command", SLACK, body, headers) as held_b:
                    service.leave(b)
                    b_led = await leading(b.url)
                    signalled_b = time.monotonic()
                    b.proc.send_signal(signal.SIGTERM)
                    await _waiting_for_connections(b)
                traffic.commands[rid] = await held_b
                await _graceful_exit(b)
                exited_b = time.monotonic()
                await c.wait_leading(timeout=10 * LEASE)
                takeover_b = time.monotonic() - exited_b if b_led else 0.0
                print(
                    f"B: C leads {takeover_b:.2f} s after B's exit "
                    f"({'B led' if b_led else 'C led already'}; "
                    f"{time.monotonic() - signalled_b:.2f} s after B's SIGTERM)"
                )

                # C serves alone for a while.
                assert service.endpoints == [c]
                await service.more_answers(PHASE, what="traffic through C alone")
            finally:
                stop.set()
                if stream is not None:
                    await stream
                await service.aclose()
                traffic.close()
            wall = time.monotonic() - started

            # Nothing refused.
            refused = [x for x in service.answers if x.refused]
            assert not refused, refused
            assert clicked.status == 200

            # Nothing lost: every reply, every webhook processed, the cards' last state.
            def unanswered() -> list[str]:
                replied = {r.id for r in world.slack.responses}
                return [rid for rid in traffic.commands if rid not in replied]

            await eventually(
                lambda: not unanswered(),
                timeout=30,
                what=lambda: f"every command's reply; missing {unanswered()}\n{c.tail()}",
            )
            replies = [r.body for r in world.slack.responses if r.id in traffic.commands]
            assert all("payment-router" in json.dumps(r) for r in replies), replies

            async def pending() -> list[tuple[int, bool, str | None]]:
                rows = await asyncio.to_thread(_inbox, postgres_db_url)
                return [r for r in rows if not r[1]]

            async def drained() -> bool:
                return not await pending()

            await eventually(drained, timeout=30, what=lambda: f"the inbox drained\n{c.tail()}")
            rows = await asyncio.to_thread(_inbox, postgres_db_url)
            assert [r for r in rows if r[2] is not None] == [], rows
            sent_rows = {row for alert in traffic.alerts for row in alert.rows}
            assert sent_rows <= {r[0] for r in rows}

            def cards_true() -> bool:
                return all(
                    shown == firing for shown, firing in _firing_alerts(world, traffic).values()
                )

            await eventually(
                cards_true,
                timeout=30,
                what=lambda: f"the cards' last alert state: {_firing_alerts(world, traffic)}",
            )

            # No card twice.
            tops = _top_level(world)
            keys = [_card_key(m) for m in tops]
            assert None not in keys, tops
            duplicates = len(keys) - len(set(keys))
            assert duplicates == 0, keys
            service_cards = [world.card(s) for s in SERVICES]
            assert sorted(m["ts"] for m in service_cards if m) == sorted(m["ts"] for m in tops)

            # One abort, verified.
            await eventually(
                lambda: "Aborted, verified" in json.dumps(world.card(), ensure_ascii=False),
                timeout=30,
                what=lambda: (
                    f"the abort verified on the card: {_texts(world.card())}; its thread: "
                    f"{[m.get('text') for m in world.slack.thread(CHANNEL_ID, card['ts'])]}; "
                    f"the click went to {clicked.endpoint}"
                ),
            )
            patches = [
                r
                for r in world.kube.requests
                if r.method == "PATCH" and "abort" in json.dumps(r.body)
            ]
            assert len(patches) == 1, patches

            by = {name: sum(1 for x in service.answers if x.endpoint == name) for name in "abc"}
            kinds = {
                k: sum(1 for x in service.answers if x.kind == k) for k in ("command", "webhook")
            }
            print(
                f"requests per replica: {by}; {kinds}; {wall:.1f} s of traffic; "
                f"{len(traffic.alerts)} alerts, {sum(a.resolved for a in traffic.alerts)} "
                f"resolved; the click went to {clicked.endpoint}"
            )
            _figure("rolling_update_requests", len(service.answers))
            _figure("refused", len(refused))
            _figure("lost", len(unanswered()) + len(await pending()))
            _figure("duplicate_cards", duplicates)
            _figure("takeover_after_a_s", f"{takeover_a:.2f}")
            _figure("takeover_after_b_s", f"{takeover_b:.2f}")
            _figure("left_to_the_next_leader", f"{pending_a},{pending_b}")
