"""`bot.runtime.scheduler.JobScheduler`: APScheduler 3.11 on rollbot's own database, run by
the lease holder only, on SQLite and a real PostgreSQL 15 (`store_url`), with real waiting
(each test takes a few seconds of wall time at most).

- a job put for "now + 2 h" on a ScaledClock at 7200x runs about 1 s later, once, with its
  kind and args, and leaves the job store;
- stable ids: a second put replaces the first; `sync` makes one prefix exactly the given
  jobs and leaves other prefixes alone; `remove` of an absent job is no error;
- misfire after downtime: a job that fell due while no scheduler ran still runs, once, when
  a new JobScheduler starts on the same database (misfire_grace_time=None);
- coalesce: a repeating job that missed several runs runs once;
- one voice: of two replicas (two stores, two engines) exactly one leads and runs a job, the
  other's put() returns False; when the leader stops the other takes over and runs new jobs;
  a leader whose lease is taken by another holder stops running jobs at once and its due
  job waits in the store for the next leader;
- a runner that raises is logged and later jobs still run;
- stop() gives a running job a few seconds, then cancels it, and releases the lease;
- jobs() reports rollbot time (wall -> rollbot) for a ScaledClock;
- lag: each due job handed to run tells how late it is (`on_lag`, wall seconds after it
  was due: rollbot_scheduler_lag_seconds), a job due 30 s ago about 30 s, one due now
  next to nothing;
- the registry key is the database's, however its URL is spelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.triggers.interval import IntervalTrigger

from bot.runtime import scheduler as scheduler_module
from bot.runtime.metrics import Metrics
from bot.runtime.scheduler import (
    JOB_FUNC,
    Clock,
    JobScheduler,
    ScaledClock,
    ScheduledJob,
    SystemClock,
    scheduler_key,
)
from bot.store import SqlStore, open_store
from bot.store.schema import apscheduler_jobs, leases
from tests.helpers import eventually

T0 = datetime(2026, 4, 28, 9, 0, tzinfo=UTC)
FAST_LEASE: dict[str, float] = {"lease_ttl": 1.0, "renew_every": 0.3}


class Recorder:
    """A runner that records (kind, args) and raises for the kinds in `fail`."""

    def __init__(self, *, fail: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def __call__(self, kind: str, args: dict[str, Any]) -> None:
        self.calls.append((kind, args))
        if kind in self.fail:
            raise RuntimeError(f"{kind} failed on purpose")


async def stays(cond: Callable[[], bool], seconds: float) -> None:
    """`cond` holds at every look for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert cond()
        await asyncio.sleep(0.02)
    assert cond()


@asynccontextmanager
async def replica(
    url: str, clock: Clock, runner: Recorder, *, migrate: bool = True, **options: Any
) -> AsyncIterator[JobScheduler]:
    """One replica: its own store (engine), its own JobScheduler, started."""
    store = await open_store(url, migrate=migrate)
    scheduler = JobScheduler(database_url=url, store=store, clock=clock, **options)
    try:
        await scheduler.start(runner)
        yield scheduler
    finally:
        await scheduler.stop()
        await store.close()


async def wall_times(store: SqlStore) -> dict[str, float]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)
        )
        return {row.id: row.next_run_time for row in rows}


async def test_a_job_two_hours_ahead_runs_a_second_later_at_7200x(store_url: str) -> None:
    clock = ScaledClock(T0, speed=7200)
    ran = Recorder()
    async with replica(store_url, clock, ran) as scheduler:
        assert await scheduler.wait_leader(5)
        put_at = time.monotonic()
        job = ScheduledJob(
            id="payment-router@1.13.0:reminder:remove-release-flag:2026-04-28",
            at=clock.now() + timedelta(hours=2),
            kind="notice",
            args={"release": "payment-router@1.13.0", "flag": "payments.new-router.enabled"},
        )
        assert await scheduler.put(job)
        await eventually(lambda: bool(ran.calls), timeout=4)
        elapsed = time.monotonic() - put_at
        assert 0.7 < elapsed < 2.5, elapsed
        await stays(lambda: len(ran.calls) == 1, 0.5)
        assert ran.calls == [("notice", job.args)]
        assert await scheduler.jobs() == []


