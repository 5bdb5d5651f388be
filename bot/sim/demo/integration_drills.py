"""The drills of the other integrations: Jira tickets, PagerDuty workflows, LaunchDarkly.

* ``release-cleanup``: ``/release start`` files the three cleanup tickets once; at full
  rollout their due dates move from provisional to the real ones;
* ``pagerduty-workflow``: a bad canary opens a PagerDuty incident; the on-call's workflow
  aborts the Rollout; the note reaches PagerDuty, the incident is acknowledged, and it
  resolves when the card's incident does;
* ``checkout-circuit``: the demo's second service, fully rolled out, gets an SLO alert;
  Tier 2 (the LaunchDarkly circuit flag) is recommended, executed and verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from bot.sim import alerts as sim_alerts
from bot.sim import world as sim_world
from bot.sim.demo.drill import Drill, audit_entry
from bot.sim.demo.scenario import CHECKOUT_ALERT, flag_settings
from bot.sim.harness import ALERTMANAGER_TOKEN, ONCALL, SimWorld
from bot.sim.launchdarkly import LaunchDarklySim

__all__ = ["drill_checkout_circuit", "drill_pagerduty_workflow", "drill_release_cleanup"]


async def drill_release_cleanup(drill: Drill, *, speed: float, timeout: float) -> str:
    """A release starts; its three cleanup tickets are filed once; the Rollout reaches
    100 %; the due dates move from provisional to the real ones (Jira and the thread)."""
    from datetime import timedelta

    async with SimWorld(speed=speed, analysis_at_25="Successful", jira=True) as world:
        drill.mark("world up (Kubernetes, Argo, Slack and Jira sims; rollbot)")
        response = await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "start payment-router 1.13.0", command="/release"
        ).send()
        drill.mark(f"/release start payment-router 1.13.0 acked (HTTP {response.status_code})")
        drill.check(response.status_code == 200, f"command answered {response.status_code}")
        await world.wait_for(
            lambda: world.jira.created_count >= 3, timeout=timeout, what="three Jira tickets"
        )
        store = world.rollbot.store
        rid = "payment-router@1.13.0"
        records = await store.tickets(rid)
        deadline = time.monotonic() + timeout
        while not (records and all(r.key for r in records)) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            records = await store.tickets(rid)
        filed = sorted(f"{r.key} due {r.due} (provisional)" for r in records)
        drill.mark("tickets filed: " + ", ".join(filed))

        async def fully_rolled_out() -> Any:
            release = await store.get_release(rid)
            return release if release and release.full_rollout_at else None

        release = None
        deadline = time.monotonic() + timeout
        while release is None and time.monotonic() < deadline:
            release = await fully_rolled_out()
            await asyncio.sleep(0.05)
        if not drill.check(release is not None, "the Rollout was not seen fully promoted"):
            return "no full rollout"
        assert release is not None
        drill.mark(f"Rollout fully promoted (revision {release.revision}); rollbot saw it")
        real = release.full_rollout_at.date() if release.full_rollout_at else None
        assert real is not None
        wanted = {
            "remove-release-flag": real + timedelta(days=30),
            "contract-migration": real + timedelta(days=14),
            "delete-legacy-code": real + timedelta(days=30),
        }

        def jira_dates() -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            for issue in world.jira.issues.values():
                for label in issue["fields"]["labels"]:
                    kind = label.removeprefix("rollbot-payment-router-1.13.0-")
                    if kind in wanted:
                        out[kind] = issue["fields"]["duedate"]
            return out

        with contextlib.suppress(TimeoutError):
            await world.wait_for(
                lambda: jira_dates() == {k: v.isoformat() for k, v in wanted.items()},
                timeout=timeout,
                what="the real due dates in Jira",
            )
        moved = jira_dates()
        drill.check(
            moved == {k: v.isoformat() for k, v in wanted.items()},
            f"Jira due dates {moved}, expected {wanted}",
        )
        drill.mark(
            "due dates moved to the real ones: " + ", ".join(f"{k} {v}" for k, v in moved.items())
        )
        drill.check(
            world.jira.created_count == 3,
            f"{world.jira.created_count} tickets in Jira, expected exactly 3",
        )
        audited = [
            r.entry for r in await store.audit_entries() if r.entry.action == "release.ticket.file"
        ]
        drill.check(len(audited) == 3, f"{len(audited)} filing audit entries, expected 3")
        chain = await store.verify_audit()
        drill.check(chain.ok, f"audit chain broken: {chain.reason}")
    return f"3 tickets filed once · due dates real after full rollout ({real})"


async def drill_pagerduty_workflow(drill: Drill, *, speed: float, timeout: float) -> str:
    """A bad canary opens a PagerDuty incident with the runbook link; a signed workflow
    webhook from the on-call user aborts the Rollout; the note and the acknowledgement
    reach PagerDuty, and the resolve once the card's incident resolves."""
    from bot.sim.harness import PD_ONCALL

    key = "rollbot/payment-router/payments/payment-router@42"
    async with SimWorld(speed=speed, pagerduty=True) as world:
        drill.mark("world up (Kubernetes, Argo, Slack and PagerDuty sims; rollbot)")
        await world.wait_for_card(timeout=timeout)
        drill.mark("card posted (canary paused on an inconclusive analysis)")
        incident = await world.wait_for(
            lambda: world.pd.incident_by_key(key), timeout=timeout, what="the PagerDuty incident"
        )
        trigger = next(e for e in world.pd.events() if e.get("event_action") == "trigger")
        links = [link.get("href", "") for link in trigger.get("links") or []]
        drill.mark(f"PagerDuty incident {incident['id']} triggered: {incident['title'][:80]}")
        drill.check(
            any("/runbooks/payment-router" in href for href in links),
            f"no runbook link on the PagerDuty event (links: {links})",
        )
        delivery = world.pd.run_workflow(incident["id"], "Rollback Tier 1: abort", PD_ONCALL)
        done = await asyncio.to_thread(delivery.wait, timeout)
        drill.mark(f"workflow 'Rollback Tier 1: abort' by the on-call user: HTTP {done.status}")
        drill.check(done.status == 202, f"rollbot answered the workflow {done.status}")
        signed = "X-PagerDuty-Signature" not in done.headers  # workflows carry a bearer
        drill.check(signed, "workflow request unexpectedly signed")

        def aborted() -> bool:
            ro = world.kube.get("rollouts", "payments", "payment-router") or {}
            return bool((ro.get("status") or {}).get("abort"))

        with contextlib.suppress(TimeoutError):
            await world.wait_for(aborted, timeout=timeout, what="the abort")
        if drill.check(aborted(), "the Rollout was not aborted"):
            drill.mark("Rollout aborted in the cluster (traffic back on stable)")
        with contextlib.suppress(TimeoutError):
            await world.wait_for(
                lambda: any("succeeded" in n["content"] for n in world.pd.notes(incident["id"])),
                timeout=timeout,
                what="the note",
            )
        notes = [n["content"] for n in world.pd.notes(incident["id"])]
        if drill.check(any("succeeded" in n for n in notes), f"no result note ({notes})"):
            drill.mark("note on the incident: " + next(n for n in notes if "succeeded" in n)[:90])

        def acked() -> bool:
            return any(e.get("event_action") == "acknowledge" for e in world.pd.events())

        with contextlib.suppress(TimeoutError):
            await world.wait_for(acked, timeout=timeout, what="the acknowledgement")
        if drill.check(acked(), "the verified abort did not acknowledge the incident"):
            drill.mark("PagerDuty incident acknowledged by the verified abort")
        with contextlib.suppress(TimeoutError):
            await world.wait_for(
                lambda: world.pd.incident(incident["id"])["status"] == "resolved",
                timeout=timeout,
                what="the resolve",
            )
        status = world.pd.incident(incident["id"])["status"]
        if drill.check(status == "resolved", f"PagerDuty incident is {status}"):
            drill.mark("PagerDuty incident resolved with the card's (quiet for the quiet period)")
        chain = await world.rollbot.store.verify_audit()
        drill.check(chain.ok, f"audit chain broken: {chain.reason}")
    return "incident opened, workflow abort verified, acknowledged, then resolved with the card"


