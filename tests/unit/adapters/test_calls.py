"""bot.adapters.calls: one call timed where it goes out, and the kind of its error.

Aspects under test:
- rollbot's typed errors map to their kinds (unreachable, throttled, forbidden, refused),
  anything untyped is ``other``; an HTTP status maps the same way, below 400 no error;
- `timed` tells its observer once per call: the time and no error; the kind of the typed
  error (a raw SDK error through `classify`); the status an HTTP adapter reported; and
  nothing for a call cancelled before its answer, which it lets through.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.adapters.calls import error_kind, status_error, timed
from bot.core.errors import (
    Forbidden,
    InvalidRequest,
    TargetNotFound,
    TemporaryError,
    Unreachable,
)


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    def observe(self, seconds: float, error: str | None) -> None:
        self.calls.append((seconds, error))


def test_the_kinds_of_errors_and_statuses() -> None:
    assert error_kind(Unreachable("Slack", "HTTP 502")) == "unreachable"
    assert error_kind(TemporaryError("rate-limited", delay=3)) == "throttled"
    assert error_kind(Forbidden("Kubernetes API", "rollouts is forbidden")) == "forbidden"
    assert error_kind(TargetNotFound("Rollout", "payments", "x")) == "refused"
    assert error_kind(InvalidRequest("bad")) == "refused"
    assert error_kind(KeyError("x")) == "other"
    assert [status_error(s) for s in (200, 304, 400, 401, 403, 404, 429, 500, 503)] == [
        None,
        None,
        "refused",
        "forbidden",
        "forbidden",
        "refused",
        "throttled",
        "unreachable",
        "unreachable",
    ]


async def test_timed_tells_the_observer_once_per_call() -> None:
    seen = Seen()
    with timed(seen):
        await asyncio.sleep(0.01)
    with pytest.raises(Forbidden), timed(seen):
        raise Forbidden("Slack", "invalid_auth")
    with pytest.raises(OSError), timed(seen, classify=lambda e: Unreachable("X", str(e))):
        raise OSError("connection reset")
    with timed(seen) as call:
        call.status(429)
    with timed(None):  # an adapter made without an observer
        pass
    assert [error for _, error in seen.calls] == [None, "forbidden", "unreachable", "throttled"]
    assert seen.calls[0][0] >= 0.01


async def test_a_cancelled_call_is_not_counted() -> None:
    seen = Seen()
    started = asyncio.Event()

    async def call() -> None:
        with timed(seen):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(call())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen.calls == []
