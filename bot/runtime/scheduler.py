"""Scheduled jobs (reminders, due-date moves, ticket filing, polls): APScheduler 3.11 on the
same database as everything else, run by one replica at a time.

    scheduler = JobScheduler(database_url=url, store=store, clock=SystemClock())
    await scheduler.start(runner)                  # runner(kind, args) -> Awaitable[None]
    await scheduler.put(ScheduledJob(id=…, at=…, kind="notice", args={…}))
    ...
    await scheduler.stop()

Why it is built this way:

- **One voice.** APScheduler 3 has no locking of its own: two schedulers on one job store
  both pick up a due job and run it twice. So a replica runs an APScheduler scheduler only
  while it holds the `scheduler` lease in the database (`SqlStore.acquire_lease`), renewed
  every `renew_every` seconds; when the lease is taken by another holder the scheduler is
  shut down at once, and when it cannot be renewed it is shut down before it would expire.
  As a second fence that does not depend on the event loop, the scheduler's own thread
  checks the lease deadline before each round and does not touch the job store once the
  last renewal is too old (say the loop stalled for longer than the lease). Every replica
  must use the same lease name, and the store's clock must be wall time (SqlStore's
  default), since the lease lasts `lease_ttl` seconds of it. In one process only one
  scheduler per database runs, whatever the lease name (the registry below refuses a second).
- **`BackgroundScheduler` + `SQLAlchemyJobStore`** on a sync engine of its own: APScheduler
  3 is thread-based; its database I/O happens on its thread, and calls from async code go
  through `asyncio.to_thread` so they never block the event loop. SQLite gets the store's
  busy timeout (`busy_timeout`, 30 s by default: wait for another writer instead of
  "database is locked"), PostgreSQL `pool_pre_ping` (survive a database restart). The
  table is created by the Alembic migration with the exact shape the job store defines.
- **Job defaults, each on purpose:**
  - `misfire_grace_time=None`: APScheduler's default of 1 s drops any job that is more than a
    second late. A reminder or escalation due while every replica was down (a deploy, a
    node drain) must still happen when the next leader starts, however late.
  - `coalesce=True`: a repeating job that missed several runs during downtime runs once, not
    once per missed run (one poll, not a burst of identical ones).
  - `max_instances=1`: a job never overlaps with itself (a slow Jira call does not stack).
- **Jobs survive restarts:** a job is pickled into the table as the textual reference
  `bot.runtime.scheduler:_run_job` with plain kwargs `{key, kind, args}`, never a bound method or a
  closure. At run time `_run_job` finds the live runner in a module registry under `key`,
  which is derived from the database (not from the holder, which changes at every restart),
  and runs the coroutine on the event loop that called `start()`. A runner that raises is
  logged and the scheduler goes on; a job that finds no runner (this replica stopped) is
  skipped with a warning.
- **Stable ids, `replace_existing=True`:** putting a job again replaces it, so the callers can
  re-derive their plan (`sync`) as often as they like.
- **Two clocks.** Jobs are planned in rollbot time (`Clock.now()`), which tests, drills and
  the demo speed up (`ScaledClock`); APScheduler fires at the wall-clock instant
  `Clock.wall(at)`, and `jobs()` converts back.
- **Lag.** As each due job is handed to APScheduler's pool, `on_lag` is told how late it is
  (wall seconds after the time it was due; a coalesced job, after its earliest missed
  run): `rollbot_scheduler_lag_seconds` in /metrics. Late by seconds means the scheduler
  thread or the lease is slow; by the length of an outage, that no replica led meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.store import SqlStore
from bot.store.engine import SQLITE_BUSY_TIMEOUT_MS, sync_url
from bot.store.schema import apscheduler_jobs

__all__ = [
    "Clock",
    "JobRunner",
    "JobScheduler",
    "ScaledClock",
    "ScheduledJob",
    "SystemClock",
    "scheduler_key",
]

log = logging.getLogger(__name__)

JOB_FUNC = "bot.runtime.scheduler:_run_job"
"""The textual reference pickled with every job (a module-level function survives restarts)."""
RUN_TIMEOUT_SECONDS = 300.0
"""How long a job's coroutine may run before the scheduler thread gives up on it."""
STOP_GRACE_SECONDS = 5.0
"""How long stop() (and a lost lease) waits for jobs already handed to APScheduler's pool."""
MAX_JOB_ID = 191  # SQLAlchemyJobStore's id column: Unicode(191)

