"""Timing the calls rollbot makes to the outside, in the one place per adapter where they
go out (`SlackChat._call`, `KubeRollouts._request`, the PagerDuty clients' worker-thread
calls, `JiraTickets._run`, the flag providers' and Prometheus' HTTP requests).

    with timed(observer, classify=translate) as call:
        response = await send()
        call.status(response.status_code)      # HTTP adapters: the status decides

A call is timed from the moment it leaves to its answer, the SDK's own retries included
(one call as the adapter makes it, which is what a person waits for). It ended in error
when it raised or, for an HTTP adapter, answered an error status; the error's kind (one of
`ERRORS`) comes from rollbot's typed errors (`bot.core.errors`), raw SDK errors being
translated first (`classify`):

    unreachable   Unreachable: a connection error, a timeout, a 5xx
    throttled     another TemporaryError: a 429 after the retries
    forbidden     Forbidden: 401/403, rollbot's own credentials or RBAC
    refused       any other RollbotError: a 4xx about the call itself (not found, invalid)
    other         anything else (an untranslated error: a bug)

A call cancelled before its answer (a deadline of rollbot's own, a shutdown) is not
counted. The observer (`bot.runtime.metrics.OutboundCalls`) is optional: an adapter made
without one times nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from bot.core.errors import Forbidden, RollbotError, TemporaryError, Unreachable

__all__ = ["ERRORS", "Call", "CallObserver", "error_kind", "status_error", "timed"]

ERRORS = ("unreachable", "throttled", "forbidden", "refused", "other")


class CallObserver(Protocol):
    """Told of every call to one outside service: how long it took, and its error kind
    (one of `ERRORS`) or None."""

    def observe(self, seconds: float, error: str | None) -> None: ...


def error_kind(error: BaseException) -> str:
    """The kind of a typed error (see the module docstring)."""
    if isinstance(error, Unreachable):
        return "unreachable"
    if isinstance(error, TemporaryError):
        return "throttled"
    if isinstance(error, Forbidden):
        return "forbidden"
    if isinstance(error, RollbotError):
        return "refused"
    return "other"


def status_error(status: int) -> str | None:
    """The kind of an HTTP answer's status, or None for a success (below 400)."""
    if status < 400:
        return None
    if status >= 500:
        return "unreachable"
    if status == 429:
        return "throttled"
    if status in (401, 403):
        return "forbidden"
    return "refused"


class Call:
    """One call being timed; an HTTP adapter says its answer's status."""

    error: str | None = None

    def status(self, code: int) -> None:
        self.error = status_error(code)


def _as_is(error: BaseException) -> BaseException:
    return error


@contextlib.contextmanager
def timed(
    observer: CallObserver | None,
    *,
    classify: Callable[[BaseException], BaseException] = _as_is,
) -> Iterator[Call]:
    """Time the block as one call (see the module docstring); `classify` turns a raw SDK
    error into rollbot's typed one, to tell its kind."""
    call = Call()
    started = time.perf_counter()
    try:
        yield call
    except asyncio.CancelledError:
        raise
    except Exception as err:
        if observer is not None:
            observer.observe(time.perf_counter() - started, error_kind(classify(err)))
        raise
    if observer is not None:
        observer.observe(time.perf_counter() - started, call.error)
