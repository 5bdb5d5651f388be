"""Issue 6 end to end: card → PagerDuty incident → workflow button → abort → note → resolve.

The PagerDuty sim (HTTPS, REST + Events API v2, signed v3 webhooks, Incident Workflows)
runs beside the Kubernetes, Argo and Slack sims; rollbot reaches it through the real
`pagerduty` client and receives its webhooks on `POST /webhooks/pagerduty`.

- the card opens a PagerDuty incident (dedup key per service and revision, summary,
  source, severity, evidence in custom_details); the card shows it;
- a "Rollback Tier 1: abort" workflow run by the on-call user aborts the Rollout through
  the responder (authorised as that person, found by email), a note with the verified
  result reaches the incident, which is acknowledged, and resolved only when the card's
  incident resolves (issue 14: PagerDuty and the card tell one story);
- opening the circuit acknowledges the incident and does not resolve it while the card's
  incident fires; shutting it again while it still fires pages again (a new incident,
  the old one resolved with a note saying why);
- acknowledged / annotated / escalated in PagerDuty show on the card and in its thread;
  rollbot's own acknowledge and resolve (back through the Events API) only on the card;
- bad signatures: 401, nothing done, counted in /metrics; a redelivery (same
  X-Webhook-Id) is processed once; unknown event types are accepted and ignored;
- a workflow from a PagerDuty user rollbot cannot map, or for an unknown service: a
  note on the incident saying why nothing was done, and nothing done;
- PagerDuty down when the card opens: the thread says so; the incident is opened once
  when it is back;
- a note whose answer is lost (PagerDuty made it, the client saw a 502) is not added a
  second time by the retry: the incident has it once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.core.signatures import pagerduty_signature
from bot.sim.harness import (
    CHANNEL_ID,
    ONCALL,
    PD_ONCALL,
    PD_STRANGER,
    PD_WEBHOOK_SECRET,
    SimWorld,
)
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)

KEY = "rollbot/payment-router/payments/payment-router@42"


def _rollout(world: SimWorld) -> dict[str, Any]:
    ro = world.kube.get("rollouts", "payments", "payment-router")
    assert ro is not None
    return ro


def _thread(world: SimWorld) -> list[str]:
    card = world.card()
    if card is None:
        return []
    return [m.get("text") or "" for m in world.slack.thread(CHANNEL_ID, card["ts"])]


async def _incident(world: SimWorld) -> dict[str, Any]:
    found = await world.wait_for(
        lambda: world.pd.incident_by_key(KEY), timeout=30, what="the PagerDuty incident"
    )
    assert isinstance(found, dict)
    return found


async def _outbox_drained(world: SimWorld) -> bool:
    """Every outbox item done (none due within a day): the last attempt of each, a retry
    included, has run to its end, and nothing is left to send."""
    return not await world.rollbot.store.due_outbox(datetime.now(UTC) + timedelta(days=1))


async def _run(world: SimWorld, incident_id: str, workflow: str, user: str) -> Any:
    delivery = world.pd.run_workflow(incident_id, workflow, user)
    return await asyncio.to_thread(delivery.wait, 15)


async def test_card_incident_workflow_abort_note_resolve() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        assert incident["status"] == "triggered"
        assert incident["service"]["id"] == "PSVC123"
        assert "payment-router canary revision 42" in incident["title"]
        trigger = next(e for e in world.pd.events() if e["event_action"] == "trigger")
        assert trigger["dedup_key"] == KEY
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["source"] == "payments/payment-router"
        details = trigger["payload"]["custom_details"]
        assert details["revision"] == 42 and details["canary_weight"] == 25
        assert details["signals"], "the incident's evidence travels with the page"
        await world.wait_for(
            lambda: ":pager:" in json.dumps((world.card() or {}).get("blocks")),
            what="the card showing the PagerDuty incident",
        )

        delivery = await _run(world, incident["id"], "Rollback Tier 1: abort", PD_ONCALL)
        assert delivery.status == 202
        await world.wait_for(
            lambda: _rollout(world)["status"].get("abort") is True, what="the abort"
        )
        notes = await world.wait_for(
            lambda: [n for n in world.pd.notes(incident["id"]) if "abort by" in n["content"]],
            what="the note with the verified result",
        )
        note = notes[0]["content"]
        assert "On-call Engineer (via PagerDuty): succeeded" in note
        assert "status.abort=true ✓" in note
        assert notes[0]["user"]["summary"] == "rollbot"  # written as rollbot (From)
        # The verified abort acknowledges the incident; it resolves when the card's incident
        # does (the aborted Rollout stops firing; quiet for the quiet period).
        await world.wait_for(
            lambda: world.pd.incident(incident["id"])["status"] == "resolved",
            what="the incident resolved once the card's incident resolved",
        )
        actions = [e["event_action"] for e in world.pd.events() if e["dedup_key"] == KEY]
        assert actions == ["trigger", "acknowledge", "resolve"], actions
        card_incident = world.rollbot.incidents.incidents["payments/payment-router@42"]
        assert card_incident.state.value == "resolved"
        # The card shows PagerDuty resolved; the thread told it once: rollbot's own
        # acknowledge and resolve, back as webhooks, are not lines of their own (issue 14).
        await world.wait_for(
            lambda: "resolved by rollbot" in json.dumps(world.card()["blocks"]),
            what="the resolve on the card",
        )
        await world.wait_for(
            lambda: any("Resolved — nothing fired" in t for t in _thread(world)),
            what="the card's incident resolved, in the thread",
        )
        thread = _thread(world)
        assert sum("Aborted by <@U0ONCALL>: all traffic back on" in t for t in thread) == 1
        assert not [t for t in thread if "PagerDuty: acknowledged" in t or "PagerDuty: res" in t]
        audit = [r.entry for r in await world.rollbot.store.audit_entries()]
        aborts = [e for e in audit if e.action == "abort" and e.result == "succeeded"]
        assert len(aborts) == 1 and aborts[0].actor.startswith("pagerduty:U0ONCALL")
        # One incident for the revision, opened once.
        assert len([e for e in world.pd.events() if e["event_action"] == "trigger"]) == 1


async def test_acknowledged_annotated_escalated_reach_the_card_and_thread() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        world.pd.acknowledge(incident["id"], PD_ONCALL)
        await world.wait_for(
            lambda: "acknowledged by On-call Engineer" in json.dumps(world.card()["blocks"]),
            what="the card showing the acknowledgement",
        )
        await world.wait_for(
            lambda: any("PagerDuty: acknowledged by On-call Engineer" in t for t in _thread(world)),
            what="the acknowledgement in the thread",
        )
        world.pd.annotate(incident["id"], PD_ONCALL, "Looking at the p95 graph now")
        await world.wait_for(
            lambda: any("Looking at the p95 graph now" in t for t in _thread(world)),
            what="the note in the thread",
        )
        world.pd.escalate(incident["id"], PD_STRANGER, by_user_id=PD_ONCALL)
        await world.wait_for(
            lambda: any("PagerDuty: escalated" in t for t in _thread(world)),
            what="the escalation in the thread",
        )
        # rollbot's own notes are not echoed back into the thread.
        assert not any(t.startswith("PagerDuty note by rollbot") for t in _thread(world))
        # The responder who acknowledged got a signed runbook link, by Slack DM (the
        # incident's note only says so: tests/security/test_runbook_links.py).
        await world.wait_for(
            lambda: any(
                f"{world.url}/runbooks/payment-router?token=" in m["text"]
                for m in world.slack.direct_messages(ONCALL[0])
            ),
            what="the link DM'd to the acknowledger",
        )
        assert not any("token=" in n["content"] for n in world.pd.notes(incident["id"]))


async def test_acknowledge_from_slack_reaches_pagerduty() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        response = await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "payment-router ack"
        ).send()
        assert response.status_code == 200
        await world.wait_for(
            lambda: world.pd.incident(incident["id"])["status"] == "acknowledged",
            what="the incident acknowledged in PagerDuty",
        )
        await world.wait_for(
            lambda: any(
                "Acknowledged in Slack by" in n["content"] for n in world.pd.notes(incident["id"])
            ),
            what="the note saying who acknowledged in Slack",
        )
        await world.wait_for(
            lambda: "acknowledged" in json.dumps(world.card()["blocks"]),
            what="the card showing it",
        )


async def test_a_note_whose_answer_was_lost_is_not_added_twice() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        notes = f"/incidents/{incident['id']}/notes"
        world.pd.lose_answers(1, path=notes, method="POST")
        response = await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "payment-router ack"
        ).send()
        assert response.status_code == 200

        def acked() -> list[str]:
            return [
                n["content"]
                for n in world.pd.notes(incident["id"])
                if "Acknowledged in Slack by" in n["content"]
            ]

        await world.wait_for(acked, what="the note, made although its answer was lost")

        def posts() -> list[Any]:
            return [r for r in world.pd.requests_to(notes) if r.method == "POST"]

        # The sim stores the note before it records the request that made it, so wait for
        # the record too before reading it.
        await world.wait_for(posts, what="the note's POST recorded")
        assert [r.status for r in posts()] == [502]  # the client saw a failure
        # The retry reads the notes first and finds it: no second POST, one note.
        await world.wait_for(
            lambda: sum(1 for r in world.pd.requests_to(notes) if r.method == "GET") >= 2,
            timeout=30,
            what="the retry reading the incident's notes",
        )
        # The retry's outbox item is marked done once it has read the notes and decided:
        # after that nothing can POST the note again.
        await eventually(lambda: _outbox_drained(world), timeout=30, what="the outbox drained")
        assert len(acked()) == 1
        assert [r.status for r in posts()] == [502]


async def test_bad_signatures_duplicates_and_unknown_events() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        url = f"{world.url}/webhooks/pagerduty"
        body = json.dumps(
            {
                "event": {
                    "id": "01FORGED",
                    "event_type": "incident.resolved",
                    "resource_type": "incident",
                    "occurred_at": "2026-11-22T02:00:00Z",
                    "agent": {"id": PD_ONCALL, "summary": "Mallory", "type": "user_reference"},
                    "data": {"id": incident["id"], "type": "incident", "incident_key": KEY},
                }
            }
        ).encode()
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url,
                content=body,
                headers={"X-PagerDuty-Signature": pagerduty_signature("wrong", body)},
            )
            unsigned = await client.post(url, content=body)
            assert forged.status_code == unsigned.status_code == 401
            # a v3 signature on another body does not carry over
            other = await client.post(
                url,
                content=body + b" ",
                headers={"X-PagerDuty-Signature": pagerduty_signature(PD_WEBHOOK_SECRET, body)},
            )
            assert other.status_code == 401
            metrics = (await client.get(f"{world.url}/metrics")).text
            assert (
                'rollbot_http_requests_total{route="/webhooks/pagerduty",status="401"} 3.0'
                in metrics
            )

            unknown = json.dumps(
                {"event": {"id": "01X", "event_type": "service.updated", "data": {}}}
            ).encode()
            accepted = await client.post(
                url,
                content=unknown,
                headers={
                    "X-PagerDuty-Signature": pagerduty_signature(PD_WEBHOOK_SECRET, unknown),
                    "X-Webhook-Id": "delivery-unknown",
                },
            )
            assert accepted.status_code == 202
        assert not any("Mallory" in t for t in _thread(world))

        world.pd.annotate(incident["id"], PD_ONCALL, "once only")
        await world.wait_for(lambda: any("once only" in t for t in _thread(world)), what="the note")
        annotated = next(d for d in world.pd.deliveries() if d.event_type == "incident.annotated")
        again = await asyncio.to_thread(world.pd.redeliver(annotated.id).wait, 15)
        # 200 "duplicate" (same X-Webhook-Id), not 202 "accepted". No waiting: the route
        # answers a duplicate before anything is stored or started (only an accepted
        # delivery gets a background task), so nothing can still add a thread line.
        assert again.status == 200
        assert sum("once only" in t for t in _thread(world)) == 1


async def test_workflow_from_an_unmappable_user_or_unknown_service_is_refused_in_a_note() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        await world.wait_for_card()
        incident = await _incident(world)
        await _run(world, incident["id"], "Rollback Tier 1: abort", PD_STRANGER)
        refusal = await world.wait_for(
            lambda: [n for n in world.pd.notes(incident["id"]) if "did nothing" in n["content"]],
            what="the refusal note",
        )
        assert "no Slack account" in refusal[0]["content"]
        assert "contractor@elsewhere.example" in refusal[0]["content"]
        assert _rollout(world)["status"].get("abort") is not True

        # A workflow body naming a service rollbot does not know.
        hook = f"{world.url}/webhooks/pagerduty"
        world.pd.add_workflow(
            "Rollback Tier 1: abort (other team)",
            hook,
            headers={"Authorization": "Bearer demo-pagerduty-workflow-secret-not-for-production"},
            body={
                "action": "Rollback Tier 1: abort",
                "incident": {"id": "{{incident.id}}", "service_id": "PUNKNOWN"},
                "user": {"email": "{{current_user.email}}", "name": "{{current_user.name}}"},
            },
        )
        await _run(world, incident["id"], "Rollback Tier 1: abort (other team)", PD_ONCALL)
        unknown = await world.wait_for(
            lambda: [n for n in world.pd.notes(incident["id"]) if "catalog" in n["content"]],
            what="the unknown-service note",
        )
        assert "payment-router" in unknown[0]["content"]  # lists the known services
        assert _rollout(world)["status"].get("abort") is not True


async def test_pagerduty_down_when_the_card_opens_pages_once_when_back() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        world.pd.set_down(True, status=503)
        await world.wait_for_card()
        await world.wait_for(
            lambda: any("PagerDuty is unreachable" in t for t in _thread(world)),
            timeout=30,
            what="the thread saying PagerDuty is unreachable",
        )
        assert world.pd.incidents() == []
        world.pd.set_down(False)
        incident = await _incident(world)
        assert incident["incident_key"] == KEY
        # Every page is sent from the outbox: once it is drained (the trigger marked done,
        # no retry left), nothing can open a second incident or say "unreachable" again.
        await eventually(lambda: _outbox_drained(world), timeout=30, what="the outbox drained")
        assert len(world.pd.incidents()) == 1
        assert sum("PagerDuty is unreachable" in t for t in _thread(world)) == 1


async def test_slack_failing_on_the_card_does_not_lose_the_page() -> None:
    """Slack answering 500 to the card and to its first thread line: the incident is opened
    in PagerDuty all the same (the failed post used to skip the page, and the next refresh
    saw no change, so it was never sent)."""
    async with SimWorld(speed=600, pagerduty=True) as world:
        world.slack.force_status("chat.postMessage", status=500, times=2)
        incident = await _incident(world)
        assert incident["status"] == "triggered"
        statuses = [c.status for c in world.slack.calls_to("chat.postMessage")]
        assert statuses[:2] == [500, 500]


async def test_a_mitigation_acknowledges_and_undoing_it_while_firing_pages_again(
    tmp_path,
) -> None:
    from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim

    flag = "payments.new-router.circuit-open"
    with LaunchDarklySim() as ld:
        ld.add_flag("default", flag, on=False)
        ld.add_flag("default", "payments.new-router.enabled", on=True)
        settings = {
            "flags": {
                "provider": "launchdarkly",
                "url": ld.url,
                "project": "default",
                "environment": "production",
            }
        }
        async with SimWorld(
            speed=600,
            pagerduty=True,
            workdir=tmp_path,
            settings=settings,
            env={"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN},
        ) as world:
            incident = await _incident(world)
            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "circuit_open") and c,
                timeout=40,
                what="the card with the Tier 2 button",
            )
            await world.click(card, "circuit_open")
            await world.wait_for(
                lambda: world.pd.incident(incident["id"])["status"] == "acknowledged",
                what="the incident acknowledged by the verified flip",
            )
            await world.wait_for(
                lambda: [
                    n for n in world.pd.notes(incident["id"]) if "circuit-open by" in n["content"]
                ],
                what="the note with the flip's verified result",
            )
            # Positive evidence that nothing else is coming: the outbox has nothing left.
            await eventually(lambda: _outbox_drained(world), what="the outbox drained")
            assert world.pd.incident(incident["id"])["status"] == "acknowledged"
            assert (
                world.rollbot.incidents.incidents["payments/payment-router@42"].state.value
                == "open"
            )

            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "circuit_close") and c,
                what="the card offering to shut the breaker",
            )
            await world.click(card, "circuit_close")
            again = await world.wait_for(
                lambda: world.pd.incident_by_key(f"{KEY}#2"),
                what="a new PagerDuty incident for the same card",
            )
            assert again["status"] == "triggered" and again["id"] != incident["id"]
            assert "paged again: circuit-close by" in again["title"]
            await world.wait_for(
                lambda: world.pd.incident(incident["id"])["status"] == "resolved",
                what="the acknowledged incident resolved",
            )
            notes = [n["content"] for n in world.pd.notes(incident["id"])]
            assert any("undid the mitigation while signals still fire" in n for n in notes), notes
            triggers = [e for e in world.pd.events() if e["event_action"] == "trigger"]
            assert [e["dedup_key"] for e in triggers] == [KEY, f"{KEY}#2"]
