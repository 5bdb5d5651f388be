"""Fault 7: on the single-replica setup (one real `rollbot serve` on SQLite) the database
cannot take a write, because another connection holds SQLite's write lock longer than the
store's busy timeout, or because the disk is full. Webhooks arriving meanwhile are refused
with 503 and ``Retry-After`` (never 500, never a 2xx for a body that was not kept), so their
senders deliver them again; nothing is half-written; once the database takes writes again
the same webhooks are processed exactly once.

Aspects under test, for each fault:
- Alertmanager's webhook (sent by the test, as Alertmanager) is answered 503 with
  ``Retry-After`` while the fault lasts, and 200 when sent again afterwards;
- a PagerDuty v3 webhook (a note added in the PagerDuty sim, delivered by the sim's own
  sender, which retries 5xx) is answered 503 while the fault lasts (the same bytes posted
  by the test: 503 with ``Retry-After``); the first retry after it (the sim's own, or,
  once its few quick attempts are spent, PagerDuty's later one: `redeliver`) is accepted
  and processed: one thread line; a further copy is answered "duplicate";
- nothing is half-written: the database holds exactly one inbox row per webhook accepted
  (each processed, without error), one duplicate mark for the PagerDuty event, and nothing
  of the refused attempts;
- the process stays up and leading (`/readyz` 200) through the fault.

Figures (printed as ``FIGURE name=value``): ``webhook_503_while_locked`` (503 answers while
the lock was held), ``processed_after_unlock`` (times each webhook was processed after the
lock was released), ``half_written`` (rows or marks left by refused attempts, or accepted
webhooks not processed), ``lock_held_s``; and for the full disk ``webhook_503_while_full``,
``processed_after_free``, ``half_written_disk``.

The full disk is real: the database lives on a tmpfs of a few megabytes, mounted for the
test (root is needed: the test is skipped, saying so, where ``mount -t tmpfs`` is not
allowed), and a file fills it to the last block. SQLite then fails every write that needs
a new block with "database or disk is full".

The store's busy timeout is set to half a second (`database.busy_timeout_seconds`), so
"longer than the busy timeout" takes seconds, not minutes; the leader lease is 30 s, longer
than any fault here. (With the defaults, 30 s busy timeout and a 15 s lease, a lock held
over 15 s makes the single replica lose its lease and exit, to be restarted by Kubernetes:
webhooks then meet the standby's 503, or a refused connection, and are retried as well.)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sim import alerts as sim_alerts
from bot.sim import world as sim_world
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, PD_ONCALL, SimWorld
from tests.e2e.serving import Served, leading, start
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)

CHECKOUT = sim_world.CHECKOUT
BUSY_TIMEOUT = 0.5
SETTINGS = {
    "database": {"busy_timeout_seconds": BUSY_TIMEOUT},
    "server": {"leader_lease_seconds": 30},
}
NOTE = "looking at the new tax engine's error budget"


def _alert(name: str, slo: str, summary: str) -> dict[str, Any]:
    return sim_alerts.webhook(
        [
            sim_alerts.alert(
                name, service=CHECKOUT, labels={"slo": slo}, summary=f"checkout: {summary}"
            )
        ]
    )


async def _post_alerts(world: SimWorld, body: bytes) -> httpx.Response:
    """POST a webhook body to rollbot exactly as Alertmanager does (same bytes each time)."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{world.url}/webhooks/alertmanager",
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Alertmanager/0.25.0",
                "Authorization": f"Bearer {ALERTMANAGER_TOKEN}",
            },
        )


