"""The webhook inbox's replay: bodies stored (and answered 2xx) but never processed, because
the process died between the answer and the work, are processed by the next leader.

Each capability names its own sources and replays them (`bot.incidents.inbox`,
`bot.paging.inbox`); the web routes store the bodies (`bot.web`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["replay_inbox"]

log = logging.getLogger(__name__)

T = TypeVar("T")


async def replay_inbox(
    store: Any,
    source: str,
    *,
    parse: Callable[[str], T],
    process: Callable[[T], Awaitable[object]],
    malformed: type[Exception] = ValueError,
    limit: int = 100,
) -> int:
    """Run `process(parse(body))` for each pending row of `source`, marking each row
    processed (with the error, if any). A body that `parse` rejects with `malformed` is
    marked "unparseable: …" and not counted. Returns how many rows were replayed.
    `store` is a `bot.store.SqlStore` (``pending_webhooks``, ``mark_webhook_processed``)."""
    replayed = 0
    for record in await store.pending_webhooks(limit=limit):
        if record.source != source:
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
            log.exception("%s webhook %s: replay failed", source, record.id)
            error = f"{type(exc).__name__}: {exc}"
        await store.mark_webhook_processed(record.id, error=error)
        replayed += 1
    return replayed