async def test_stable_ids_replace_and_sync_owns_one_prefix(store_url: str) -> None:
    clock = SystemClock()
    base = clock.now() + timedelta(days=3)
    async with replica(store_url, clock, Recorder()) as scheduler:
        assert await scheduler.wait_leader(5)
        first = ScheduledJob(id="rel-a:notice:1", at=base, kind="notice", args={"n": 1})
        assert await scheduler.put(first)
        moved = ScheduledJob(id=first.id, at=base + timedelta(days=2), kind="notice", args={"n": 2})
        assert await scheduler.put(moved)
        assert await scheduler.jobs("rel-a:") == [moved]

        other = ScheduledJob(id="rel-b:notice:1", at=base, kind="notice", args={})
        kept = ScheduledJob(id="rel-a:tickets", at=base, kind="file-tickets", args={"r": "a"})
        for job in (other, kept):
            assert await scheduler.put(job)
        new = ScheduledJob(id="rel-a:notice:2", at=base + timedelta(days=9), kind="notice", args={})
        await scheduler.sync("rel-a:", [kept, new])  # rel-a:notice:1 is stale now
        assert await scheduler.jobs("rel-a:") == [kept, new]
        assert await scheduler.jobs("rel-b:") == [other]
        assert await scheduler.jobs() == [kept, other, new]  # soonest first, then by id

        with pytest.raises(ValueError, match="outside"):
            await scheduler.sync("rel-a:", [other])
        await scheduler.remove("rel-b:notice:1")
        await scheduler.remove("rel-b:notice:1")  # absent: no error
        assert await scheduler.jobs("rel-b:") == []


async def test_a_job_due_during_downtime_runs_once_on_the_next_start(store_url: str) -> None:
    clock = SystemClock()
    first, second = Recorder(), Recorder()
    # Due after the first replica has surely stopped: put and stop take well under a second,
    # but 0.5 s was not always enough on a loaded 2-core machine (the first replica ran it).
    due = clock.now() + timedelta(seconds=2)
    async with replica(store_url, clock, first) as scheduler:
        assert await scheduler.wait_leader(5)
        assert await scheduler.put(ScheduledJob(id="j:late", at=due, kind="notice", args={"x": 1}))
    # Down for longer than APScheduler's default 1 s grace time.
    await eventually(lambda: clock.now() > due + timedelta(seconds=1.5))
    assert first.calls == []
    async with replica(store_url, clock, second, migrate=False) as scheduler:
        assert [j.id for j in await scheduler.jobs()] == ["j:late"]
        assert await scheduler.wait_leader(5)
        await eventually(lambda: bool(second.calls), timeout=3)
        await stays(lambda: len(second.calls) == 1, 0.5)
        assert second.calls == [("notice", {"x": 1})]
        assert await scheduler.jobs() == []
    assert first.calls == []


async def test_a_repeating_job_that_missed_several_runs_runs_once(store_url: str) -> None:
    ran = Recorder()
    async with replica(store_url, SystemClock(), ran) as scheduler:
        assert await scheduler.wait_leader(5)
        # Put's API only knows one-off jobs; a repeating one goes straight to APScheduler.
        aps = scheduler._scheduler
        assert aps is not None
        now = datetime.now(UTC)
        missed_since = now - timedelta(seconds=1)  # every 0.2 s: six runs are due now
        await asyncio.to_thread(
            aps.add_job,
            JOB_FUNC,
            trigger=IntervalTrigger(seconds=0.2, start_date=missed_since, end_date=now),
            kwargs={"key": scheduler.key, "kind": "poll", "args": {}},
            id="poll:rollouts",
            next_run_time=missed_since,
        )
        await eventually(lambda: bool(ran.calls), timeout=3)
        await stays(lambda: len(ran.calls) == 1, 0.6)
        assert await scheduler.jobs() == []


