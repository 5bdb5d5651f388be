"""Group commit for small writes that come in bursts (an alert storm's inbox rows and marks).

    await batched.add(item)   the item's result, once a write holding `item` committed (or
                              that write's error); with no write under way, one starts at once

The items added while a write is under way go together in the next one: a lone item waits
no longer than it did written alone, and a burst of N is a few writes, not N. `write(items)`
returns one result per item, in order (the rows' ids, or Nones).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batched"]

T = TypeVar("T")
R = TypeVar("R")


class Batched(Generic[T, R]):
    """`write(items)` writes a batch (one transaction); `batches`: how many were written."""

    def __init__(self, write: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._write = write
        self._items: list[T] = []
        self._next: asyncio.Future[Sequence[R]] | None = None
        self._writing: asyncio.Task[None] | None = None
        self.batches = 0

    async def add(self, item: T) -> R:
        index = len(self._items)
        self._items.append(item)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._next.add_done_callback(_retrieve)
        batch = self._next
        if self._writing is None:
            self._writing = asyncio.create_task(self._run())
        # Shielded: a caller cancelled does not cancel the others' write.
        return (await asyncio.shield(batch))[index]

    async def _run(self) -> None:
        try:
            while self._items:
                items, self._items = self._items, []
                done, self._next = self._next, None
                assert done is not None
                try:
                    results = await self._write(items)
                except Exception as err:  # noqa: BLE001 - raised to each caller of the batch
                    done.set_exception(err)
                else:
                    self.batches += 1
                    done.set_result(results)
        finally:
            self._writing = None
            if self._next is not None:  # cancelled before its write (shutdown)
                self._next.cancel()
                self._next = None


def _retrieve(future: asyncio.Future[Sequence[R]]) -> None:
    """A batch's error is raised to its callers; retrieved here so none is left unseen."""
    with contextlib.suppress(asyncio.CancelledError):
        future.exception()
