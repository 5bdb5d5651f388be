"""A card or a thread line is posted once, though Slack may lose the answer to a post.

A post that failed may have been delivered: Slack did the work and its answer was lost (a
connection cut, a timeout, a 5xx), or a 429 was answered to a retry of a post that had gone
through. Posting it again blindly would show the card, or the line, twice. `post_once`
reconciles instead (issue 15):

    post(key) ─► its ts
       └─ TemporaryError: maybe delivered
            ─► wait: Slack's Retry-After, else a backoff (1, 2, 4 … s, at most `max_backoff`)
            ─► find_post(key), in the channel or the thread, since the first attempt
                 ├─ found ─► its ts: it was delivered, and is adopted
                 └─ not there ─► post(key) again …
       … for `give_up_after` seconds; then the last error is raised.

The key travels with the message (Slack message metadata, `bot.adapters.slack`), so the
post is recognised whatever its text. A refusal (PermanentError) is raised at once. Looking
can fail as well: a TemporaryError is waited out like a post's; a refusal (the history is
not readable: a missing scope, a channel rollbot is not a member of) leaves no way to know,
so the post is sent again, with a warning: a line twice is the lesser evil than a card
missing at 2 a.m. A post still being processed when Slack is asked may not be found yet;
waiting before looking makes that unlikely, not impossible.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.core.errors import PermanentError, TemporaryError
from bot.core.model import MessageRef

__all__ = ["Poster", "line_key", "post_once"]

log = logging.getLogger(__name__)


class Poster(Protocol):
    """What `post_once` needs of `bot.core.ports.Chat` (a paced one:
    `bot.cards.pace.PacedPoster`)."""

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef: ...

    async def find_post(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float
    ) -> MessageRef | None: ...


def line_key(card: str) -> str:
    """A new key for one thread line of the card `card` (its `card_key`): the same line,
    posted again after a failure, keeps it."""
    return f"{card}#{uuid.uuid4().hex[:12]}"


async def post_once(
    chat: Poster,
    channel: str,
    *,
    key: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    thread_ts: str | None = None,
    earlier: float | None = None,
    give_up_after: float = 300.0,
    max_backoff: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> MessageRef:
    """Post `text` (and `blocks`) in `channel`, in the thread of `thread_ts`, under `key`,
    at most once: the message posted, or the one an attempt whose answer was lost had
    posted. `earlier`: a previous attempt (another process's, say) may have posted it since
    then (epoch seconds), so look first."""
    started = clock()
    since = started if earlier is None else min(earlier, started)
    backoff = 1.0
    maybe = earlier is not None
    while True:
        if maybe:
            try:
                found = await chat.find_post(channel, key, thread_ts=thread_ts, since=since)
            except TemporaryError as err:
                if clock() - started >= give_up_after:
                    raise
                delay, backoff = _delay(err, backoff, max_backoff)
                log.warning("could not look for %s in Slack: %s", key, err.message)
                await sleep(delay)
                continue
            except PermanentError as err:
                log.warning(
                    "cannot tell whether %s was posted (%s): posting it again", key, err.message
                )
                found = None
            if found is not None:
                log.info("%s was posted after all (%s): adopted", key, found.ts)
                return found
        try:
            return await chat.post(channel, text=text, blocks=blocks, thread_ts=thread_ts, key=key)
        except TemporaryError as err:
            if clock() - started >= give_up_after:
                raise
            maybe = True
            delay, backoff = _delay(err, backoff, max_backoff)
            log.warning(
                "post %s may or may not be in Slack (%s): looking in %.1f s",
                key,
                err.message,
                delay,
            )
            await sleep(delay)


def _delay(err: TemporaryError, backoff: float, most: float) -> tuple[float, float]:
    """How long to wait after `err` (Slack's Retry-After, else the backoff), and the next
    backoff."""
    delay = err.delay if err.delay is not None else backoff
    return delay, min(backoff * 2, most)
