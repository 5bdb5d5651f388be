"""The Slack sim (bot.sim.slack) driven by the real slack_sdk and slack_bolt.

Aspects under test:
- every Web API method rollbot uses answers the real AsyncWebClient with Slack's shapes:
  auth.test, chat.postMessage (channel names resolved, thread_ts), chat.update,
  chat.postEphemeral, views.open, users.info, usergroups.users.list, conversations.info;
- Slack's errors: not_authed, invalid_auth, channel_not_found, message_not_found,
  invalid_blocks — HTTP 200 with ok=false, raised by slack_sdk as SlackApiError;
- `set_token_valid(token, False)`: that token (only) gets invalid_auth from every method,
  auth.test included, until `set_token_valid(token, True)`;
- rate limits: a burst then HTTP 429 + Retry-After per channel; slack_sdk's
  AsyncRateLimitErrorRetryHandler obeys it; rate_limits=False never answers 429;
- recording: calls, calls_to, messages with edits and threads, wait_for with a deadline;
- SlackSender: its signatures pass slack_sdk's SignatureVerifier, forged and stale ones do
  not; a real Bolt AsyncApp served over HTTP accepts its slash commands and clicks, rejects
  forged ones with 401, and Bolt's respond() lands on the sim's response_url receiver;
- payload shapes carry the same keys as the real fixtures in tests/fixtures/slack.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import pytest
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import SlackSender, SlackSim
from tests.plugins.fixtures import load_fixture
from tests.plugins.slack import ServeBolt, seed_payments

CARD = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*payment-router* paused"}},
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "rollout_abort",
                "value": '{"e":1}',
                "text": {"type": "plain_text", "text": "Abort (Tier 1)"},
                "style": "danger",
            },
        ],
    },
]


@pytest.fixture
def client(slack_sim: SlackSim, bot_token: str) -> AsyncWebClient:
    return AsyncWebClient(token=bot_token, base_url=slack_sim.api_url)


async def test_auth_and_identity_methods(client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert auth["ok"] and auth["user_id"] == "U0ROLLBOT" and auth["team_id"] == "T0PAYMENTS"
    user = (await client.users_info(user="U0ONCALL"))["user"]
    assert user["name"] == "oncall-engineer"
    assert user["profile"]["email"] == "oncall@example.com"
    members = await client.usergroups_users_list(usergroup="S0PAYMENTS")
    assert members["users"] == ["U0ONCALL"]
    channel = (await client.conversations_info(channel="C0PAYDEPLOY"))["channel"]
    assert channel["name"] == "payments-deploys"


async def test_post_thread_update_and_history(client: AsyncWebClient, slack_sim: SlackSim) -> None:
    posted = await client.chat_postMessage(channel="#payments-deploys", text="card", blocks=CARD)
    assert posted["channel"] == "C0PAYDEPLOY"
    assert posted["message"]["text"] == "card"
    ts = posted["ts"]
    assert len(ts.split(".")[1]) == 6
    reply = await client.chat_postMessage(channel="C0PAYDEPLOY", text="abort sent", thread_ts=ts)
    updated = await client.chat_update(
        channel="C0PAYDEPLOY", ts=ts, text="card v2", blocks=CARD[:1]
    )
    assert updated["ts"] == ts and updated["text"] == "card v2"

    parent, child = slack_sim.messages("#payments-deploys")
    assert parent["ts"] == ts and parent["text"] == "card v2" and "edited" in parent
    assert parent["reply_count"] == 1 and parent["thread_ts"] == ts
    assert all(b.get("block_id") for b in parent["blocks"])  # Slack assigns block ids
    assert child["ts"] == reply["ts"] and child["thread_ts"] == ts
    assert slack_sim.thread("C0PAYDEPLOY", ts) == [child]
    assert [c.path for c in slack_sim.calls] == [
        "/api/chat.postMessage",
        "/api/chat.postMessage",
        "/api/chat.update",
    ]
    assert slack_sim.calls_to("chat.update")[0].body["ts"] == ts


async def test_ephemeral_and_views(client: AsyncWebClient, slack_sim: SlackSim) -> None:
    eph = await client.chat_postEphemeral(channel="C0PAYDEPLOY", user="U0OUTSIDER", text="no")
    assert eph["message_ts"]
    assert slack_sim.ephemerals[0]["user"] == "U0OUTSIDER"
    trigger = slack_sim.mint_trigger_id()
    view = {
        "type": "modal",
        "callback_id": "confirm",
        "title": {"type": "plain_text", "text": "Confirm"},
        "blocks": CARD[:1],
    }
    opened = await client.views_open(trigger_id=trigger, view=view)
    assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "confirm"
    slack_sim.trigger_ttl = 0.0
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=slack_sim.mint_trigger_id(), view=view)
    assert err.value.response["error"] == "expired_trigger_id"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.chat_postMessage(channel="#nope", text="x"), "channel_not_found"),
        (
            lambda c: c.chat_update(channel="C0PAYDEPLOY", ts="1.000001", text="x"),
            "message_not_found",
        ),
        (lambda c: c.users_info(user="U0NOBODY"), "user_not_found"),
        (lambda c: c.conversations_info(channel="C0NOPE"), "channel_not_found"),
        (lambda c: c.usergroups_users_list(usergroup="S0NOPE"), "no_such_subteam"),
        (
            lambda c: c.chat_postMessage(
                channel="C0PAYDEPLOY", text="x", blocks=[{"type": "divider"}] * 51
            ),
            "invalid_blocks",
        ),
    ],
)
async def test_slack_errors(client: AsyncWebClient, call: Any, error: str) -> None:
    with pytest.raises(SlackApiError) as err:
        await call(client)
    assert err.value.response.status_code == 200
    assert err.value.response["ok"] is False
    assert err.value.response["error"] == error


async def test_auth_is_required(slack_sim: SlackSim) -> None:
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(base_url=slack_sim.api_url).auth_test()
    assert err.value.response["error"] == "not_authed"
    slack_sim.token = "xoxb-the-only-good-one"
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(token="xoxb-wrong-one-123", base_url=slack_sim.api_url).auth_test()
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "invalid_auth"
    good = AsyncWebClient(token="xoxb-the-only-good-one", base_url=slack_sim.api_url)
    assert (await good.auth_test())["ok"]


async def test_a_token_turned_invalid_is_refused_everywhere(
    slack_sim: SlackSim, client: AsyncWebClient, bot_token: str
) -> None:
    assert (await client.auth_test())["ok"]
    slack_sim.set_token_valid(bot_token, False)
    for call in (client.auth_test(), client.chat_postMessage(channel="C0PAYDEPLOY", text="x")):
        with pytest.raises(SlackApiError) as err:
            await call
        assert err.value.response.status_code == 200
        assert err.value.response.data == {"ok": False, "error": "invalid_auth"}
    other = AsyncWebClient(token="xoxb-another-token-456", base_url=slack_sim.api_url)
    assert (await other.auth_test())["ok"]  # only that token
    slack_sim.set_token_valid(bot_token, True)
    assert (await client.auth_test())["ok"]
    assert bot_token not in json.dumps([c.body for c in slack_sim.calls])


async def test_ratelimit_429_with_retry_after_per_channel(bot_token: str) -> None:
    with SlackSim(post_burst=2) as sim:
        seed_payments(sim)
        sim.add_channel("C0OTHER", "other")
        client = AsyncWebClient(token=bot_token, base_url=sim.api_url)
        for _ in range(2):
            await client.chat_postMessage(channel="C0PAYDEPLOY", text="burst")
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C0PAYDEPLOY", text="one too many")
        assert err.value.response.status_code == 429
        assert err.value.response["error"] == "ratelimited"
        assert int(err.value.response.headers["Retry-After"]) >= 1
        await client.chat_postMessage(channel="C0OTHER", text="another channel is fine")

        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        started = time.monotonic()
        await client.chat_postMessage(channel="C0PAYDEPLOY", text="waits, then goes")
        assert time.monotonic() - started >= 1.0
        statuses = [c.status for c in sim.calls_to("chat.postMessage")]
        assert statuses[:3] == [200, 200, 429]
        assert statuses[-1] == 200 and 429 in statuses[4:]
        assert [m["text"] for m in sim.messages("C0PAYDEPLOY")] == [
            "burst",
            "burst",
            "waits, then goes",
        ]


async def test_no_ratelimits_for_benchmarks(bot_token: str) -> None:
    with SlackSim(rate_limits=False) as sim:
        seed_payments(sim)
        client = AsyncWebClient(token=bot_token, base_url=sim.api_url)
        await asyncio.gather(
            *(client.chat_postMessage(channel="C0PAYDEPLOY", text=str(i)) for i in range(20))
        )
        assert len(sim.messages("C0PAYDEPLOY")) == 20


async def test_wait_for_polls_with_a_deadline(client: AsyncWebClient, slack_sim: SlackSim) -> None:
    task = asyncio.create_task(client.chat_postMessage(channel="C0PAYDEPLOY", text="later"))
    found = await slack_sim.wait_for(lambda: slack_sim.messages("C0PAYDEPLOY"), timeout=5)
    assert found[0]["text"] == "later"
    await task
    with pytest.raises(TimeoutError):
        await slack_sim.wait_for(lambda: slack_sim.calls_to("views.open"), timeout=0.05)


# ── SlackSender ─────────────────────────────────────────────────────────────


def test_signatures_checked_by_slack_sdk(signing_secret: str) -> None:
    sender = SlackSender("http://unused/slack/events", signing_secret)
    verifier = SignatureVerifier(signing_secret)
    good = sender.slash_command("U0ONCALL", "oncall-engineer", "payment-router abort")
    assert verifier.is_valid_request(good.body, good.headers)
    forged = sender.slash_command("U0ONCALL", "x", "payment-router abort", bad_signature=True)
    assert not verifier.is_valid_request(forged.body, forged.headers)
    stale = sender.click(
        "U0ONCALL",
        "rollout_abort",
        "{}",
        message={"ts": "1.2", "blocks": []},
        timestamp=int(time.time()) - 600,
    )
    assert stale.headers["X-Slack-Signature"] == sender.sign(
        stale.body, int(stale.headers["X-Slack-Request-Timestamp"])
    )
    assert not verifier.is_valid_request(stale.body, stale.headers)
    retried = sender.slash_command("U0ONCALL", "o", "x", retry_num=1, retry_reason="http_timeout")
    assert retried.headers["X-Slack-Retry-Num"] == "1"
    assert retried.headers["X-Slack-Retry-Reason"] == "http_timeout"


def test_payload_shapes_match_the_fixtures(slack_sim: SlackSim, signing_secret: str) -> None:
    sender = SlackSender("http://unused", signing_secret, sim=slack_sim)
    text = load_fixture("slack/bolt-python.slash_command.form-urlencoded.txt").strip()
    fixture = dict(parse_qsl(text, keep_blank_values=True))
    request = sender.slash_command("U0ONCALL", "oncall-engineer", "payment-router")
    slash = dict(parse_qsl(request.body, keep_blank_values=True))
    assert set(fixture) <= set(slash)
    assert slash["command"] == "/rollback" and slash["channel_name"] == "payments-deploys"
    assert slash["response_url"].startswith(slack_sim.url + "/response_url/")

    real = load_fixture("slack/bolt-python.block_actions_with_message.json")
    message = {**real["message"], "blocks": [dict(b, block_id="abc") for b in CARD]}
    click = sender.click("U0ONCALL", "rollout_abort", '{"e":1}', message=message)
    payload = json.loads(parse_qs(click.body)["payload"][0])
    assert set(real) <= set(payload)
    assert set(real["container"]) == set(payload["container"])
    assert set(real["actions"][0]) <= set(payload["actions"][0])
    assert payload["actions"][0]["block_id"] == "abc"  # found in the clicked message
    assert payload["actions"][0]["text"]["text"] == "Abort (Tier 1)"
    assert payload["container"]["message_ts"] == message["ts"]
    assert payload["container"]["is_ephemeral"] is False and payload["message"] == message

    # A click on an ephemeral message (a response_url body): no `message`, is_ephemeral.
    ephemeral = load_fixture("slack/bolt-python.block_actions.json")
    body = {"response_type": "ephemeral", "text": "refused", "blocks": CARD}
    click = sender.click("U0ONCALL", "rollout_abort", '{"e":1}', message=body)
    payload = json.loads(parse_qs(click.body)["payload"][0])
    assert "message" not in payload and "message" not in ephemeral
    assert set(ephemeral) <= set(payload)
    assert payload["container"]["is_ephemeral"] is True is ephemeral["container"]["is_ephemeral"]
    assert payload["container"]["message_ts"]  # Slack gives ephemeral messages a ts too


async def test_sim_messages_have_the_fixture_message_keys(client: AsyncWebClient) -> None:
    real = load_fixture("slack/bolt-python.block_actions_with_message.json")["message"]
    posted = await client.chat_postMessage(channel="C0PAYDEPLOY", text="x", blocks=CARD)
    assert set(real) <= set(posted["message"])


@pytest.fixture
async def bolt_app(
    slack_sim: SlackSim, bot_token: str, signing_secret: str, serve_bolt: ServeBolt
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real Bolt AsyncApp on Starlette + uvicorn, recording what its listeners got."""
    app = AsyncApp(
        client=AsyncWebClient(token=bot_token, base_url=slack_sim.api_url),
        signing_secret=signing_secret,
    )
    seen: list[dict[str, Any]] = []

    @app.command("/rollback")
    async def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        seen.append(command)
        await respond(text=f"status of {command['text']}", response_type="ephemeral")

    @app.action("rollout_abort")
    async def on_abort(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        seen.append(body)
        await respond(text="aborted", replace_original=True)

    yield await serve_bolt(app), seen


async def test_bolt_accepts_sender_requests(
    bolt_app: tuple[str, list[dict[str, Any]]],
    slack_sim: SlackSim,
    signing_secret: str,
    client: AsyncWebClient,
) -> None:
    url, seen = bolt_app
    sender = SlackSender(url, signing_secret, sim=slack_sim)

    response = await sender.slash_command("U0ONCALL", "oncall-engineer", "payment-router").send()
    assert response.status_code == 200
    assert seen[0]["user_id"] == "U0ONCALL" and seen[0]["text"] == "payment-router"
    recorded = await slack_sim.wait_for(lambda: slack_sim.responses)
    assert recorded[0].body["text"] == "status of payment-router"
    assert recorded[0].body["response_type"] == "ephemeral"

    posted = await client.chat_postMessage(channel="C0PAYDEPLOY", text="card", blocks=CARD)
    message = slack_sim.message("C0PAYDEPLOY", posted["ts"])
    assert message is not None
    response = await sender.click(
        "U0ONCALL", "rollout_abort", '{"e":1}', message=message, channel_id="C0PAYDEPLOY"
    ).send()
    assert response.status_code == 200
    assert seen[1]["actions"][0]["value"] == '{"e":1}'
    assert seen[1]["container"]["message_ts"] == posted["ts"]
    # respond(replace_original=True) replaces the clicked message, as Slack does
    await slack_sim.wait_for(
        lambda: (slack_sim.message("C0PAYDEPLOY", posted["ts"]) or {}).get("text") == "aborted"
    )

    forged = await sender.slash_command(
        "U0ONCALL", "x", "payment-router", bad_signature=True
    ).send()
    stale = await sender.click(
        "U0ONCALL", "rollout_abort", "{}", message=message, timestamp=int(time.time()) - 600
    ).send()
    assert (forged.status_code, stale.status_code) == (401, 401)
    assert len(seen) == 2
