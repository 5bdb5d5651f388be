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

Every post, not only the cards'. `OnceChat` wraps the `Chat` every part of rollbot is given
(`bot.wiring.build`): a post made without a key (a thread line, a notice, the release
card's lines, the fallback channel's warnings) is given a fresh one and goes through
`post_once` too, within `SAY_GIVE_UP_SECONDS`, so a lost answer is never a second copy. A
direct message (a user id as the channel: the fresh runbook links) is the exception: its
history would need `im:history`, which rollbot does not ask for, so it keeps the client's
own retries, and a DM may come twice when an answer is lost.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.core.errors import PermanentError, TemporaryError
from bot.core.model import MessageRef
from bot.core.ports import Chat

__all__ = ["SAY_GIVE_UP_SECONDS", "OnceChat", "Poster", "line_key", "post_once"]

# How long a post without a key of its own (a notice, a thread line) is tried, looked for
# and tried again before its caller is told it failed: shorter than a card's 300 s, as the
# caller waits (a webhook's processing, a listener after its ack).
SAY_GIVE_UP_SECONDS = 30.0

# A user (U…, W… in Enterprise Grid) or a DM channel (D…): a direct message.
_DIRECT = re.compile(r"[UWD][A-Z0-9]{2,}")

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


class OnceChat:
    """A `Chat` whose every post is made at most once: `post` without a key gives the
    message a fresh one (``said#…``) and posts it through `post_once`; a post with a key
    (the cards', which reconcile themselves) and a direct message go through as they are.
    Everything else is the wrapped chat's."""

    def __init__(
        self,
        chat: Chat,
        *,
        give_up_after: float = SAY_GIVE_UP_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._chat = chat
        self._give_up_after = give_up_after
        self._sleep, self._clock = sleep, clock

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        if key is not None or _DIRECT.fullmatch(channel):
            return await self._chat.post(
                channel, text=text, blocks=blocks, thread_ts=thread_ts, key=key
            )
        return await post_once(
            self._chat,
            channel,
            key=f"said#{uuid.uuid4().hex[:16]}",
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            give_up_after=self._give_up_after,
            max_backoff=min(30.0, self._give_up_after),
            sleep=self._sleep,
            clock=self._clock,
        )

    async def find_post(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float
    ) -> MessageRef | None:
        return await self._chat.find_post(channel, key, thread_ts=thread_ts, since=since)

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._chat.update(ref, text=text, blocks=blocks)

    async def post_ephemeral(
        self, channel: str, user: str, *, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        await self._chat.post_ephemeral(channel, user, text=text, blocks=blocks)

    async def usergroup_members(self, usergroup: str) -> frozenset[str]:
        return await self._chat.usergroup_members(usergroup)

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str:
        return await self._chat.open_view(trigger_id, view)

    async def update_view(self, view_id: str, view: dict[str, Any]) -> None:
        await self._chat.update_view(view_id, view)

    async def user_id_by_email(self, email: str) -> str | None:
        return await self._chat.user_id_by_email(email)

    async def user_name(self, user_id: str) -> str:
        return await self._chat.user_name(user_id)

    async def user_email(self, user_id: str) -> str | None:
        return await self._chat.user_email(user_id)
