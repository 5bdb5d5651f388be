"""POST /webhooks/alertmanager: a real Starlette app with just this route, driven by httpx,
over a real SqlStore on SQLite.

Aspects under test:
- auth: missing header, wrong token, `Basic` scheme, empty bearer → 401 with a JSON reason
  and nothing stored or run; no token configured → 503 (fail closed); the right token in
  any scheme case → accepted;
- bad input → 400 with exactly what is wrong, nothing stored; an oversized body → 413;
- nothing lost: every fixture body is stored (raw, headers without Authorization) before
  the 200; the 200 carries the inbox id; a burst is stored and marked in grouped
  transactions, each row its own; a store that fails (its table gone) → 503 and
  on_alerts is never called;
- after the 200: on_alerts gets the parsed alerts and the group, the row is marked
  processed; when on_alerts raises, the row keeps the error;
- counters: webhooks by outcome, alerts by service and status, unknown alerts by name;
- replay_alerts runs rows left pending (a replica died after its 200).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from bot.core.alerts import default_matchers
from bot.core.model import Alert
from bot.incidents.inbox import replay_alerts
from bot.runtime.metrics import Metrics
from bot.store import SqlStore, open_store
from bot.web.alertmanager import PATH, AlertmanagerReceiver, alertmanager_route
from tests.helpers import eventually
from tests.plugins.fixtures import FIXTURES

TOKEN = "am-token-0123456789"
AM = FIXTURES / "alertmanager"
FIRING = (AM / "alertmanager-0.25.firing.json").read_bytes()
MATCHERS = {"checkout": default_matchers("checkout", rollout="checkout", namespace="shop")}


class Received:
    """What on_alerts was called with (and, optionally, a failure to raise)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Alert], dict[str, Any]]] = []
        self.fail: Exception | None = None

    async def __call__(self, alerts: list[Alert], group: dict[str, Any]) -> None:
        self.calls.append((alerts, group))
        if self.fail is not None:
            raise self.fail


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'rollbot.db'}")
    try:
        yield s
    finally:
        await s.close()


Client = Callable[..., Awaitable[httpx.Response]]


class Harness:
    def __init__(self, store: SqlStore, token: str | None) -> None:
        self.store = store
        self.received = Received()
        self.metrics = Metrics()
        self.route = alertmanager_route(
            token=token,
            store=store,
            on_alerts=self.received,
            metrics=self.metrics,
            matchers=MATCHERS,
            max_body_bytes=64 * 1024,
        )
        self.receiver: AlertmanagerReceiver = self.route.endpoint.__self__  # type: ignore[attr-defined]
        self.app = Starlette(routes=[self.route])
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://rollbot"
        )

    async def post(
        self, body: bytes = FIRING, *, auth: str | None = f"Bearer {TOKEN}", **headers: str
    ) -> httpx.Response:
        if auth is not None:
            headers["Authorization"] = auth
        headers.setdefault("Content-Type", "application/json")
        return await self.client.post(PATH, content=body, headers=headers)

    def counter(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def rows(self) -> list[Any]:
        async with self.store.engine.begin() as conn:
            return list((await conn.execute(sa.text("SELECT * FROM webhook_inbox"))).mappings())

    async def processed(self, webhook_id: int, timeout: float = 5.0) -> Any:
        async def done() -> Any:
            record = await self.store.get_webhook(webhook_id)
            return record if record is not None and record.processed_at is not None else None

        return await eventually(
            done, timeout=timeout, interval=0.01, what=f"webhook {webhook_id} processed"
        )


@pytest.fixture
async def harness(store: SqlStore) -> AsyncIterator[Harness]:
    h = Harness(store, TOKEN)
    try:
        yield h
    finally:
        await h.receiver.drain()
        await h.client.aclose()


# ── auth ─────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "missing Authorization: Bearer token"),
        ("Bearer wrong-token", "invalid bearer token"),
        (f"Bearer {TOKEN}x", "invalid bearer token"),
        ("Bearer ", "invalid bearer token"),
        ("Basic YWxlcnRtYW5hZ2VyOmFtLXRva2Vu", "Authorization must use the Bearer scheme"),
        (TOKEN, "Authorization must use the Bearer scheme"),
    ],
)
async def test_unauthorised_requests_are_refused(
    harness: Harness, auth: str | None, message: str
) -> None:
    response = await harness.post(auth=auth)
    assert response.status_code == 401
    assert response.json() == {"error": message}
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await harness.rows() == []
    assert harness.received.calls == []
    assert harness.counter("rollbot_alertmanager_webhooks_total", outcome="unauthorized") == 1


