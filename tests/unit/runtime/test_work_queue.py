"""bot.runtime.work.WorkQueue: work continued after Slack's ack.

Aspects under test:
- a job that fails, or that raises CancelledError while its worker is not being cancelled
  (an inner task cancelled under it), is reported and the worker goes on to the next job;
- close() drains what was queued;
- a job runs in the context it was submitted from: its log context (the request id of the
  Slack request that queued it) and its error report too, never the context of the
  request that happened to start the workers.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.runtime import logs
from bot.runtime.work import WorkQueue

pytestmark = pytest.mark.timeout(10)


async def test_a_job_raising_cancelled_error_does_not_kill_its_worker():
    work = WorkQueue(workers=1)
    reported: list[BaseException] = []
    done: list[str] = []

    async def report(err: BaseException) -> None:
        reported.append(err)

    async def cancelled_inside() -> None:
        inner = asyncio.create_task(asyncio.sleep(10))
        asyncio.get_running_loop().call_soon(inner.cancel)
        await inner  # raises CancelledError into the job, not because the worker was cancelled

    async def failing() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        done.append("fine")

    work.submit(cancelled_inside, on_error=report)
    work.submit(failing, on_error=report)
    work.submit(fine, on_error=report)
    await asyncio.wait_for(work.join(), timeout=2)
    assert done == ["fine"]
    assert [type(e) for e in reported] == [asyncio.CancelledError, RuntimeError]
    await work.close(drain_timeout=1)


async def test_close_drains_then_stops_the_workers():
    work = WorkQueue(workers=2)
    done: list[int] = []

    def job(i: int):
        async def run() -> None:
            await asyncio.sleep(0.01)
            done.append(i)

        return run

    for i in range(5):
        work.submit(job(i))
    await work.close(drain_timeout=2)
    assert sorted(done) == [0, 1, 2, 3, 4]


async def test_each_job_runs_in_the_context_it_was_submitted_from():
    work = WorkQueue(workers=1)
    seen: list[tuple[str, dict[str, str]]] = []
    gate = asyncio.Event()

    def job(name: str, *, fail: bool = False):
        async def run() -> None:
            await gate.wait()
            seen.append((name, dict(logs.current())))
            if fail:
                raise RuntimeError(name)

        return run

    async def report(err: BaseException) -> None:
        seen.append((f"report {err}", dict(logs.current())))

    with logs.bound(request_id="first"):  # this request starts the workers
        work.submit(job("a"), on_error=report)
    with logs.bound(request_id="second", service="payment-router"):
        work.submit(job("b", fail=True), on_error=report)
    work.submit(job("c"), on_error=report)
    gate.set()
    await asyncio.wait_for(work.join(), timeout=2)
    assert seen == [
        ("a", {"request_id": "first"}),
        ("b", {"request_id": "second", "service": "payment-router"}),
        ("report b", {"request_id": "second", "service": "payment-router"}),
        ("c", {}),
    ]
    await work.close(drain_timeout=1)
