"""Logging refusals without letting a flood write the log: each reason is logged at most
once per `every` seconds, with how many of it were not logged in between.

An unauthenticated request costs its sender nothing; a WARNING line per refused request
costs rollbot a formatted record and a write per request, and floods whatever reads the
log. A refusal is counted in /metrics every time; the log says that it happens and how
often. The reason is rollbot's own words, never anything of the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RefusalLog:
    """`refused(reason)` logs "<reason>" the first time and then at most once per `every`
    seconds, adding "(and N more since)" for those it held back."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every = every
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def refused(self, reason: str) -> None:
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self._every:
            self._held[reason] = self._held.get(reason, 0) + 1
            return
        held = self._held.pop(reason, 0)
        self._last[reason] = now
        if held and last is not None:
            self._log.warning("%s (and %d more in the last %.0f s)", reason, held, now - last)
        else:
            self._log.warning("%s", reason)


#: Statuses rollbot answers to requests it refuses before doing anything: they are counted
#: in /metrics and summarised by `RefusalLog`, not written one access-log line each.
REFUSED_STATUSES = frozenset({401, 408, 413})


class QuietRefusals(logging.Filter):
    """Drops uvicorn's access-log line of a refused request (401, 408, 413): a flood of
    unauthenticated requests would otherwise write one line each, costing rollbot a
    formatted record and a write per request and burying the log. Every other request keeps
    its line. uvicorn's access records carry (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) == 5 and args[4] in REFUSED_STATUSES)


def quiet_refusals(logger_name: str = "uvicorn.access") -> None:
    """Install `QuietRefusals` on uvicorn's access logger (idempotent; survives uvicorn's
    dictConfig, which replaces handlers but keeps a logger's filters)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, QuietRefusals) for f in logger.filters):
        logger.addFilter(QuietRefusals())
