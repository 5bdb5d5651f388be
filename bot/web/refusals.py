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
