"""bot.cards.posting.post_once: a post whose answer was lost is looked for, not repeated.

A scripted chat stands in for Slack: each post either lands (stored under its key) and is
answered, lands and its answer is lost, or is refused before it lands. Aspects:

- answered: one post, no look;
- delivered but the answer lost: waits Slack's Retry-After (else the backoff), finds it by
  its key since the first attempt, adopts it: one message;
- refused before it landed (a 429 that was not processed): looks, does not find, posts
  again with the same key: one message;
- looking fails for a while (a TemporaryError): waited out, then looked again; looking is
  refused (PermanentError: no history scope): posted again, at-least-once;
- Slack refusing the post itself (PermanentError) is raised at once, never looked for;
- it gives up after `give_up_after` seconds with the last error;
- `earlier`: a previous attempt may have posted it, so the first thing done is to look;
- line keys: new for each line, prefixed by the card's key.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.cards.posting import line_key, post_once
from bot.core.errors import PermanentError, TemporaryError, Unreachable
from bot.core.model import MessageRef

pytestmark = pytest.mark.timeout(10)

CHANNEL = "C0PAYDEPLOY"
KEY = "payments/payment-router@42"


class ScriptedChat:
    """Posts land or not as scripted; `find_post` reads what landed."""

    def __init__(self) -> None:
        self.landed: dict[str, MessageRef] = {}
        self.posts: list[str] = []  # the keys posted, in order
        self.looks = 0
        self.post_script: list[tuple[bool, Exception | None]] = []  # (lands, then raises)
        self.find_script: list[Exception] = []

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        assert key is not None
        self.posts.append(key)
        lands, error = self.post_script.pop(0) if self.post_script else (True, None)
        ref = MessageRef(channel, f"1700000000.{len(self.posts):06d}")
        if lands:
            self.landed[key] = ref
        if error is not None:
            raise error
        return ref

    async def find_post(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float
    ) -> MessageRef | None:
        self.looks += 1
        if self.find_script:
            raise self.find_script.pop(0)
        return self.landed.get(key)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def chat() -> ScriptedChat:
    return ScriptedChat()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def once(chat: ScriptedChat, clock: Clock, **kw: Any) -> MessageRef:
    return await post_once(
        chat, CHANNEL, key=KEY, text="card", sleep=clock.sleep, clock=clock, **kw
    )


async def test_answered_is_posted_once_without_looking(chat: ScriptedChat, clock: Clock) -> None:
    ref = await once(chat, clock)
    assert ref == chat.landed[KEY]
    assert (chat.posts, chat.looks, clock.slept) == ([KEY], 0, [])


async def test_delivered_then_lost_is_found_and_adopted(chat: ScriptedChat, clock: Clock) -> None:
    chat.post_script = [(True, TemporaryError("429", delay=3.0))]
    ref = await once(chat, clock)
    assert ref == chat.landed[KEY]
    assert (chat.posts, chat.looks, clock.slept) == ([KEY], 1, [3.0])


async def test_not_delivered_is_posted_again_after_looking(
    chat: ScriptedChat, clock: Clock
) -> None:
    chat.post_script = [(False, Unreachable("Slack", "HTTP 500")), (False, TemporaryError("429"))]
    ref = await once(chat, clock)
    assert ref == chat.landed[KEY]
    assert chat.posts == [KEY, KEY, KEY]
    assert chat.looks == 2
    assert clock.slept == [1.0, 2.0]  # no Retry-After: the backoff


async def test_looking_waits_out_a_temporary_failure(chat: ScriptedChat, clock: Clock) -> None:
    chat.post_script = [(True, Unreachable("Slack", "cut"))]
    chat.find_script = [TemporaryError("history 429", delay=5.0)]
    ref = await once(chat, clock)
    assert ref == chat.landed[KEY]
    assert (chat.posts, chat.looks, clock.slept) == ([KEY], 2, [1.0, 5.0])


async def test_history_refused_posts_again(chat: ScriptedChat, clock: Clock) -> None:
    chat.post_script = [(False, Unreachable("Slack", "cut"))]
    chat.find_script = [PermanentError("missing_scope")]
    await once(chat, clock)
    assert chat.posts == [KEY, KEY]


async def test_a_refused_post_is_raised_at_once(chat: ScriptedChat, clock: Clock) -> None:
    chat.post_script = [(False, PermanentError("channel_not_found"))]
    with pytest.raises(PermanentError):
        await once(chat, clock)
    assert (chat.posts, chat.looks) == ([KEY], 0)


async def test_gives_up_after_a_while(chat: ScriptedChat, clock: Clock) -> None:
    chat.post_script = [(False, TemporaryError("429", delay=4.0))] * 100
    with pytest.raises(TemporaryError):
        await once(chat, clock, give_up_after=10.0)
    assert clock.slept == [4.0, 4.0, 4.0]
    assert chat.landed == {}


async def test_an_earlier_attempt_is_looked_for_first(chat: ScriptedChat, clock: Clock) -> None:
    earlier = MessageRef(CHANNEL, "1699999999.000001")
    chat.landed[KEY] = earlier
    assert await once(chat, clock, earlier=clock.now - 3600) == earlier
    assert (chat.posts, chat.looks) == ([], 1)


def test_line_keys_are_new_and_name_their_card() -> None:
    a, b = line_key(KEY), line_key(KEY)
    assert a != b and a.startswith(KEY + "#") and b.startswith(KEY + "#")