async def drill_checkout_circuit(drill: Drill, *, speed: float, timeout: float) -> str:
    """The demo's second service: checkout is fully rolled out when its SLO alert fires;
    the card recommends Tier 2 (nothing to abort); the on-call opens the circuit from the
    card; the flag reads back on, the PagerDuty incident is acknowledged (the alert still
    fires, so it stays open), the audit chain holds."""
    from bot.sim.harness import PD_CHECKOUT_SERVICE

    circuit = sim_world.CHECKOUT_FLAGS["circuit"]
    with LaunchDarklySim() as ld:
        settings, env = flag_settings(ld)
        async with SimWorld(
            speed=speed, pagerduty=True, checkout=True, settings=settings, env=env
        ) as world:
            drill.mark("world up (checkout fully rolled out; LaunchDarkly and PagerDuty sims)")
            scenario = CHECKOUT_ALERT
            body = sim_alerts.webhook(
                [
                    sim_alerts.alert(
                        scenario.alertname,
                        service=scenario.service,
                        labels=dict(scenario.labels),
                        summary=scenario.summary,
                    )
                ]
            )
            response = await sim_alerts.send(
                f"{world.url}/webhooks/alertmanager", ALERTMANAGER_TOKEN, body
            )
            drill.mark(f"Alertmanager webhook for checkout delivered (HTTP {response.status_code})")
            drill.check(response.status_code == 200, f"webhook answered {response.status_code}")
            card = await world.wait_for(
                lambda: (c := world.card("checkout")) and world.button(c, "circuit_open") and c,
                timeout=timeout,
                what="the checkout card with Open circuit (Tier 2)",
            )
            text = json.dumps(card["blocks"], ensure_ascii=False)
            drill.check("Recommended: Tier 2" in text, "Tier 2 is not the recommendation")
            drill.check(world.button(card, "rollout_abort") is None, "Abort offered with no canary")
            drill.mark("card posted: Tier 1 unavailable (fully promoted), Tier 2 recommended")
            incident = await world.wait_for(
                lambda: next(
                    (
                        i
                        for i in world.pd.incidents()
                        if (i.get("service") or {}).get("id") == PD_CHECKOUT_SERVICE
                    ),
                    None,
                ),
                timeout=timeout,
                what="checkout's PagerDuty incident",
            )
            drill.mark(f"PagerDuty incident {incident['id']} triggered on checkout's service")
            clicked = time.monotonic()
            await world.click(card, "circuit_open")
            await world.wait_for(
                lambda: ld.is_on("default", circuit), timeout=timeout, what="the flag on"
            )
            flipped = time.monotonic() - clicked
            drill.mark(f"@{ONCALL[1]} (on call) opened {circuit}: on in LaunchDarkly")

            record = await audit_entry(world, "circuit-open", ("succeeded",), timeout)
            if record is not None:
                drill.mark(f"audit entry {record.seq}: circuit-open succeeded (read back)")
            else:
                drill.check(False, "no succeeded circuit-open audit entry")
            with contextlib.suppress(TimeoutError):
                await world.wait_for(
                    lambda: world.pd.incident(incident["id"])["status"] == "acknowledged",
                    timeout=timeout,
                    what="the acknowledgement",
                )
            status = world.pd.incident(incident["id"])["status"]
            # The alert still fires (5xx at 9 %): acknowledged, not resolved, until it stops.
            if drill.check(status == "acknowledged", f"PagerDuty incident is {status}"):
                drill.mark("PagerDuty incident acknowledged (verified mitigation; alert firing)")
            chain = await world.rollbot.store.verify_audit()
            drill.check(chain.ok, f"audit chain broken: {chain.reason}")
    return f"Tier 2 recommended and executed on checkout · flag on {flipped:.2f} s after the click"
