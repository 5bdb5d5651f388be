"""Work that continues after Slack has been answered, with bounded concurrency.

Listeners ack first, then `submit` the rest here. A few workers drain the queue, so a burst
of 200 commands neither starves the acks of later requests (the event loop stays free to
answer Slack) nor sends 200 simultaneous reads to the Kubernetes API. Every job carries its
own error reporter (the Slack layer's one error handler), so a failure still reaches the
person who asked. On shutdown the queue is drained, within a deadline, before the process
exits: an acked request is not dropped by a rolling restart.

A job runs in the context it was submitted from (a copy of its contextvars), not in its
worker's: its log lines carry the request id of the Slack request that queued it
(`bot.runtime.logs`), never the id of whichever request first started the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]
ErrorReporter = Callable[[BaseException], Awaitable[None]]


class WorkQueue:
    def __init__(self, *, workers: int = 4) -> None:
        self._size = workers
        self._queue: asyncio.Queue[tuple[Job, ErrorReporter | None, contextvars.Context]] = (
            asyncio.Queue()
        )
        self._workers: list[asyncio.Task[None]] = []

    def submit(self, job: Job, *, on_error: ErrorReporter | None = None) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(
                    self._work(), name=f"rollbot-worker-{i}", context=contextvars.Context()
                )
                for i in range(self._size)
            ]
        self._queue.put_nowait((job, on_error, contextvars.copy_context()))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def join(self) -> None:
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            job, on_error, context = await self._queue.get()
            try:
                # In the submitter's context; a close() cancels this worker, and with it
                # the job's task it is waiting for.
                await asyncio.create_task(_run(job, on_error), context=context)
            finally:
                self._queue.task_done()

    async def close(self, *, drain_timeout: float = 20.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=drain_timeout)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []


async def _run(job: Job, on_error: ErrorReporter | None) -> None:
    """`job`, its failure reported (never raised), unless its worker is stopping."""
    try:
        await job()
    except BaseException as err:
        if isinstance(err, asyncio.CancelledError) and _being_cancelled():
            raise  # close(): the worker is stopping
        # A CancelledError from inside the job (an inner task cancelled under it) is a
        # failure like any other: re-raising it would end the worker for good, and with all
        # workers gone acked requests would wait in the queue forever.
        if on_error is None:
            log.exception("background job failed", exc_info=err)
        else:
            try:
                await on_error(err)
            except Exception:
                log.exception("could not report a failed job", exc_info=err)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
