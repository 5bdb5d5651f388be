"""Defects a review of the issue-12 fixes found, each pinned (issue 12).

Aspects under test:
- the seen-requests record keeps each source's own window: a workflow request repeated
  after two minutes is new again, a Slack signature is still remembered, and one source's
  pruning never deletes another's;
- Bolt's "Unhandled request (…body…)" warning keeps its news and loses the body;
- the runbook page shows an incident's outside words (an alert's summary) as text, never
  as a link, and a quoted `[label](url)` in a responder message stays text;
- the poison notice escapes the parser's words, which may quote the body.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.sim.harness import ALERTMANAGER_TOKEN, SimWorld
from bot.slack.app import NoBodies
from bot.store import open_store
from bot.web import runbook_html as pages

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


async def test_each_source_keeps_its_own_window(store_url: str) -> None:
    now = [T0]
    store = await open_store(store_url, clock=lambda: now[0])
    try:
        slack, workflow = timedelta(minutes=10), timedelta(minutes=2)
        assert await store.first_seen("v0=sig", source="slack", forget_after=slack)
        assert await store.first_seen("wf:body", source="pagerduty-workflow", forget_after=workflow)
        assert not await store.first_seen(
            "wf:body", source="pagerduty-workflow", forget_after=workflow
        )
        now[0] += timedelta(minutes=2, seconds=1)
        # The workflow's window passed: the same action runs again (open, close, open) ...
        assert await store.first_seen("wf:body", source="pagerduty-workflow", forget_after=workflow)
        # ... and its pruning left Slack's signature alone: a replay is still refused.
        assert not await store.first_seen("v0=sig", source="slack", forget_after=slack)
        await store.forget_seen("v0=sig")
        assert await store.first_seen("v0=sig", source="slack", forget_after=slack)
    finally:
        await store.close()


@pytest.mark.parametrize(
    "message",
    [
        'Unhandled request ({"type": "block_actions", "text": "SECRET-TYPED-WORDS"})'
        "\n---\n[Suggestion]",
        "A global middleware (m) skipped calling either `next()` or `next_()` without providing "
        "a response for the request ({'text': 'SECRET-TYPED-WORDS'})",
    ],
)
def test_bolts_unhandled_request_warning_loses_the_body(message: str) -> None:
    record = logging.LogRecord(
        "slack_bolt.AsyncApp", logging.WARNING, __file__, 1, message, (), None
    )
    assert NoBodies().filter(record)
    assert "SECRET-TYPED-WORDS" not in record.getMessage()
    assert "no listener matched" in record.getMessage()


def test_quoted_markdown_links_in_a_responder_message_stay_text() -> None:
    html = str(pages.mrkdwn_html("The API said: [Confirm abort here](https://evil.example)"))
    assert "<a" not in html and "evil.example" in html


async def test_the_poison_notice_escapes_the_parsers_words(tmp_path) -> None:
    fallback = "C0FALLBACK"
    settings = {"slack": {"fallback_channel": fallback}}
    async with SimWorld(speed=600, workdir=tmp_path, settings=settings) as world:
        world.slack.add_channel(fallback, "rollbot-ops")
        body = json.dumps({"version": "<!channel>", "alerts": []}).encode()
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(
                f"{world.url}/webhooks/alertmanager",
                content=body,
                headers={"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"},
            )
        assert answer.status_code == 400
        # The notice is posted before the 400 is answered.
        (notice,) = world.slack.messages(fallback)
        assert "<!channel>" not in json.dumps(notice) and "&lt;!channel&gt;" in notice["text"]
