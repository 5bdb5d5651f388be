"""The poison bin: authentic webhook bodies that can never be processed are kept, told once,
and answered 400 (the replay of stored bodies is `bot.runtime.inbox`); and the
``Retry-After`` of a body the database could not keep (answered 503)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from bot.core import mrkdwn
from bot.runtime.metrics import Metrics

log = logging.getLogger(__name__)

#: ``Retry-After`` (seconds) of a webhook answered 503 because the database could not keep
#: it (locked past its busy timeout, disk full): the sender delivers it again.
RETRY_AFTER = "5"


class PoisonStore(Protocol):
    """The part of the store the poison bin needs (`bot.store.SqlStore` has it)."""

    async def store_poison(
        self, source: str, headers: Mapping[str, str], body: bytes, why: str
    ) -> int: ...

    async def mark_notice_sent(self, id: str, *, release_id: str) -> bool: ...


class PoisonBin:
    """Authentic bodies that cannot be processed (not JSON, nested past the parser's depth,
    a string that is not Unicode, a shape rollbot does not know): answered 400 by their
    route, so the sender does not retry them in a loop (Alertmanager retries 5xx for ever),
    and kept here instead of being lost:

    - stored in the inbox, already processed and marked poison (never replayed);
    - counted in ``rollbot_webhook_poison_total{source}``;
    - said once in the fallback channel (`tell`), per distinct body, with the inbox row to
      read and why, never the body itself.
    """

    def __init__(
        self,
        *,
        store: PoisonStore,
        metrics: Metrics,
        tell: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._tell = tell

    async def park(
        self, source: str, headers: Mapping[str, str], body: bytes, why: str
    ) -> int | None:
        """Keep the body; returns its inbox row (None when even storing it failed)."""
        self._metrics.webhook_poison.labels(source).inc()
        try:
            row = await self._store.store_poison(source, headers, body, why)
        except Exception:  # the 400 stands; the operator has the log line and the counter
            log.exception("%s: a poison body could not be stored", source)
            return None
        # Not `why`: a parser's message may quote the body (a label key, a version).
        log.warning("%s: an unprocessable body was kept as poison, inbox row %s", source, row)
        digest = hashlib.sha256(body).hexdigest()
        if self._tell is not None and await self._store.mark_notice_sent(
            f"poison:{source}:{digest}", release_id=source
        ):
            try:
                await self._tell(
                    f":biohazard_sign: rollbot refused a {source} webhook it cannot process "
                    f"({mrkdwn.escape(why)}). It is kept as inbox row {row} and will not be "
                    "retried; "
                    "check the sender's configuration."
                )
            except Exception:  # boundary: telling is best effort; the row and counter stay
                log.exception("%s: could not tell the fallback channel about row %s", source, row)
        return row
