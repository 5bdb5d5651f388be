"""SlackChat (bot.adapters.slack) against the Slack sim over real HTTP.

Aspects under test:
- post / threaded post / update / post_ephemeral reach Slack with the right arguments and
  the returned MessageRef points at the stored message;
- usergroup_members and user_name read Slack and are cached for `ttl` (injected clock);
- user_id_by_email (users.lookupByEmail): the id, None on users_not_found, both cached for
  `ttl`, case-insensitive on the email; other refusals still raise;
- errors are translated: channel_not_found → SlackRefused (PermanentError with the code),
  invalid_auth → Forbidden, connection refused → Unreachable, 429 beyond the client's
  retries → TemporaryError with the Retry-After delay;
- a 429 with Retry-After is obeyed by the client made by make_web_client;
- auth_test: who the token is (for the log), Forbidden when Slack refuses the token,
  Unreachable on Slack's 5xx;
- a 429 holds its method for every caller (the RetryAfterGate): the next call to it waits
  out the Retry-After, another method does not;
- a post with a key carries it as message metadata and `find_post` finds it, in the
  channel (named or by id; a name is resolved by conversations.list once) and in a thread;
  an unknown key or a post older than the look-back is not found;
- a post with a key whose answer was lost (429 after delivery, a cut connection) is not
  retried by the client: one request, a TemporaryError, and the message found by its key;
  the same post without a key is retried after its Retry-After, and is in the channel twice.
"""

from __future__ import annotations

import socket
import time

import pytest

from bot.adapters.slack import LOOKBACK_SECONDS, SlackChat, SlackRefused, make_web_client
from bot.core.errors import Forbidden, PermanentError, TemporaryError, Unreachable
from bot.core.model import MessageRef
from bot.sim.slack import SlackSim
from tests.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def chat(slack_sim: SlackSim, bot_token: str, clock: FakeClock) -> SlackChat:
    return SlackChat(make_web_client(bot_token, slack_sim.api_url), ttl=30.0, clock=clock)


async def test_post_thread_update_ephemeral(chat: SlackChat, slack_sim: SlackSim) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*card*"}}]
    ref = await chat.post("#payments-deploys", text="card", blocks=blocks)
    assert ref.channel == "C0PAYDEPLOY"
    reply = await chat.post(ref.channel, text="aborted", thread_ts=ref.ts)
    await chat.update(ref, text="card v2", blocks=[{"type": "divider"}])
    await chat.post_ephemeral("C0PAYDEPLOY", "U0OUTSIDER", text="not allowed")

    messages = slack_sim.messages("C0PAYDEPLOY")
    assert [m["ts"] for m in messages] == [ref.ts, reply.ts]
    assert messages[0]["text"] == "card v2"
    assert messages[0]["blocks"][0]["type"] == "divider"
    assert "edited" in messages[0]
    assert messages[1]["thread_ts"] == ref.ts
    assert slack_sim.ephemerals[0]["user"] == "U0OUTSIDER"
    post = slack_sim.calls_to("chat.postMessage")[0]
    assert post.headers["authorization"].startswith("Bearer xoxb-")
    assert post.body["blocks"] == blocks


async def test_members_and_names_are_cached_for_ttl(
    chat: SlackChat, slack_sim: SlackSim, clock: FakeClock
) -> None:
    assert await chat.usergroup_members("S0PAYMENTS") == frozenset({"U0ONCALL"})
    slack_sim.set_usergroup_members("S0PAYMENTS", ["U0ONCALL", "U0OUTSIDER"])
    clock.now += 29
    assert await chat.usergroup_members("S0PAYMENTS") == frozenset({"U0ONCALL"})
    assert len(slack_sim.calls_to("usergroups.users.list")) == 1
    clock.now += 2
    assert await chat.usergroup_members("S0PAYMENTS") == {"U0ONCALL", "U0OUTSIDER"}

    assert await chat.user_name("U0ONCALL") == "On-call Engineer"
    assert await chat.user_name("U0ONCALL") == "On-call Engineer"
    assert len(slack_sim.calls_to("users.info")) == 1


async def test_slack_errors_become_typed_errors(chat: SlackChat, slack_sim: SlackSim) -> None:
    with pytest.raises(SlackRefused) as refused:
        await chat.post("#nope", text="x")
    assert refused.value.code == "channel_not_found"
    assert isinstance(refused.value, PermanentError)

    with pytest.raises(SlackRefused, match="message_not_found"):
        await chat.update(MessageRef("C0PAYDEPLOY", "1.000001"), text="x", blocks=[])
    with pytest.raises(SlackRefused, match="no_such_subteam"):
        await chat.usergroup_members("S0NOPE")
    with pytest.raises(SlackRefused, match="user_not_found"):
        await chat.user_name("U0NOBODY")


