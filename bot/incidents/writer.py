"""Group commit of the incidents' rows: an alert storm's many changes, few writes.

Every change to an incident is written before it is shown or paged (`bot.incidents.engine`).
Written one by one, a storm of webhooks is as many transactions, each rewriting the whole
row (the incident and every alert firing for it), one after the other on one connection.
Here the writes wait for each other instead:

    save(key) ─► the key is marked ─► no write under way: a round starts now
                                     └ a write under way: the next round, when it ends
    a round: the marked keys' incidents as they are in memory then, in one transaction
             (`save_incidents`) ─► every caller waiting on that round returns (or raises)

A caller returns once a round that began after its `save` committed: what it changed (in
memory, before calling) is in the database. With no write under way a round starts at
once, so a lone change waits no longer than before; under a storm, the changes to an
incident made while a round was being written are one row in the next. A round that
fails raises to each of its callers and leaves its keys `unsaved`; any later round writes
them too (the incident engine's next change, replay or tick).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from bot.core.model import Incident

__all__ = ["IncidentWriter"]

Snapshot = Callable[[str], tuple[Incident, Mapping[str, str]] | None]


class RowsStore(Protocol):
    async def save_incidents(self, rows: Sequence[tuple[Incident, Mapping[str, str]]]) -> None: ...


class IncidentWriter:
    """`snapshot(key)`: the incident of `key` and its firing alerts' summaries as they are
    now (None: nothing to write)."""

    def __init__(self, *, store: RowsStore, snapshot: Snapshot) -> None:
        self._store = store
        self._snapshot = snapshot
        self._marked: set[str] = set()
        self.unsaved: set[str] = set()  # keys whose last round failed
        self._next: asyncio.Future[None] | None = None
        self._writing: asyncio.Task[None] | None = None
        self._in_flight: set[str] = set()  # the keys of the round being written
        self.rounds = 0  # rounds written (the tests count them)

    def pending(self, key: str) -> bool:
        """Whether a change to `key` is not known to be written yet."""
        return key in self._marked or key in self.unsaved or key in self._in_flight

    async def save(self, key: str) -> None:
        """Return once `key`'s incident, as it is now in memory, is written."""
        self._marked.add(key)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._next.add_done_callback(_retrieve)
        round_ = self._next
        if self._writing is None:
            self._writing = asyncio.create_task(self._write())
        # Shielded: a caller cancelled does not cancel the round the others wait on.
        await asyncio.shield(round_)

    async def _write(self) -> None:
        try:
            while self._marked:
                keys = self._in_flight = self._marked | self.unsaved
                self._marked = set()
                done, self._next = self._next, None
                assert done is not None
                rows = [row for key in sorted(keys) if (row := self._snapshot(key)) is not None]
                try:
                    await self._store.save_incidents(rows)
                except BaseException as err:
                    self.unsaved |= keys
                    if not done.done():
                        done.set_exception(err)
                    if not isinstance(err, Exception):
                        raise
                else:
                    self.unsaved -= keys
                    self.rounds += 1
                    if not done.done():
                        done.set_result(None)
        finally:
            self._writing = None
            self._in_flight = set()
            if self._next is not None:  # cancelled before its round (shutdown)
                self._next.cancel()
                self._next = None


def _retrieve(future: asyncio.Future[None]) -> None:
    """A round's error is raised to its callers; retrieved here so none is left unseen."""
    with contextlib.suppress(asyncio.CancelledError):
        future.exception()
