"""The loop both controller sims (Argo Rollouts', Argo CD's) run in a thread of their own:
one pass every `interval` seconds until `stop()`, a failed pass logged and the next one
run, as a real controller's work queue goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = ["PassLoop"]


class PassLoop:
    """`start(interval)` calls `one_pass` every `interval` seconds from a daemon thread
    named `name`; `stop()` ends it (waiting up to 5 s). Starting it again while it runs
    does nothing."""

    def __init__(self, one_pass: Callable[[], None], name: str) -> None:
        self._one_pass = one_pass
        self._name = name
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, interval: float) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self._one_pass()
                except Exception:
                    log.exception("%s pass failed", self._name)

        self._thread = threading.Thread(target=loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None
