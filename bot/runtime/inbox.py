"""The webhook inbox's replay: bodies stored (and answered 2xx) but not processed, because the
process died between the answer and the work, or the work failed to finish (the database
went away mid-way, issue 15's fault 5), are processed by the leader.

The leader replays at its start, then keeps replaying (`bot.wiring.rollbot`): rows older
than a few seconds that this process is not processing right now (`InFlight`: the receivers
register each row from its store to its mark). So a webhook accepted while the database
answered, whose processing then failed, is delivered within seconds, not at the next
restart; and one being processed is never processed twice.

Each capability names its own sources and replays them (`bot.incidents.inbox`,
`bot.paging.inbox`); the web routes store the bodies (`bot.web`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bot.core.errors import TemporaryError
from bot.store import unavailable

__all__ = ["InFlight", "replay_inbox", "retry_later"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def retry_later(exc: BaseException) -> bool:
    """Whether processing that raised `exc` is to be tried again (the row left pending for
    the replay) rather than marked done with the error: a temporary failure of a service
    (`TemporaryError`) or of the database (`bot.store.unavailable`)."""
    return isinstance(exc, TemporaryError) or unavailable(exc)


class InFlight:
    """The inbox rows this process is processing now (stored, not yet marked)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()

    def add(self, row: int) -> None:
        self._ids.add(row)

    def discard(self, row: int) -> None:
        self._ids.discard(row)

    def __contains__(self, row: object) -> bool:
        return row in self._ids

    def __len__(self) -> int:
        return len(self._ids)


async def replay_inbox(
    store: Any,
    source: str,
    *,
    parse: Callable[[str], T],
    process: Callable[[T], Awaitable[object]],
    malformed: type[Exception] = ValueError,
    limit: int = 100,
    skip: Container[int] = (),
    min_age: timedelta = timedelta(0),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Run `process(parse(body))` for each pending row of `source`, marking each row
    processed (with the error, if any). A body that `parse` rejects with `malformed` is
    marked "unparseable: …" and not counted. Returns how many rows were replayed. Rows in
    `skip` (being processed by this process) and rows received less than `min_age` ago
    (their receiver may not have registered them yet) are left for a later round.
    `store` is a `bot.store.SqlStore` (``pending_webhooks``, ``mark_webhook_processed``)."""
    replayed = 0
    settled = now() - min_age
    for record in await store.pending_webhooks(limit=limit):
        if record.source != source or record.id in skip or record.received_at > settled:
            continue
        try:
            parsed = parse(record.body)
        except malformed as exc:
            await store.mark_webhook_processed(record.id, error=f"unparseable: {exc}")
            continue
        error: str | None = None
        try:
            await process(parsed)
        except Exception as exc:  # boundary: recorded in the inbox row
            if retry_later(exc):
                log.warning("%s webhook %s: replay failed (%r); retrying", source, record.id, exc)
                continue
            log.exception("%s webhook %s: replay failed", source, record.id)
            error = f"{type(exc).__name__}: {exc}"
        await store.mark_webhook_processed(record.id, error=error)
        replayed += 1
    return replayed
