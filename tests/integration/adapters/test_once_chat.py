"""OnceChat (bot.cards.posting) over SlackChat, against the Slack sim over real HTTP: every
post rollbot makes without a key of its own (a notice, a thread line) is made at most once.

Aspects under test:
- a notice or a thread line whose answer Slack lost after storing it (a 429 answered to a
  delivered post, a cut connection, a 500) is in Slack once, and the caller gets that
  message: it was looked for (conversations.history / conversations.replies) by the key
  OnceChat gave it, not posted blindly again;
- a post whose attempt really failed (429 before it ran) is posted again, once;
- each post gets a key of its own: two notices with the same text are two messages;
- Slack's refusal (channel_not_found) is raised at once, with one call;
- a direct message (a user id as the channel) keeps the client's own retries: its history
  would need im:history, which rollbot does not ask for;
- a post with a key (the cards') is passed through as it is: no reconciling of its own;
- looking for a lost post in a channel given by its id needs no conversations.list (so no
  channels:read or groups:read); by its name, the name is resolved once.
"""

from __future__ import annotations

import pytest

from bot.adapters.slack import SlackChat, SlackRefused, make_web_client
from bot.cards.posting import OnceChat
from bot.core.errors import TemporaryError
from bot.sim.slack import SlackSim

CHANNEL = "C0PAYDEPLOY"


async def no_wait(_: float) -> None:
    """Waits cost nothing here: the sim's Retry-After is honoured by the adapter's gate."""


@pytest.fixture
def slack(slack_sim: SlackSim, bot_token: str) -> SlackChat:
    return SlackChat(make_web_client(bot_token, slack_sim.api_url))


@pytest.fixture
def chat(slack: SlackChat) -> OnceChat:
    return OnceChat(slack, sleep=no_wait)


def texts(slack_sim: SlackSim) -> list[str]:
    return [m["text"] for m in slack_sim.messages(CHANNEL)]


@pytest.mark.parametrize("how", ["429", "cut", "500"])
async def test_a_notice_whose_answer_was_lost_is_posted_once(
    chat: OnceChat, slack_sim: SlackSim, how: str
) -> None:
    slack_sim.lose_answers("chat.postMessage", how=how)
    ref = await chat.post(CHANNEL, text="Jira is unreachable")
    assert texts(slack_sim) == ["Jira is unreachable"]
    assert ref.ts == slack_sim.messages(CHANNEL)[0]["ts"]
    assert len(slack_sim.calls_to("chat.postMessage")) == 1
    assert len(slack_sim.calls_to("conversations.history")) >= 1


@pytest.mark.parametrize("how", ["429", "cut", "500"])
async def test_a_thread_line_whose_answer_was_lost_is_posted_once(
    chat: OnceChat, slack_sim: SlackSim, how: str
) -> None:
    card = await chat.post(CHANNEL, text="card", key="payments/payment-router@42")
    slack_sim.lose_answers("chat.postMessage", how=how)
    line = await chat.post(CHANNEL, text="aborted by @oncall", thread_ts=card.ts)
    replies = [m for m in slack_sim.messages(CHANNEL) if m.get("thread_ts") == card.ts]
    assert [m["text"] for m in replies if m["ts"] != card.ts] == ["aborted by @oncall"]
    assert line.ts == next(m["ts"] for m in replies if m["ts"] != card.ts)
    assert len(slack_sim.calls_to("conversations.replies")) >= 1


async def test_a_post_refused_before_it_ran_is_posted_again_once(
    chat: OnceChat, slack_sim: SlackSim
) -> None:
    slack_sim.force_ratelimit("chat.postMessage", retry_after=1, times=1)
    await chat.post(CHANNEL, text="notice")
    assert texts(slack_sim) == ["notice"]
    assert len(slack_sim.calls_to("chat.postMessage")) == 2


async def test_each_post_has_a_key_of_its_own(chat: OnceChat, slack_sim: SlackSim) -> None:
    await chat.post(CHANNEL, text="same words")
    await chat.post(CHANNEL, text="same words")
    keys = [m["metadata"]["event_payload"]["key"] for m in slack_sim.messages(CHANNEL)]
    assert texts(slack_sim) == ["same words", "same words"]
    assert len(set(keys)) == 2
    assert all(k.startswith("said#") for k in keys)


async def test_a_refusal_is_raised_at_once(chat: OnceChat, slack_sim: SlackSim) -> None:
    with pytest.raises(SlackRefused, match="channel_not_found"):
        await chat.post("C0NOSUCHCHANNEL", text="notice")
    assert len(slack_sim.calls_to("chat.postMessage")) == 1


async def test_a_direct_message_keeps_the_client_retries(
    chat: OnceChat, slack_sim: SlackSim
) -> None:
    slack_sim.lose_answers("chat.postMessage", how="429")
    await chat.post("U0ONCALL", text="your runbook link")
    calls = slack_sim.calls_to("chat.postMessage")
    assert len(calls) == 2
    assert slack_sim.calls_to("conversations.history") == []


async def test_a_keyed_post_is_the_callers_to_reconcile(
    chat: OnceChat, slack_sim: SlackSim
) -> None:
    slack_sim.lose_answers("chat.postMessage", how="cut")
    with pytest.raises(TemporaryError):
        await chat.post(CHANNEL, text="card", key="payments/payment-router@42")
    assert len(slack_sim.calls_to("chat.postMessage")) == 1
    assert slack_sim.calls_to("conversations.history") == []


@pytest.mark.parametrize(("channel", "lists"), [(CHANNEL, 0), ("#payments-deploys", 1)])
async def test_a_channel_given_by_its_id_is_looked_in_without_listing_channels(
    chat: OnceChat, slack_sim: SlackSim, channel: str, lists: int
) -> None:
    slack_sim.lose_answers("chat.postMessage", how="cut")
    await chat.post(channel, text="notice")
    assert texts(slack_sim) == ["notice"]
    assert len(slack_sim.calls_to("conversations.list")) == lists