async def test_two_replicas_one_voice_and_takeover(store_url: str) -> None:
    clock = SystemClock()
    ran = {"a": Recorder(), "b": Recorder()}
    contexts = {
        "a": replica(store_url, clock, ran["a"], holder="replica-a", **FAST_LEASE),
        "b": replica(store_url, clock, ran["b"], migrate=False, holder="replica-b", **FAST_LEASE),
    }
    running: dict[str, JobScheduler] = {}
    try:
        for name, cm in contexts.items():
            running[name] = await cm.__aenter__()
        a, b = running["a"], running["b"]
        key = a.key
        await eventually(lambda: a.leader or b.leader)
        await stays(lambda: a.leader + b.leader == 1, 1.2)  # several renewals
        lead, follow = ("a", "b") if a.leader else ("b", "a")
        leader, follower = running[lead], running[follow]

        soon = ScheduledJob(id="j:1", at=clock.now() + timedelta(seconds=0.3), kind="k", args={})
        assert not await follower.put(soon)
        assert await follower.jobs() == []  # nothing was done
        assert await leader.put(soon)
        assert [j.id for j in await follower.jobs()] == ["j:1"]  # any replica can read
        await eventually(lambda: bool(ran[lead].calls))
        await stays(lambda: ran[lead].calls == [("k", {})] and not ran[follow].calls, 0.5)

        # The leader stops (a deploy): the follower takes over and runs what comes next.
        await contexts[lead].__aexit__(None, None, None)
        del running[lead]
        assert await follower.wait_leader(3)
        later = ScheduledJob(id="j:2", at=clock.now() + timedelta(seconds=0.2), kind="k2", args={})
        assert await follower.put(later)
        await eventually(lambda: ("k2", {}) in ran[follow].calls)
        await stays(lambda: ran[follow].calls == [("k2", {})], 0.3)
        assert ran[lead].calls == [("k", {})]
    finally:
        for name in list(running):
            await contexts[name].__aexit__(None, None, None)
    assert not scheduler_module.is_registered(key)  # the registry is empty once both stopped


async def test_a_leader_whose_lease_is_taken_stops_running_jobs_at_once(store_url: str) -> None:
    clock = SystemClock()
    ran = Recorder()
    async with replica(store_url, clock, ran, holder="replica-a", **FAST_LEASE) as scheduler:
        assert await scheduler.wait_leader(5)
        due = clock.now() + timedelta(seconds=1.0)
        assert await scheduler.put(ScheduledJob(id="j:due", at=due, kind="notice", args={}))
        store: SqlStore = scheduler._store
        async with store.engine.begin() as conn:  # another replica took the lease
            await conn.execute(
                leases.update()
                .where(leases.c.name == "scheduler")
                .values(holder="intruder", expires_at=datetime.now(UTC) + timedelta(seconds=60))
            )
        await eventually(lambda: not scheduler.leader, timeout=1.0)
        await eventually(lambda: not scheduler_module.is_registered(scheduler.key), timeout=1.0)
        await eventually(lambda: clock.now() > due + timedelta(seconds=0.3))
        assert ran.calls == []
        assert [j.id for j in await scheduler.jobs()] == ["j:due"]  # waits for a leader
        assert not await scheduler.put(ScheduledJob(id="j:x", at=due, kind="k", args={}))

        async with store.engine.begin() as conn:  # the intruder goes away
            await conn.execute(leases.delete().where(leases.c.holder == "intruder"))
        assert await scheduler.wait_leader(3)
        await eventually(lambda: bool(ran.calls), timeout=3)
        await stays(lambda: len(ran.calls) == 1, 0.3)