JobRunner = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Runs one job: (kind, args). Called on the event loop that started the scheduler."""


# ── clocks ─────────────────────────────────────────────────────────────────────────────


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC "rollbot time"."""
        ...

    def wall(self, at: datetime) -> datetime:
        """The real wall-clock instant at which rollbot time reaches `at`."""
        ...


@runtime_checkable
class _InvertibleClock(Protocol):
    def rollbot(self, wall: datetime) -> datetime: ...


class SystemClock:
    """Rollbot time is wall time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wall(self, at: datetime) -> datetime:
        return at

    def rollbot(self, wall: datetime) -> datetime:
        """The inverse of `wall`."""
        return wall


class ScaledClock:
    """For tests, drills and the demo: rollbot time starts at `start` when the clock is made
    and runs `speed` times faster than wall time (speed 7200: two hours pass per second)."""

    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None:
            raise ValueError("ScaledClock needs an aware start time")
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.start = start.astimezone(UTC)
        self.speed = float(speed)
        self._wall0 = datetime.now(UTC)

    def now(self) -> datetime:
        return self.start + (datetime.now(UTC) - self._wall0) * self.speed

    def wall(self, at: datetime) -> datetime:
        return self._wall0 + (at - self.start) / self.speed

    def rollbot(self, wall: datetime) -> datetime:
        """The inverse of `wall` (exact up to the microsecond of wall time, times `speed`)."""
        return self.start + (wall - self._wall0) * self.speed


def rollbot_time(clock: Clock, wall: datetime) -> datetime:
    """The rollbot time at the wall-clock instant `wall`: the inverse of `clock.wall`. Clocks
    without a `rollbot(wall)` method are taken to be affine (as both here are)."""
    if isinstance(clock, _InvertibleClock):
        return clock.rollbot(wall)
    r0 = clock.now()
    r1 = r0 + timedelta(days=1)
    w0, w1 = clock.wall(r0), clock.wall(r1)
    if w1 <= w0:
        return r0
    return r0 + (wall - w0) * ((r1 - r0) / (w1 - w0))


# ── jobs ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """One job: run `kind` with `args` when rollbot time reaches `at`."""

    id: str
    """Stable, e.g. "payment-router@1.13.0:reminder:remove-release-flag:2026-04-28"."""
    at: datetime
    """Rollbot time (aware)."""
    kind: str
    """"notice" | "file-tickets" | "move-dates" | "poll" | …: what the runner should do."""
    args: dict[str, Any]
    """JSON-able arguments for the runner."""


def scheduler_key(database_url: str | URL) -> str:
    """The registry key of a database: backend, host, port and database (for SQLite the
    absolute path), without driver or credentials, so the same database gives the same key
    across restarts and replicas however its URL is spelled."""
    u = sync_url(database_url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            db = str(Path(db).expanduser().resolve())
        return f"sqlite:///{db}"
    return f"{backend}://{u.host or ''}:{u.port or ''}/{u.database or ''}"


@dataclass(eq=False)
class _Live:
    """What a running job needs: this replica's runner and loop, while it leads."""

    owner: object
    runner: JobRunner
    loop: asyncio.AbstractEventLoop
    inflight: set[concurrent.futures.Future[None]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The jobs' own tasks on `loop` (touched on the loop only): a cancelled future is done
    # at once, but its task still has to unwind (roll its transaction back).
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def cancel_inflight(self) -> None:
        with self.lock:
            inflight = list(self.inflight)
        for fut in inflight:
            fut.cancel()

    async def unwound(self) -> None:
        """Wait for the jobs' tasks to finish unwinding: one cancelled inside a database
        transaction must have rolled it back before the lease is released, or SQLite keeps
        the write lock and the release waits out the busy timeout."""
        await asyncio.gather(*list(self.tasks), return_exceptions=True)


_LIVE: dict[str, _Live] = {}
_LIVE_LOCK = threading.Lock()


def is_registered(key: str) -> bool:
    """Whether a running scheduler of this process serves the database `key` (the
    registry APScheduler's pool threads look runners up in)."""
    with _LIVE_LOCK:
        return key in _LIVE


def _run_job(key: str, kind: str, args: dict[str, Any]) -> None:
    """APScheduler's job function (runs on its pool thread): hand the job to the runner of
    the replica that leads for this database and wait for it."""
    with _LIVE_LOCK:
        live = _LIVE.get(key)
    if live is None:
        log.warning("scheduled job %s %r skipped: no scheduler is running for %s", kind, args, key)
        return
    coro = _call(live, kind, args)  # the runner itself is called on the loop
    try:
        fut = asyncio.run_coroutine_threadsafe(coro, live.loop)
    except RuntimeError:  # the loop is closed
        coro.close()
        log.warning("scheduled job %s %r skipped: its event loop is closed", kind, args)
        return
    with live.lock:
        live.inflight.add(fut)
    try:
        fut.result(timeout=RUN_TIMEOUT_SECONDS)
    except concurrent.futures.CancelledError:
        log.warning("scheduled job %s %r cancelled (scheduler stopping)", kind, args)
    except Exception:
        if not fut.done():  # our wait timed out, not the runner
            fut.cancel()
            log.error("scheduled job %s %r cancelled after %.0f s", kind, args, RUN_TIMEOUT_SECONDS)
        else:
            log.exception("scheduled job %s %r failed", kind, args)
    finally:
        with live.lock:
            live.inflight.discard(fut)


async def _call(live: _Live, kind: str, args: dict[str, Any]) -> None:
    task = asyncio.current_task()
    if task is not None:
        live.tasks.add(task)
    try:
        await live.runner(kind, args)
    finally:
        if task is not None:
            live.tasks.discard(task)


class _LeasedScheduler(BackgroundScheduler):  # type: ignore[misc,unused-ignore]
    """A BackgroundScheduler that leaves the job store alone once the lease may be gone."""

    def __init__(self, *, deadline: Callable[[], float], **options: Any) -> None:
        self._lease_deadline = deadline
        self._lapsed = False
        super().__init__(**options)

    def _process_jobs(self) -> float | None:
        left = self._lease_deadline() - time.monotonic()
        if left <= 0:
            if not self._lapsed:
                log.warning("scheduler lease not renewed in time: not looking for due jobs")
            self._lapsed = True
            return 0.5  # look again soon: either renewed meanwhile or shut down
        self._lapsed = False
        wait: float | None = super()._process_jobs()
        return left if wait is None else min(wait, left)


def _sync_engine(database_url: str | URL, busy_timeout: float | None = None) -> Engine:
    u = sync_url(database_url)
    if u.get_backend_name() == "sqlite":
        if u.database in (None, "", ":memory:") or "mode=memory" in str(u.query):
            raise ValueError("the scheduler needs a database file: in-memory SQLite is per engine")
        timeout = SQLITE_BUSY_TIMEOUT_MS / 1000 if busy_timeout is None else busy_timeout
        return sa.create_engine(u, connect_args={"timeout": timeout})
    return sa.create_engine(u, pool_pre_ping=True)


# ── the scheduler ──────────────────────────────────────────────────────────────────────


class JobScheduler:
    """Durable jobs in rollbot time, run by the one replica that holds the lease.

    `put`/`sync` work on the leader only (they return False / do nothing elsewhere);
    `jobs` and `remove` work on any replica (reading or deleting a row is safe without a
    scheduler)."""

    def __init__(
        self,
        *,
        database_url: str,
        store: SqlStore,
        clock: Clock,
        holder: str | None = None,
        lease_name: str = "scheduler",
        lease_ttl: float = 30.0,
        renew_every: float = 10.0,
        busy_timeout: float | None = None,
        on_lag: Callable[[float], None] | None = None,
    ) -> None:
        if not 0 < renew_every < lease_ttl:
            raise ValueError(f"renew_every ({renew_every}) must be below lease_ttl ({lease_ttl})")
        self._engine = _sync_engine(database_url, busy_timeout)
        self._key = scheduler_key(database_url)
        self._store = store
        self._clock = clock
        self._holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease_name = lease_name
        self._lease_ttl = lease_ttl
        self._renew_every = renew_every
        # The scheduler thread stops looking for due jobs this long before the lease expires.
        self._margin = min(renew_every, lease_ttl / 3)
        self._deadline = 0.0  # monotonic; guarded by the GIL (one float)
        self._runner: JobRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: _LeasedScheduler | None = None
        self._live: _Live | None = None
        self._lock = asyncio.Lock()  # put/remove vs. stepping down
        self._is_leader = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stepping_up: asyncio.Task[None] | None = None
        self._shutdowns: set[asyncio.Task[None]] = set()
        self._retired: list[_Live] = []  # stepped down; their running jobs end at stop()
        self._on_lag = on_lag

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def key(self) -> str:
        """The registry key stored with every job (see `scheduler_key`)."""
        return self._key

    @property
    def leader(self) -> bool:
        """True while this replica holds the lease and its APScheduler scheduler runs."""
        return self._scheduler is not None

    async def wait_leader(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._is_leader.wait(), timeout)
        return self.leader

    async def start(self, runner: JobRunner) -> None:
        """Return at once; a background task takes and renews the lease and runs the
        scheduler while it holds it."""
        if self._task is not None:
            raise RuntimeError("JobScheduler already started")
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._lease_loop(), name=f"scheduler-lease:{self._key}")

    async def stop(self) -> None:
        """Shut APScheduler down (waiting at most a few seconds for running jobs, then
        cancelling them), end the lease task and release the lease."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self._lease_ttl)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._stepping_up is not None:  # a cancelled tick may have left it running
            await asyncio.gather(self._stepping_up, return_exceptions=True)
        await self._step_down("stopping")
        for live in self._retired:
            live.cancel_inflight()
        for live in self._retired:
            await live.unwound()
        self._retired.clear()
        if self._shutdowns:
            await asyncio.gather(*self._shutdowns)
        try:
            await self._store.release_lease(self._lease_name, self._holder)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("scheduler lease %s not released: %s", self._lease_name, exc)
        await asyncio.to_thread(self._engine.dispose)

    # ── jobs ──

    async def put(self, job: ScheduledJob) -> bool:
        """Add `job`, or replace the job with its id; False (and nothing done) unless this
        replica leads."""
        if job.at.tzinfo is None:
            raise ValueError(f"job {job.id}: `at` must be aware, got {job.at!r}")
        if not job.id or len(job.id) > MAX_JOB_ID:
            raise ValueError(f"job id must be 1..{MAX_JOB_ID} characters: {job.id!r}")
        trigger = DateTrigger(run_date=self._clock.wall(job.at).astimezone(UTC), timezone=UTC)
        kwargs = {"key": self._key, "kind": job.kind, "args": dict(job.args)}
        async with self._lock:
            scheduler = self._scheduler
            if scheduler is None:
                return False
            await asyncio.to_thread(
                scheduler.add_job,
                JOB_FUNC,
                trigger=trigger,
                kwargs=kwargs,
                id=job.id,
                name=job.kind,
                replace_existing=True,
            )
        return True

    async def sync(self, prefix: str, jobs: Sequence[ScheduledJob]) -> None:
        """Make the jobs whose id starts with `prefix` exactly `jobs`: remove the others,
        put new and changed ones, leave unchanged ones alone. Nothing on a non-leader."""
        wanted = {j.id: j for j in jobs}
        stray = [i for i in wanted if not i.startswith(prefix)]
        if stray:
            raise ValueError(f"job ids outside {prefix!r}: {stray}")
        if not self.leader:
            log.debug("sync %r skipped: this replica does not lead", prefix)
            return
        held = {job.id: (job, wall) for job, wall in await self._read(prefix)}
        for job_id in held.keys() - wanted.keys():
            await self.remove(job_id)
        for job in wanted.values():
            found = held.get(job.id)
            if found is not None and _same(found, job, self._clock.wall(job.at)):
                continue
            if not await self.put(job):
                return  # stepped down meanwhile; the next leader syncs again

    async def remove(self, job_id: str) -> None:
        """Remove the job `job_id`; no error if there is none."""
        async with self._lock:
            scheduler = self._scheduler
            if scheduler is not None:
                with contextlib.suppress(JobLookupError):
                    await asyncio.to_thread(scheduler.remove_job, job_id)
                return
        await asyncio.to_thread(self._delete, job_id)

    async def jobs(self, prefix: str = "") -> list[ScheduledJob]:
        """The jobs in the job store whose id starts with `prefix`, soonest first; `at` is
        the rollbot time of the next run."""
        return [job for job, _ in await self._read(prefix)]

    async def _read(self, prefix: str) -> list[tuple[ScheduledJob, datetime]]:
        rows = await asyncio.to_thread(self._select, prefix)
        found: list[tuple[ScheduledJob, datetime]] = []
        for job_id, state in rows:
            try:
                kwargs = state["kwargs"]
                wall = state["next_run_time"]
                kind, args = kwargs["kind"], kwargs["args"]
            except (KeyError, TypeError):
                continue  # not one of ours
            if wall is None:
                continue  # paused: never by us
            at = rollbot_time(self._clock, wall.astimezone(UTC))
            found.append((ScheduledJob(id=job_id, at=at, kind=kind, args=args), wall))
        found.sort(key=lambda f: (f[1], f[0].id))
        return found

    def _select(self, prefix: str) -> list[tuple[str, Any]]:
        t = apscheduler_jobs
        query = sa.select(t.c.id, t.c.job_state)
        if prefix:
            query = query.where(t.c.id.startswith(prefix, autoescape=True))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        states: list[tuple[str, Any]] = []
        for row in rows:
            try:
                states.append((row.id, pickle.loads(row.job_state)))
            except Exception:  # what APScheduler itself would drop; we only skip it
                log.exception("scheduled job %s cannot be read", row.id)
        return states

    def _delete(self, job_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(apscheduler_jobs.delete().where(apscheduler_jobs.c.id == job_id))

    # ── the lease ──

    async def _lease_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._tick()
            except Exception:  # the supervisor must outlive a bug; it steps down to be safe
                log.exception("scheduler lease loop failed; stepping down")
                await self._step_down("lease loop failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._renew_every)

    async def _tick(self) -> None:
        started = time.monotonic()
        try:
            held = await self._store.acquire_lease(
                self._lease_name, self._holder, ttl=self._lease_ttl
            )
        except (SQLAlchemyError, OSError) as exc:
            log.warning("scheduler lease %s not renewed: %s", self._lease_name, exc)
            # Step down before the lease can expire and another replica take it.
            # (The scheduler thread already stopped looking for due jobs at the deadline.)
            if self.leader and time.monotonic() >= self._deadline:
                await self._step_down("lease could not be renewed")
            return
        if held:
            self._deadline = started + self._lease_ttl - self._margin
            if not self.leader and not self._stopping.is_set():
                # Shielded and kept: a half-started scheduler must never be left behind by a
                # cancelled tick (stop() waits for it).
                self._stepping_up = asyncio.create_task(self._step_up())
                await asyncio.shield(self._stepping_up)
        elif self.leader:
            await self._step_down("lease taken by another replica")

    async def _step_up(self) -> None:
        assert self._runner is not None and self._loop is not None
        live = _Live(owner=self, runner=self._runner, loop=self._loop)
        with _LIVE_LOCK:
            current = _LIVE.get(self._key)
            if current is not None and current.owner is not self:
                log.warning("another scheduler in this process still runs %s; waiting", self._key)
                return
            _LIVE[self._key] = live
        scheduler = _LeasedScheduler(
            deadline=lambda: self._deadline,
            jobstores={"default": SQLAlchemyJobStore(engine=self._engine)},
            executors={"default": ThreadPoolExecutor(max_workers=10)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        try:
            await asyncio.to_thread(scheduler.start)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("scheduler not started: %s", exc)
            _unregister(self._key, live)
            if scheduler.running:
                await asyncio.to_thread(scheduler.shutdown, wait=False)
            return
        async with self._lock:
            self._scheduler, self._live = scheduler, live
        self._is_leader.set()
        log.info("scheduler leader: %s runs jobs for %s", self._holder, self._key)

    def _submitted(self, event: JobSubmissionEvent) -> None:
        """APScheduler's thread, as a due job goes to its pool: tell `on_lag` how late."""
        if self._on_lag is None or not event.scheduled_run_times:
            return
        due = min(event.scheduled_run_times)
        self._on_lag(max(0.0, (datetime.now(UTC) - due).total_seconds()))

    async def _step_down(self, reason: str) -> None:
        """Shut APScheduler down at once (no new job starts), give jobs already handed to its
        pool a few seconds, then drop the runner from the registry. Jobs still running go on
        (they were taken off the job store already) until stop() cancels them."""
        async with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._is_leader.clear()
        live, self._live = self._live, None
        if scheduler is None:
            return
        log.info("scheduler %s steps down: %s", self._holder, reason)
        # shutdown(wait=True) stops job processing first, then waits for the pool.
        done = asyncio.create_task(asyncio.to_thread(scheduler.shutdown, wait=True))
        self._shutdowns.add(done)
        done.add_done_callback(self._shutdowns.discard)
        await asyncio.wait({done}, timeout=STOP_GRACE_SECONDS)
        if live is not None:
            _unregister(self._key, live)
            self._retired.append(live)


def _unregister(key: str, live: _Live) -> None:
    with _LIVE_LOCK:
        if _LIVE.get(key) is live:
            del _LIVE[key]


def _same(found: tuple[ScheduledJob, datetime], job: ScheduledJob, wall: datetime) -> bool:
    held, held_wall = found
    return (
        held.kind == job.kind
        and held.args == job.args
        and abs(held_wall - wall) < timedelta(milliseconds=1)
    )