async def test_invalid_token_is_forbidden(slack_sim: SlackSim) -> None:
    slack_sim.token = "xoxb-the-only-good-one"
    chat = SlackChat(make_web_client("xoxb-a-wrong-one-123", slack_sim.api_url))
    with pytest.raises(Forbidden, match="invalid_auth"):
        await chat.post("C0PAYDEPLOY", text="x")


async def test_auth_test_says_who_or_why_not(
    chat: SlackChat, slack_sim: SlackSim, bot_token: str
) -> None:
    assert await chat.auth_test() == "@rollbot in Payments (T0PAYMENTS)"
    slack_sim.set_token_valid(bot_token, False)
    with pytest.raises(Forbidden) as err:
        await chat.auth_test()
    assert err.value.detail == "invalid_auth"
    assert bot_token not in err.value.message
    slack_sim.force_status("auth.test", status=503)
    with pytest.raises(Unreachable):
        await chat.auth_test()


async def test_unreachable_slack(bot_token: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chat = SlackChat(make_web_client(bot_token, f"http://127.0.0.1:{port}/api/"))
    with pytest.raises(Unreachable) as err:
        await chat.post("C0PAYDEPLOY", text="x")
    assert err.value.service == "Slack"


async def test_ratelimit_obeyed_then_given_up(slack_sim: SlackSim, bot_token: str) -> None:
    chat = SlackChat(make_web_client(bot_token, slack_sim.api_url, max_rate_limit_retries=1))
    slack_sim.force_ratelimit("chat.postMessage", retry_after=1, times=1)
    started = time.monotonic()
    ref = await chat.post("C0PAYDEPLOY", text="after one 429")
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was waited out
    assert ref.ts
    assert [c.status for c in slack_sim.calls_to("chat.postMessage")] == [429, 200]

    no_retry = SlackChat(make_web_client(bot_token, slack_sim.api_url, max_rate_limit_retries=0))
    slack_sim.force_ratelimit("chat.update", retry_after=7)
    with pytest.raises(TemporaryError) as err:
        await no_retry.update(ref, text="x", blocks=[])
    assert err.value.delay == 7


async def test_slack_server_error_is_unreachable(chat: SlackChat, slack_sim: SlackSim) -> None:
    """Slack's own 500 (SlackSim.force_status, here for one channel only) is Unreachable:
    a temporary failure the callers retry or report, never a crash."""
    slack_sim.add_channel("C0OTHER", "other")
    slack_sim.force_status("chat.postMessage", status=500, channel="#other")
    assert (await chat.post("C0PAYDEPLOY", text="elsewhere")).ts
    with pytest.raises(Unreachable) as err:
        await chat.post("C0OTHER", text="refused")
    assert err.value.service == "Slack"
    assert (await chat.post("C0OTHER", text="once only")).ts
    calls = slack_sim.calls_to("chat.postMessage")
    assert [(c.body["channel"], c.status) for c in calls] == [
        ("C0PAYDEPLOY", 200),
        ("C0OTHER", 500),
        ("C0OTHER", 200),
    ]
    assert [m["text"] for m in slack_sim.messages("C0OTHER")] == ["once only"]


async def test_user_id_by_email_found_missing_and_cached(
    chat: SlackChat, slack_sim: SlackSim, clock: FakeClock
) -> None:
    assert await chat.user_id_by_email("oncall@example.com") == "U0ONCALL"
    assert await chat.user_id_by_email(" OnCall@Example.com ") == "U0ONCALL"  # cached
    assert await chat.user_id_by_email("nobody@example.com") is None
    assert await chat.user_id_by_email("nobody@example.com") is None  # miss cached too
    calls = slack_sim.calls_to("users.lookupByEmail")
    assert [c.body["email"] for c in calls] == ["oncall@example.com", "nobody@example.com"]
    assert calls[0].response["user"]["id"] == "U0ONCALL"
    assert calls[1].response == {"ok": False, "error": "users_not_found"}

    slack_sim.add_user("U0NEWBIE", "newbie", email="nobody@example.com")
    clock.now += 29
    assert await chat.user_id_by_email("nobody@example.com") is None
    clock.now += 2
    assert await chat.user_id_by_email("nobody@example.com") == "U0NEWBIE"


async def test_user_id_by_email_other_errors_raise(slack_sim: SlackSim) -> None:
    slack_sim.token = "xoxb-the-only-good-one"
    chat = SlackChat(make_web_client("xoxb-a-wrong-one-123", slack_sim.api_url))
    with pytest.raises(Forbidden, match="invalid_auth"):
        await chat.user_id_by_email("oncall@example.com")


async def test_a_429_holds_the_method_for_every_caller(slack_sim: SlackSim, bot_token: str) -> None:
    chat = SlackChat(make_web_client(bot_token, slack_sim.api_url, max_rate_limit_retries=0))
    ref = await chat.post("C0PAYDEPLOY", text="card")
    slack_sim.force_ratelimit("chat.update", retry_after=1)
    with pytest.raises(TemporaryError):
        await chat.update(ref, text="v1", blocks=[])
    assert 0.5 < chat.gate.remaining("chat.update") <= 1.0
    await chat.post("C0PAYDEPLOY", text="another method is not held", thread_ts=ref.ts)
    await chat.update(ref, text="v2", blocks=[])  # another caller: waits at the gate

    refused, sent = slack_sim.calls_to("chat.update")
    assert (refused.status, sent.status) == (429, 200)
    assert sent.at - refused.at >= 1.0
    line = slack_sim.calls_to("chat.postMessage")[-1]
    assert line.at - refused.at < 1.0


async def test_a_keyed_post_is_found_by_its_key(chat: SlackChat, slack_sim: SlackSim) -> None:
    started = time.time()
    card = await chat.post("#payments-deploys", text="card", key="payments/pr@42")
    line = await chat.post(card.channel, text="line", thread_ts=card.ts, key="payments/pr@42#1")
    assert slack_sim.messages("C0PAYDEPLOY")[0]["metadata"] == {
        "event_type": "rollbot_post",
        "event_payload": {"key": "payments/pr@42"},
    }

    assert await chat.find_post("#payments-deploys", "payments/pr@42", since=started) == card
    assert await chat.find_post("C0PAYDEPLOY", "payments/pr@42", since=started) == card
    found = await chat.find_post(card.channel, "payments/pr@42#1", thread_ts=card.ts, since=started)
    assert found == line
    assert await chat.find_post("C0PAYDEPLOY", "payments/pr@43", since=started) is None
    later = started + LOOKBACK_SECONDS + 60
    assert await chat.find_post("C0PAYDEPLOY", "payments/pr@42", since=later) is None
    history = slack_sim.calls_to("conversations.history")
    assert {c.body["channel"] for c in history} == {"C0PAYDEPLOY"}  # the name, learnt
    assert all(c.body["include_all_metadata"] == "1" for c in history)
    assert slack_sim.calls_to("conversations.list") == []


async def test_a_channel_name_is_resolved_once(chat: SlackChat, slack_sim: SlackSim) -> None:
    slack_sim.add_channel("C0OTHER", "other")
    assert await chat.channel_id("#other") == "C0OTHER"
    assert await chat.channel_id("other") == "C0OTHER"
    assert await chat.channel_id("C0PAYDEPLOY") == "C0PAYDEPLOY"
    assert len(slack_sim.calls_to("conversations.list")) == 1
    with pytest.raises(SlackRefused, match="channel_not_found"):
        await chat.channel_id("#nope")


@pytest.mark.parametrize("how", ["429", "cut", "500"])
async def test_a_keyed_post_whose_answer_was_lost_is_not_retried(
    chat: SlackChat, slack_sim: SlackSim, how: str
) -> None:
    started = time.time()
    slack_sim.lose_answers("chat.postMessage", how=how)
    with pytest.raises(TemporaryError):
        await chat.post("C0PAYDEPLOY", text="card", key="payments/pr@42")
    assert len(slack_sim.calls_to("chat.postMessage")) == 1
    found = await chat.find_post("C0PAYDEPLOY", "payments/pr@42", since=started)
    assert found is not None
    assert [m["ts"] for m in slack_sim.messages("C0PAYDEPLOY")] == [found.ts]


async def test_without_a_key_a_lost_answer_is_retried_blindly(
    chat: SlackChat, slack_sim: SlackSim
) -> None:
    """Why posts that matter carry a key: the client's own retry of a delivered post."""
    slack_sim.lose_answers("chat.postMessage", how="429")
    await chat.post("C0PAYDEPLOY", text="notice")
    assert [m["text"] for m in slack_sim.messages("C0PAYDEPLOY")] == ["notice", "notice"]