async def test_no_token_configured_fails_closed(store: SqlStore) -> None:
    for token in (None, ""):
        h = Harness(store, token)
        response = await h.post()
        assert response.status_code == 503
        assert response.json() == {"error": "alertmanager.bearer_token is not configured"}
        response = await h.post(auth=None)
        assert response.status_code == 503
        assert h.counter("rollbot_alertmanager_webhooks_total", outcome="unconfigured") == 2
        await h.client.aclose()
    async with store.engine.begin() as conn:
        count = (await conn.execute(sa.text("SELECT count(*) FROM webhook_inbox"))).scalar_one()
    assert count == 0


async def test_during_a_rotation_each_token_is_accepted(store: SqlStore) -> None:
    """``new,old``: Alertmanager's credentials file can move to the new token while the
    replicas still accept the old one."""
    h = Harness(store, f"new-token, {TOKEN}")
    try:
        assert (await h.post(auth="Bearer new-token")).status_code == 200
        assert (await h.post(auth=f"Bearer {TOKEN}")).status_code == 200
        assert (await h.post(auth="Bearer new-token,old")).status_code == 401
        assert (await h.post(auth="Bearer ")).status_code == 401
        assert (await h.post(auth="Bearer , ")).status_code == 401
    finally:
        await h.client.aclose()


async def test_scheme_is_case_insensitive(harness: Harness) -> None:
    response = await harness.post(auth=f"bearer {TOKEN}")
    assert response.status_code == 200


# ── bad input ────────────────────────────────────────────────────────────────


def _with(**changes: Any) -> bytes:
    raw = json.loads(FIRING)
    raw.update(changes)
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not JSON: Expecting value at line 1 column 1"),
        (b"[1, 2]", "body must be a JSON object, got an array"),
        (_with(version="5"), "version must be \"4\", got '5'"),
        (_with(alerts="none"), "alerts must be an array, got a string"),
        (json.dumps({"version": "4"}).encode(), "alerts is missing"),
        (_with(alerts=[{"annotations": {}}]), "alerts[0] has no labels"),
        (
            _with(alerts=[{"labels": {"alertname": "A"}}, {"labels": {}}]),
            "alerts[1].labels has no alertname",
        ),
    ],
)
async def test_bad_input_is_a_400_saying_what_is_wrong(
    harness: Harness, body: bytes, message: str
) -> None:
    response = await harness.post(body)
    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert await harness.rows() == []
    assert harness.received.calls == []
    assert harness.counter("rollbot_alertmanager_webhooks_total", outcome="invalid") == 1


async def test_oversized_body_is_a_413(harness: Harness) -> None:
    response = await harness.post(b" " * (64 * 1024 + 1))
    assert response.status_code == 413
    assert await harness.rows() == []


# ── accepted: stored first, processed after ─────────────────────────────────