async def _post_delivery(world: SimWorld, delivery: Any) -> httpx.Response:
    """POST a PagerDuty delivery's exact bytes and headers to rollbot."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(delivery.url, content=delivery.body, headers=delivery.headers)


def _rows(db: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the served process's database (WAL: reading never waits for its writer)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
        return c.execute(query, args).fetchall()


def _thread(world: SimWorld, service: str) -> list[str]:
    card = world.card(service)
    if card is None:
        return []
    return [m.get("text") or "" for m in world.slack.thread(CHANNEL_ID, card["ts"])]


# ── the two faults ──────────────────────────────────────────────────────────────────────


@contextlib.asynccontextmanager
async def _locked(db: Path) -> AsyncIterator[None]:
    """Another connection holds SQLite's write lock (`BEGIN EXCLUSIVE`) until the block
    ends. Taken on a thread: the lock may have to wait for a write of rollbot's."""
    conn = await asyncio.to_thread(
        sqlite3.connect, db, isolation_level=None, timeout=10, check_same_thread=False
    )
    try:
        await asyncio.to_thread(conn.execute, "BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def _disk_full(mount: Path) -> AsyncIterator[None]:
    """A file fills the tmpfs the database is on to its last block; removed at the end."""
    filler = mount / "filler"
    with filler.open("wb", buffering=0) as f:
        block = b"\0" * 4096
        try:
            while True:
                f.write(block)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
    try:
        assert os.statvfs(mount).f_bavail == 0
        yield
    finally:
        filler.unlink()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs, mounted for the test and unmounted after it (skipped without the
    right to mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# ── the scenario, under either fault ────────────────────────────────────────────────────


async def _serve(world: SimWorld, log: Path) -> Served:
    served = await start(world, log)
    world.attach_bot(served.url)
    return served


async def _ready(served: Served) -> bool:
    """Ready and leading (a standby is Ready too)."""
    return await leading(served.url)


async def _webhooks_under(
    world: SimWorld,
    served: Served,
    db: Path,
    fault: Callable[[], contextlib.AbstractAsyncContextManager[None]],
) -> dict[str, float]:
    """An incident is open (checkout's SLO alert, paged); then, during `fault`, a second
    alert and a PagerDuty note arrive; afterwards they are sent again. Returns the figures."""
    first = await _post_alerts(
        world, json.dumps(_alert("RollbotErrorRateHigh", "error_rate", "5xx 9 %")).encode()
    )
    assert first.status_code == 200, first.text
    incident = await world.wait_for(
        lambda: next(iter(world.pd.incidents()), None), timeout=40, what="checkout paged"
    )
    await world.wait_for(lambda: world.card(CHECKOUT), timeout=40, what="checkout's card")
    await asyncio.to_thread(world.pd.drain, 20)  # incident.triggered delivered and answered
    (before,) = _rows(db, "SELECT coalesce(max(id), 0) FROM webhook_inbox")[0]

    alerts = json.dumps(_alert("RollbotLatencyHigh", "latency_p95_ms", "p95 900 ms")).encode()
    refused = 0
    started = time.monotonic()
    async with fault():
        held_from = time.monotonic()
        answer = await _post_alerts(world, alerts)
        assert answer.status_code == 503, answer.text
        assert answer.headers.get("retry-after"), "a 503 says when to come back"
        refused += 1
        # A responder adds a note in PagerDuty: its webhook meets the fault (PagerDuty
        # retries it, at first within the sim's short retry delays).
        world.pd.annotate(incident["id"], PD_ONCALL, NOTE)
        delivery = await world.wait_for(
            lambda: next(
                (d for d in world.pd.deliveries() if d.event_type == "incident.annotated"), None
            ),
            what="the note's webhook",
        )
        await world.wait_for(lambda: delivery.attempts, timeout=30, what="a first attempt")
        again = await _post_delivery(world, delivery)  # the same bytes, to read the answer
        assert again.status_code == 503, again.text
        assert again.headers.get("retry-after"), "a 503 says when to come back"
        refused += 1
        # Nothing of the refused attempts was kept (WAL: the test's reader is not blocked).
        assert _rows(db, "SELECT id FROM webhook_inbox WHERE id > ?", before) == []
        held = time.monotonic() - held_from

    # The fault is over: Alertmanager sends the batch again; PagerDuty's retries go on (the
    # sim's last ones may still come; once they are spent, PagerDuty's later retry).
    answer = await _post_alerts(world, alerts)
    assert answer.status_code == 200, answer.text
    await asyncio.to_thread(delivery.wait, 60)
    statuses = [a.status for a in delivery.attempts]
    refused += statuses.count(503)
    if delivery.outcome == "delivered":
        assert statuses[-1] == 202 and set(statuses[:-1]) <= {503, None}, statuses
    else:
        assert delivery.outcome == "failed" and set(statuses) <= {503, None}, statuses
        retried = world.pd.redeliver(delivery.id)
        await asyncio.to_thread(retried.wait, 30)
        assert retried.outcome == "delivered" and retried.status == 202, retried.attempts
    line = f"PagerDuty note by On-call Engineer: {NOTE}"
    await world.wait_for(
        lambda: any(line in t for t in _thread(world, CHECKOUT)),
        timeout=30,
        what="the note's line in checkout's thread",
    )
    # A further copy (PagerDuty's at-least-once delivery) is a duplicate: nothing runs.
    copy = await _post_delivery(world, delivery)
    assert copy.status_code == 200 and copy.json()["status"] == "duplicate", copy.text

    event_id = json.loads(delivery.body)["event"]["id"]

    def settled() -> list[tuple[Any, ...]]:
        rows = _rows(
            db,
            "SELECT source, body, processed_at, error FROM webhook_inbox WHERE id > ?",
            before,
        )
        return rows if rows and all(r[2] is not None for r in rows) else []

    rows = await eventually(settled, timeout=30, what="the accepted webhooks processed")
    ours = [r for r in rows if r[1] in (alerts.decode(), delivery.body.decode())]
    marks = _rows(db, "SELECT id FROM notices_sent WHERE id = ?", f"pd-webhook:event:{event_id}")
    processed = {
        "alertmanager": sum(r[0] == "alertmanager" and r[1] == alerts.decode() for r in rows),
        "pagerduty": sum(r[0] == "pagerduty" and r[1] == delivery.body.decode() for r in rows),
    }
    assert processed == {"alertmanager": 1, "pagerduty": 1}, rows
    assert all(r[3] is None for r in ours), ours
    assert len(marks) == 1
    # Rows beyond ours after `before` are the sim's other webhooks (rollbot's own notes
    # coming back as annotations), accepted and processed like these.
    assert sum(line in t for t in _thread(world, CHECKOUT)) == 1
    half_written = abs(len(marks) - processed["pagerduty"]) + sum(
        r[2] is None or r[3] is not None for r in ours
    )
    assert await _ready(served), "still up and leading after the fault"
    return {
        "refused": refused,
        "processed": max(processed.values()),
        "half_written": half_written,
        "held_s": round(held, 2),
        "wall_s": round(time.monotonic() - started, 1),
    }


async def test_sqlite_locked_past_its_busy_timeout_webhooks_503_then_processed_once(
    tmp_path: Path,
) -> None:
    """FIGURES webhook_503_while_locked, processed_after_unlock, half_written,
    lock_held_s."""
    async with SimWorld(
        speed=60,
        start_bot=False,
        pagerduty=True,
        checkout=True,
        workdir=tmp_path,
        settings=SETTINGS,
    ) as world:
        served = await _serve(world, tmp_path / "serve.log")
        try:
            db = tmp_path / "rollbot.db"
            figures = await _webhooks_under(world, served, db, lambda: _locked(db))
        finally:
            served.stop()
    print(f"FIGURE webhook_503_while_locked={figures['refused']}")
    print(f"FIGURE processed_after_unlock={figures['processed']}")
    print(f"FIGURE half_written={figures['half_written']}")
    print(f"FIGURE lock_held_s={figures['held_s']}")
    assert figures["held_s"] > BUSY_TIMEOUT  # longer than the store's busy timeout
    assert figures["processed"] == 1 and figures["half_written"] == 0


async def test_disk_full_webhooks_503_then_processed_once(tmp_path: Path, tiny_disk: Path) -> None:
    """FIGURES webhook_503_while_full, processed_after_free, half_written_disk."""
    async with SimWorld(
        speed=60,
        start_bot=False,
        pagerduty=True,
        checkout=True,
        workdir=tmp_path,
        settings=SETTINGS,
        database_url=f"sqlite:///{tiny_disk / 'rollbot.db'}",
    ) as world:
        served = await _serve(world, tmp_path / "serve.log")
        try:
            db = tiny_disk / "rollbot.db"
            figures = await _webhooks_under(world, served, db, lambda: _disk_full(tiny_disk))
        finally:
            served.stop()
    print(f"FIGURE webhook_503_while_full={figures['refused']}")
    print(f"FIGURE processed_after_free={figures['processed']}")
    print(f"FIGURE half_written_disk={figures['half_written']}")
    assert figures["processed"] == 1 and figures["half_written"] == 0
