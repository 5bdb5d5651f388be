"""The webhooks under hostile requests (issue 12, findings 2, 3, 8, 10 and 11).

Aspects under test, against rollbot served by uvicorn with the PagerDuty, Slack and
Kubernetes sims:
- finding 3: a workflow request whose body claims the on-call's email for a PagerDuty user
  that does not exist, or for a real user whose email is another, runs nothing and is
  refused in a note; with no workflow secret configured, the webhook signing secret does
  not open the workflow path;
- finding 8: a signed delivery replayed with another, or without, ``X-Webhook-Id`` is a
  duplicate: the event id inside the signed body decides;
- findings 2 and 10: every endpoint refuses a ``Content-Length`` over its limit with 413
  before reading a byte of the body;
- finding 11: a signed, deeply nested PagerDuty body and an Alertmanager label holding a
  lone surrogate are answered 400, kept as poison in the inbox, counted in /metrics, told
  once in the fallback channel, and never retried.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from bot.core.signatures import pagerduty_signature
from bot.sim.harness import (
    ALERTMANAGER_TOKEN,
    CHANNEL_ID,
    PD_ONCALL,
    PD_STRANGER,
    PD_WEBHOOK_SECRET,
    PD_WORKFLOW_SECRET,
    SimWorld,
)
from bot.web.guard import LIMITS

pytestmark = pytest.mark.timeout(120)

KEY = "rollbot/payment-router/payments/payment-router@42"
FALLBACK = "C0FALLBACK"


async def _incident(world: SimWorld) -> dict[str, Any]:
    found = await world.wait_for(
        lambda: world.pd.incident_by_key(KEY), timeout=30, what="the PagerDuty incident"
    )
    assert isinstance(found, dict)
    return found


def _aborted(world: SimWorld) -> bool:
    rollout = world.kube.get("rollouts", "payments", "payment-router")
    assert rollout is not None
    return rollout["status"].get("abort") is True


def _workflow_body(incident: dict[str, Any], user: dict[str, str]) -> bytes:
    return json.dumps(
        {
            "action": "Rollback Tier 1: abort",
            "incident": {"id": incident["id"], "incident_key": KEY},
            "user": user,
        }
    ).encode()


async def test_a_workflow_body_cannot_claim_an_identity_pagerduty_does_not_confirm(tmp_path):
    async with SimWorld(speed=600, pagerduty=True, workdir=tmp_path) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        oncall_email = "oncall@example.com"  # PD_ONCALL's, as the harness seeds PagerDuty
        url = f"{world.url}/webhooks/pagerduty"
        bearer = {"Authorization": f"Bearer {PD_WORKFLOW_SECRET}"}
        async with httpx.AsyncClient(timeout=10) as client:
            ghost = _workflow_body(
                incident, {"id": "PGHOST1", "email": oncall_email, "name": "Mallory"}
            )
            assert (await client.post(url, content=ghost, headers=bearer)).status_code == 202
            impostor = _workflow_body(
                incident, {"id": PD_STRANGER, "email": oncall_email, "name": "Mallory"}
            )
            assert (await client.post(url, content=impostor, headers=bearer)).status_code == 202
        refusals = await world.wait_for(
            lambda: (
                (
                    notes := [
                        n for n in world.pd.notes(incident["id"]) if "did nothing" in n["content"]
                    ]
                )
                and len(notes) >= 2
                and notes
            ),
            what="two refusal notes",
        )
        text = " ".join(n["content"] for n in refusals)
        assert "PGHOST1" in text and "not the one PagerDuty has" in text
        # Both refusals are written only after the requests were fully handled (the notes
        # are the last step of each), so the Rollout is known to be untouched here.
        assert not _aborted(world)
        assert not [
            e for e in await world.rollbot.store.audit_entries() if e.entry.action == "abort"
        ]


async def test_no_workflow_secret_means_no_workflow_path(tmp_path):
    env = {"ROLLBOT_PAGERDUTY__WORKFLOW_SECRET": ""}
    async with SimWorld(speed=600, pagerduty=True, workdir=tmp_path, env=env) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        body = _workflow_body(incident, {"id": PD_ONCALL})
        async with httpx.AsyncClient(timeout=10) as client:
            for secret in (PD_WEBHOOK_SECRET, PD_WORKFLOW_SECRET):
                response = await client.post(
                    f"{world.url}/webhooks/pagerduty",
                    content=body,
                    headers={"Authorization": f"Bearer {secret}"},
                )
                assert response.status_code == 401
        assert not _aborted(world)


async def test_during_a_rotation_each_workflow_secret_is_accepted(tmp_path):
    """``new,old``: a workflow step can move to the new secret while rollbot still takes
    the old one; anything else stays refused."""
    env = {"ROLLBOT_PAGERDUTY__WORKFLOW_SECRET": f"rotated-secret,{PD_WORKFLOW_SECRET}"}
    async with SimWorld(speed=600, pagerduty=True, workdir=tmp_path, env=env) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        async with httpx.AsyncClient(timeout=10) as client:

            async def send(secret: str, who: str) -> int:
                response = await client.post(
                    f"{world.url}/webhooks/pagerduty",
                    content=_workflow_body(incident, {"id": who}),
                    headers={"Authorization": f"Bearer {secret}"},
                )
                return response.status_code

            assert await send("rotated-secret", PD_ONCALL) == 202
            assert await send(PD_WORKFLOW_SECRET, "PSOMEONE") == 202
            assert await send(f"rotated-secret,{PD_WORKFLOW_SECRET}", PD_ONCALL) == 401
            assert await send(PD_WEBHOOK_SECRET, PD_ONCALL) == 401


async def test_a_signed_delivery_replayed_under_another_webhook_id_is_a_duplicate(tmp_path):
    async with SimWorld(speed=600, pagerduty=True, workdir=tmp_path) as world:
        card = await world.wait_for_card()
        incident = await _incident(world)
        body = json.dumps(
            {
                "event": {
                    "id": "01EVENTREPLAY",
                    "event_type": "incident.annotated",
                    "agent": {"summary": "Pat"},
                    "data": {
                        "type": "incident_note",
                        "content": "replayed note",
                        "incident": {"id": incident["id"], "incident_key": KEY},
                    },
                }
            }
        ).encode()
        signature = {"X-PagerDuty-Signature": pagerduty_signature(PD_WEBHOOK_SECRET, body)}
        url = f"{world.url}/webhooks/pagerduty"
        async with httpx.AsyncClient(timeout=10) as client:
            first = await client.post(url, content=body, headers={**signature, "X-Webhook-Id": "a"})
            assert first.status_code == 202
            for webhook_id in ("b", "c", None):
                headers = dict(signature)
                if webhook_id is not None:
                    headers["X-Webhook-Id"] = webhook_id
                again = await client.post(url, content=body, headers=headers)
                assert again.status_code == 200 and again.json()["status"] == "duplicate"

        def lines() -> list[str]:
            return [m.get("text") or "" for m in world.slack.thread(CHANNEL_ID, card["ts"])]

        await world.wait_for(
            lambda: any("replayed note" in t for t in lines()), what="the note's thread line"
        )
        # The duplicates were refused before anything was stored, so nothing else can come.
        assert sum("replayed note" in t for t in lines()) == 1


@pytest.mark.parametrize("path", ["/slack/events", *LIMITS, "/healthz", "/nowhere"])
async def test_every_endpoint_refuses_an_oversized_body_before_reading_it(tmp_path, path):
    async with SimWorld(speed=600, pagerduty=True, workdir=tmp_path) as world:
        host, port = world.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        target = path.rstrip("/") + ("/payment-router" if path == "/runbooks/" else "")
        writer.write(
            f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n".encode()
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status.split()[1] == b"413", (path, status)


def _nested(depth: int) -> bytes:
    return b'{"event": ' + b'{"a": [' * depth + b"1" + b"]}" * depth + b"}"


async def test_unprocessable_authentic_bodies_are_400_and_kept_as_poison(tmp_path):
    settings = {"slack": {"fallback_channel": FALLBACK}}
    async with SimWorld(speed=600, pagerduty=True, workdir=tmp_path, settings=settings) as world:
        world.slack.add_channel(FALLBACK, "rollbot-ops")
        store = world.rollbot.store
        url = world.url
        deep = _nested(5000)
        surrogate = (
            b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", '
            b'"labels": {"alertname": "X\\ud800"}, "annotations": {}}]}'
        )
        async with httpx.AsyncClient(timeout=20) as client:
            for _ in range(2):  # the same body twice: kept twice, told once
                pd = await client.post(
                    f"{url}/webhooks/pagerduty",
                    content=deep,
                    headers={"X-PagerDuty-Signature": pagerduty_signature(PD_WEBHOOK_SECRET, deep)},
                )
                assert pd.status_code == 400, pd.text
                am = await client.post(
                    f"{url}/webhooks/alertmanager",
                    content=surrogate,
                    headers={"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"},
                )
                assert am.status_code == 400, am.text
                assert "surrogate" in am.json()["error"]
            metrics = (await client.get(f"{url}/metrics")).text
        assert 'rollbot_webhook_poison_total{source="pagerduty"} 2.0' in metrics
        assert 'rollbot_webhook_poison_total{source="alertmanager"} 2.0' in metrics
        assert await store.poison_count("pagerduty") == 2
        assert await store.poison_count("alertmanager") == 2
        assert await store.pending_webhooks() == []  # nothing left to replay
        told = await world.wait_for(
            lambda: (m := world.slack.messages(FALLBACK)) and len(m) >= 2 and m,
            what="the fallback channel notices",
        )
        # Each notice was posted before its request was answered; both are here.
        assert len(told) == 2
        assert all("will not be retried" in m["text"] for m in told)
        assert "alertname" not in json.dumps(told)  # why, never the body