@pytest.mark.parametrize("name", sorted(p.name for p in AM.glob("*.json")))
async def test_every_fixture_is_stored_then_processed(harness: Harness, name: str) -> None:
    body = (AM / name).read_bytes()
    response = await harness.post(body, **{"X-Request-Id": "r-1"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "accepted"
    (row,) = await harness.rows()
    assert row["id"] == answer["id"]
    assert row["source"] == "alertmanager"
    assert row["body"] == body.decode()
    headers = json.loads(row["headers"]) if isinstance(row["headers"], str) else row["headers"]
    assert "authorization" not in {k.lower() for k in headers}
    assert headers["x-request-id"] == "r-1"

    record = await harness.processed(answer["id"])
    assert record.error is None
    ((alerts, group),) = harness.received.calls
    raw = json.loads(body)
    assert answer["alerts"] == len(alerts) == len(raw["alerts"])
    assert [a.name for a in alerts] == [a["labels"]["alertname"] for a in raw["alerts"]]
    assert group["groupKey"] == raw["groupKey"]
    assert harness.counter("rollbot_alertmanager_webhooks_total", outcome="accepted") == 1


async def test_stored_before_the_200(store: SqlStore) -> None:
    """on_alerts sees the row already in the inbox; the 200 does not wait for on_alerts."""
    h = Harness(store, TOKEN)
    release = asyncio.Event()
    seen_rows: list[int] = []

    async def slow(alerts: list[Alert], group: dict[str, Any]) -> None:
        seen_rows.append(len(await h.rows()))
        await release.wait()

    h.receiver._on_alerts = slow
    response = await asyncio.wait_for(h.post(), timeout=5)
    assert response.status_code == 200
    assert len(await h.rows()) == 1
    assert (await store.get_webhook(response.json()["id"])).processed_at is None  # type: ignore[union-attr]
    assert len(h.receiver.tasks) == 1  # referenced while running
    release.set()
    await h.processed(response.json()["id"])
    assert seen_rows == [1]
    await h.receiver.drain()
    assert not h.receiver.tasks
    await h.client.aclose()


async def test_a_burst_is_stored_and_marked_in_few_transactions(harness: Harness) -> None:
    """A storm's webhooks: each stored before its own 200 with its own id, all processed and
    marked, the stores and the marks grouped (fewer transactions than webhooks)."""
    responses = await asyncio.gather(*(harness.post() for _ in range(40)))
    assert [r.status_code for r in responses] == [200] * 40
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 40
    rows = {row["id"]: row for row in await harness.rows()}
    assert sorted(rows) == sorted(ids) and all(r["body"] == FIRING.decode() for r in rows.values())
    for id in ids:
        assert (await harness.processed(id)).error is None
    await harness.receiver.drain()
    assert len(harness.received.calls) == 40
    assert harness.receiver.stored.batches < 40
    assert harness.receiver.marks.batches < 40


async def test_store_failure_is_a_503_and_nothing_is_processed(harness: Harness) -> None:
    async with harness.store.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE webhook_inbox"))
    response = await harness.post()
    assert response.status_code == 503
    assert response.json() == {"error": "could not store the webhook; retry later"}
    await asyncio.sleep(0)  # give a wrongly started task its chance to run
    assert harness.received.calls == []
    assert not harness.receiver.tasks
    assert harness.counter("rollbot_alertmanager_webhooks_total", outcome="store-failed") == 1


async def test_processing_error_is_kept_in_the_inbox(harness: Harness) -> None:
    harness.received.fail = RuntimeError("slack is down")
    response = await harness.post()
    assert response.status_code == 200
    record = await harness.processed(response.json()["id"])
    assert record.error == "RuntimeError: slack is down"
    assert harness.counter("rollbot_alertmanager_processing_errors_total") == 1


async def test_alerts_counted_per_service_and_unknown(harness: Harness) -> None:
    bodies = [
        FIRING,
        (AM / "alertmanager-0.25.resolved.json").read_bytes(),
        (AM / "prometheus-msteams.prom_post_request_2_alerts.json").read_bytes(),
        (AM / "prometheus-msteams.prom_post_request.json").read_bytes(),
    ]
    ids = []
    for body in bodies:
        response = await harness.post(body)
        assert response.status_code == 200
        ids.append(response.json()["id"])
    for webhook_id in ids:
        await harness.processed(webhook_id)
    c = harness.counter
    assert c("rollbot_alerts_total", service="checkout", status="firing") == 1
    assert c("rollbot_alerts_total", service="checkout", status="resolved") == 1
    assert c("rollbot_alerts_unknown_total", alertname="high_memory_load") == 2
    assert c("rollbot_alerts_unknown_total", alertname="high_memory_load2") == 1
    assert c("rollbot_alertmanager_webhooks_total", outcome="accepted") == 4
    assert c("rollbot_http_requests_total", route=PATH, status="200") == 4
    assert len(harness.received.calls) == 4


async def test_replay_alerts(store: SqlStore) -> None:
    good = await store.store_webhook("alertmanager", {}, FIRING)
    bad = await store.store_webhook("alertmanager", {}, b"{}")
    other = await store.store_webhook("pagerduty", {}, b"{}")
    received = Received()
    assert await replay_alerts(store=store, on_alerts=received) == 1
    ((alerts, _),) = received.calls
    assert [a.fingerprint for a in alerts] == ["f01341052d6b3406"]
    assert (await store.get_webhook(good)).error is None  # type: ignore[union-attr]
    assert (await store.get_webhook(bad)).error == (  # type: ignore[union-attr]
        'unparseable: version is missing; expected "4"'
    )
    assert (await store.get_webhook(other)).processed_at is None  # type: ignore[union-attr]
    assert await replay_alerts(store=store, on_alerts=received) == 0
