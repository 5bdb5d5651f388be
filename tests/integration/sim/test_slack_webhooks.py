"""The Slack sim's incoming webhooks (bot.sim.slack.webhooks), driven by slack_sdk's
AsyncWebhookClient, raw HTTP and a real Alertmanager 0.25.

Aspects under test (https://api.slack.com/messaging/webhooks and Slack's changelog of
2016-05-17 on webhook errors):
- a message posted to a webhook URL lands in the channel the URL is bound to, answered
  HTTP 200 with the plain-text body `ok`; `channel`, `username` and `icon_emoji` in the body
  do not move it (an app's webhook posts where it was installed);
- text, blocks or legacy attachments alone are each a message; the JSON may also come in a
  form's `payload` field;
- Slack's errors, in plain text with their HTTP status: invalid_payload (400), no text,
  blocks or attachments (400 missing_text_or_fallback_or_attachments), invalid_blocks
  (400), the wrong secret (403 invalid_token), an unknown webhook (404 no_service), an
  unknown workspace (404 no_team); nothing is posted;
- rate limits: posts share the channel's chat.postMessage bucket (429 rate_limited with
  Retry-After, for the webhook and chat.postMessage alike); rate_limits=False never 429s;
- recording: `webhook_calls` lists every post (refused ones too) without the URL's secret;
- Alertmanager's own Slack receiver (`slack_configs` with `api_url` set to a webhook URL)
  posts its notification there, and takes the sim's `ok` as delivered.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.sim.slack import SlackSim
from tests.plugins.prometheus import alertmanager_route
from tests.plugins.slack import seed_payments

CHANNEL = "C0PAYDEPLOY"


async def test_a_post_lands_in_the_webhooks_channel(slack_sim: SlackSim) -> None:
    slack_sim.add_channel("C0OTHER", "other")
    url = slack_sim.incoming_webhook("#payments-deploys")
    hook = AsyncWebhookClient(url)

    response = await hook.send_dict(
        {"text": "deploy started", "channel": "#other", "username": "x", "icon_emoji": ":x:"}
    )
    assert (response.status_code, response.body) == (200, "ok")
    [message] = slack_sim.messages(CHANNEL)
    assert message["text"] == "deploy started"
    assert slack_sim.messages("C0OTHER") == []

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*blocks*"}}]
    assert (await hook.send(blocks=blocks)).body == "ok"
    attachments = [{"title": "[FIRING:2] HighErrorRate", "text": "", "fallback": "f"}]
    assert (await hook.send(attachments=attachments)).body == "ok"
    async with httpx.AsyncClient() as client:
        form = await client.post(url, data={"payload": json.dumps({"text": "from a form"})})
    assert (form.status_code, form.text) == (200, "ok")

    posted = slack_sim.messages(CHANNEL)
    assert [m["text"] for m in posted] == ["deploy started", "", "", "from a form"]
    assert posted[1]["blocks"][0]["text"]["text"] == "*blocks*"
    assert posted[2]["attachments"][0]["title"] == "[FIRING:2] HighErrorRate"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"{not json", "application/json", 400, "invalid_payload"),
        (b'["a list"]', "application/json", 400, "invalid_payload"),
        (b"{}", "application/json", 400, "missing_text_or_fallback_or_attachments"),
        (b'{"text": ""}', "application/json", 400, "missing_text_or_fallback_or_attachments"),
        (
            b'{"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "*x*"}}]}',
            "application/json",
            400,
            "invalid_blocks",
        ),
        (b"payload=%7B%7D", "application/x-www-form-urlencoded", 400, "missing_text_or_"),
    ],
)
async def test_bad_bodies_are_refused_in_plain_text(
    slack_sim: SlackSim, body: bytes, content_type: str, status: int, error: str
) -> None:
    url = slack_sim.incoming_webhook(CHANNEL)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.text.startswith(error)
    assert not response.headers["content-type"].startswith("application/json")
    assert slack_sim.messages(CHANNEL) == []


async def test_unknown_or_wrong_urls_are_refused(slack_sim: SlackSim) -> None:
    url = slack_sim.incoming_webhook(CHANNEL)
    base, team, hook_id, secret = url.rsplit("/", 3)
    cases = {
        f"{base}/{team}/{hook_id}/{secret[:-2]}xx": (403, "invalid_token"),
        f"{base}/{team}/B0NOSUCHHOOK/{secret}": (404, "no_service"),
        f"{base}/T0OTHERTEAM/{hook_id}/{secret}": (404, "no_team"),
    }
    for wrong, expected in cases.items():
        response = await AsyncWebhookClient(wrong).send(text="hello")
        assert (response.status_code, response.body) == expected
    assert slack_sim.messages(CHANNEL) == []
    calls = slack_sim.webhook_calls
    assert [c.status for c in calls] == [403, 404, 404]
    assert all(secret not in c.path for c in calls)


async def test_posts_share_the_channels_rate_limit(bot_token: str) -> None:
    with SlackSim(post_burst=2) as sim:
        seed_payments(sim)
        hook = AsyncWebhookClient(sim.incoming_webhook(CHANNEL))
        web = AsyncWebClient(token=bot_token, base_url=sim.api_url)
        assert (await hook.send(text="one")).status_code == 200
        await web.chat_postMessage(channel=CHANNEL, text="two")
        refused = await hook.send(text="three")
        assert (refused.status_code, refused.body) == (429, "rate_limited")
        assert int(refused.headers["Retry-After"][0]) >= 1
        assert [m["text"] for m in sim.messages(CHANNEL)] == ["one", "two"]
        call = sim.webhook_calls[-1]
        assert call.status == 429 and call.body == {"text": "three"}
        url = sim.incoming_webhook(CHANNEL)
        assert url.rsplit("/", 1)[1] not in json.dumps([c.path for c in sim.calls])

    with SlackSim(post_burst=2, rate_limits=False) as sim:
        seed_payments(sim)
        hook = AsyncWebhookClient(sim.incoming_webhook(CHANNEL))
        for i in range(10):
            assert (await hook.send(text=str(i))).status_code == 200
        assert len(sim.messages(CHANNEL)) == 10


async def test_alertmanagers_slack_receiver_posts_through_a_webhook(
    slack_sim: SlackSim, alertmanager_peer
) -> None:
    url = slack_sim.incoming_webhook(CHANNEL)
    config = {
        "route": alertmanager_route("slack"),
        "receivers": [
            {
                "name": "slack",
                "slack_configs": [
                    {"api_url": url, "channel": "#somewhere-else", "send_resolved": True}
                ],
            }
        ],
    }
    am = alertmanager_peer(config=config)
    now = time.time()
    alert = {
        "labels": {"alertname": "HighErrorRate", "service": "ledger", "severity": "page"},
        "annotations": {"summary": "5xx above 2 %"},
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 240)),
    }
    async with httpx.AsyncClient() as client:
        sent = await client.post(f"{am.url}/api/v2/alerts", json=[alert])
    assert sent.status_code == 200

    [message] = await slack_sim.wait_for(lambda: slack_sim.messages(CHANNEL), timeout=30)
    [attachment] = message["attachments"]
    assert attachment["title"].startswith("[FIRING:1] HighErrorRate ledger")
    [call] = slack_sim.webhook_calls
    assert (call.status, call.response) == (200, "ok")
    assert call.content_type is not None and call.content_type.startswith("application/json")
