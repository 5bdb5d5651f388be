"""Slack's rate limits, kept on rollbot's side, so that an alert storm never meets a 429.

Slack limits each Web API method per app and workspace
(https://docs.slack.dev/apis/web-api/rate-limits): `chat.update` is Tier 3, "50+ per
minute", and `chat.postMessage` "generally allows posting one message per second per
channel", short bursts allowed. A storm of 50 services changes 50 cards many times a
second; sent as they come, the updates are refused (429) and retried, holding the card's
lock meanwhile, and the storm's webhooks queue behind it. Paced, they are coalesced: a card
waits for its turn, and what it sends then is its latest state.

    SlackPace
      .updates           one Bucket for the workspace: UPDATES_PER_MINUTE, burst UPDATE_BURST
      .posts(channel)    one Bucket per channel: POSTS_PER_SECOND, burst POST_BURST

A `Bucket` is a token bucket whose waiters are served by priority, then in arrival order:

    try_take()       a token now, or False (nobody waiting before)
    take_now()       a token whatever is left: may go below zero (an action's own update,
                     which a person is waiting for, is never held; the paced ones wait more)
    await take(p)    wait for a token; lower `p` first (a card's post before thread lines),
                     first come first served within one priority (every card gets its turn)
    give_back()      a token taken and not used (the card had nothing new to show)

Sustained rate and burst together stay within Slack's numbers: at most
UPDATE_BURST + UPDATES_PER_MINUTE chat.update calls in any 60 s (50), at most POST_BURST
posts per channel at once and POSTS_PER_SECOND after. Only the cards are paced here
(their posts, thread lines and updates); a reply or notice posted elsewhere is not. Each
process paces itself: the leader alone edits the cards (`bot.cards.engine`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

from bot.core.model import MessageRef
from bot.core.ports import Chat

__all__ = [
    "POSTS_PER_SECOND",
    "POST_BURST",
    "UPDATES_PER_MINUTE",
    "UPDATE_BURST",
    "Bucket",
    "PacedPoster",
    "SlackPace",
]

UPDATES_PER_MINUTE = 42.0  # chat.update, sustained (Slack's Tier 3: 50 a minute)
UPDATE_BURST = 5  # at once after a quiet while: with the sustained rate, 50 in any minute
POSTS_PER_SECOND = 1.0  # chat.postMessage per channel (Slack: about 1 per second)
POST_BURST = 3  # per channel at once (Slack: "short bursts allowed")

CARD = 0  # a card's own post goes before
LINE = 1  # the thread lines waiting in the same channel


class Bucket:
    """A token bucket with a queue: `rate` tokens a second, at most `burst` saved."""

    def __init__(self, *, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens = float(burst)
        self._stamp: float | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def _refill(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    def try_take(self) -> bool:
        self._refill()
        if self.waiting or self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def take_now(self) -> None:
        self._refill()
        self._tokens -= 1.0

    def give_back(self) -> None:
        self._refill()
        self._tokens = min(self.burst, self._tokens + 1.0)
        self._wake()

    async def take(self, priority: int = 0) -> None:
        if self.try_take():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        self._wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.give_back()  # granted as it was cancelled: the next one has it
            raise

    def _wake(self) -> None:
        """Grant the tokens there are to the first waiters; call again when the next is due."""
        self._refill()
        while self._waiters and self._tokens >= 1.0:
            *_, future = heapq.heappop(self._waiters)
            if future.done():  # cancelled while waiting
                continue
            self._tokens -= 1.0
            future.set_result(None)
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiters:
            delay = (1.0 - self._tokens) / self.rate
            self._timer = asyncio.get_running_loop().call_later(delay, self._wake)


class SlackPace:
    """The buckets of one process: chat.update for the workspace, posts per channel."""

    def __init__(
        self,
        *,
        updates_per_minute: float = UPDATES_PER_MINUTE,
        update_burst: int = UPDATE_BURST,
        posts_per_second: float = POSTS_PER_SECOND,
        post_burst: int = POST_BURST,
    ) -> None:
        self.updates = Bucket(rate=updates_per_minute / 60.0, burst=update_burst)
        self._post_rate, self._post_burst = posts_per_second, post_burst
        self._posts: dict[str, Bucket] = {}

    def posts(self, channel: str) -> Bucket:
        bucket = self._posts.get(channel)
        if bucket is None:
            bucket = self._posts[channel] = Bucket(rate=self._post_rate, burst=self._post_burst)
        return bucket


class PacedPoster:
    """What `bot.cards.posting.post_once` needs of Chat, each post waiting for its turn in
    `bucket` (the channel's) at `priority`; looking for a post is not paced (another
    method, with its own limit)."""

    def __init__(self, chat: Chat, bucket: Bucket | None, priority: int) -> None:
        self._chat, self._bucket, self._priority = chat, bucket, priority

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        if self._bucket is not None:
            await self._bucket.take(self._priority)
        return await self._chat.post(
            channel, text=text, blocks=blocks, thread_ts=thread_ts, key=key
        )

    async def find_post(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float
    ) -> MessageRef | None:
        return await self._chat.find_post(channel, key, thread_ts=thread_ts, since=since)