async def test_a_runner_that_raises_does_not_stop_later_jobs(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SystemClock()
    ran = Recorder(fail=("boom",))
    caplog.set_level(logging.ERROR, logger="bot.runtime.scheduler")
    async with replica(store_url, clock, ran) as scheduler:
        assert await scheduler.wait_leader(5)
        now = clock.now()
        assert await scheduler.put(ScheduledJob(id="j:boom", at=now, kind="boom", args={"n": 1}))
        later = now + timedelta(seconds=0.3)
        assert await scheduler.put(ScheduledJob(id="j:ok", at=later, kind="ok", args={"n": 2}))
        await eventually(lambda: ("ok", {"n": 2}) in ran.calls)
        assert ran.calls == [("boom", {"n": 1}), ("ok", {"n": 2})]
        assert scheduler.leader
    failed = [
        r for r in caplog.records if r.name == "bot.runtime.scheduler" and "boom" in r.getMessage()
    ]
    assert failed and failed[0].exc_info is not None
    assert "failed on purpose" in str(failed[0].exc_info[1])


async def test_stop_does_not_wait_long_for_a_running_job(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_module, "STOP_GRACE_SECONDS", 0.5)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(kind: str, args: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    store = await open_store(store_url)
    try:
        scheduler = JobScheduler(database_url=store_url, store=store, clock=SystemClock())
        await scheduler.start(stuck)
        assert await scheduler.wait_leader(5)
        await scheduler.put(ScheduledJob(id="j:stuck", at=SystemClock().now(), kind="k", args={}))
        await asyncio.wait_for(started.wait(), 3)
        began = time.monotonic()
        await scheduler.stop()
        assert time.monotonic() - began < 2.0
        await asyncio.wait_for(cancelled.wait(), 1)
        assert not scheduler_module.is_registered(scheduler.key)
        assert await store.lease_holder("scheduler") is None  # released
    finally:
        await store.close()


async def test_stop_waits_for_a_cancelled_job_to_unwind_before_releasing_the_lease(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job cancelled inside a database transaction must have rolled it back before the
    lease is released (SQLite would otherwise keep the write lock, and the release wait out
    the busy timeout: a world's shutdown timed out on it once). stop() returns only after
    the job's own cleanup ran."""
    monkeypatch.setattr(scheduler_module, "STOP_GRACE_SECONDS", 0.2)
    started = asyncio.Event()
    unwound: list[bool] = []

    async def in_a_transaction(kind: str, args: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.3)  # the rollback, which takes its time
            unwound.append(True)

    store = await open_store(store_url)
    try:
        scheduler = JobScheduler(database_url=store_url, store=store, clock=SystemClock())
        await scheduler.start(in_a_transaction)
        assert await scheduler.wait_leader(5)
        await scheduler.put(ScheduledJob(id="j:tx", at=SystemClock().now(), kind="k", args={}))
        await asyncio.wait_for(started.wait(), 3)
        await scheduler.stop()
        assert unwound == [True]  # unwound before stop() went on to release the lease
        assert await store.lease_holder("scheduler") is None
    finally:
        await store.close()


async def test_jobs_report_rollbot_time_on_a_scaled_clock(store_url: str) -> None:
    clock = ScaledClock(T0, speed=3600)
    async with replica(store_url, clock, Recorder()) as scheduler:
        assert await scheduler.wait_leader(5)
        at = T0 + timedelta(days=10)  # 240 s of wall time away
        assert await scheduler.put(
            ScheduledJob(id="rel:due-date", at=at, kind="move-dates", args={})
        )
        [job] = await scheduler.jobs()
        # One microsecond of wall time is 3.6 ms of rollbot time at this speed.
        assert abs(job.at - at) < timedelta(milliseconds=50)
        assert job.at.tzinfo is not None
        stored = (await wall_times(scheduler._store))["rel:due-date"]
        assert stored == pytest.approx(clock.wall(at).timestamp(), abs=0.001)
        assert 200 < stored - time.time() < 260


def test_the_registry_key_is_the_database_not_the_spelling(tmp_path: Path) -> None:
    db = tmp_path / "rollbot.db"
    assert scheduler_key(f"sqlite:///{db}") == scheduler_key(f"sqlite+aiosqlite:///{db}")
    pg = "postgresql+psycopg://rollbot:secret@db.example:5432/rollbot"
    assert scheduler_key(pg) == scheduler_key("postgres://other:pw@db.example:5432/rollbot")
    assert "secret" not in scheduler_key(pg)


async def test_each_due_job_says_how_late_it_ran(store_url: str) -> None:
    clock = SystemClock()
    ran = Recorder()
    metrics = Metrics()
    lags: list[float] = []

    def on_lag(seconds: float) -> None:
        lags.append(seconds)
        metrics.scheduler_lag.observe(seconds)

    async with replica(store_url, clock, ran, on_lag=on_lag) as scheduler:
        assert await scheduler.wait_leader(5)
        late = ScheduledJob(id="j:late", at=clock.now() - timedelta(seconds=30), kind="a", args={})
        assert await scheduler.put(late)
        await eventually(lambda: len(ran.calls) == 1, timeout=5)
        assert await scheduler.put(ScheduledJob(id="j:now", at=clock.now(), kind="b", args={}))
        await eventually(lambda: len(ran.calls) == 2, timeout=5)
    assert [kind for kind, _ in ran.calls] == ["a", "b"]
    assert len(lags) == 2
    assert 30 <= lags[0] < 40
    assert 0 <= lags[1] < 5
    registry = metrics.registry
    count = registry.get_sample_value("rollbot_scheduler_lag_seconds_count")
    on_time = registry.get_sample_value("rollbot_scheduler_lag_seconds_bucket", {"le": "15.0"})
    assert count == 2 and on_time == 1  # the one on time under 15 s, the late one above
