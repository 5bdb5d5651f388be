"""`rollbot demo` and `rollbot drill`: the simulated world, shown in the terminal.

The scenario follows the checkout case study: payment-router goes 10 → 25 → 50 → 100 % with
pauses and analysis on an accelerated clock. At 25 % the p95 latency analysis comes back
Inconclusive, the controller pauses the canary, and rollbot posts the card with
Abort (Tier 1). The demo prints every Slack message as readable text; press Enter (or pass
--auto-abort) to click Abort as the on-call engineer, through a signed request exactly as
Slack sends it. Unless --no-browser-ui, the demo also runs the PagerDuty, Jira and
LaunchDarkly sims and serves the workbench page (bot/sim/workbench.py) on --ui-port, with
one line `open http://127.0.0.1:PORT`; SIGINT/SIGTERM stop everything.
`rollbot drill tier1-abort` does the same headless and exits 0 only when the abort was
verified in the cluster and audited in an intact hash chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import Any, TextIO

from bot.blocks.terminal import render_text
from bot.sim import alerts as sim_alerts
from bot.sim import workbench
from bot.sim import world as sim_world
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, LEAD, ONCALL, USERGROUP, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN as LD_TOKEN
from bot.sim.launchdarkly import LaunchDarklySim
from bot.sim.pagerduty import PagerDutySim
from bot.sim.unleash import UnleashSim


class SlackPrinter:
    """Prints messages the Slack sim received, once each, and again when edited."""

    def __init__(self, world: SimWorld, out: TextIO) -> None:
        self.world = world
        self.out = out
        self.seen: dict[str, str] = {}

    def poll(self) -> None:
        for message in self.world.slack.messages(CHANNEL_ID):
            ts = message.get("ts", "")
            blocks = message.get("blocks") or []
            body = render_text(blocks) if blocks else message.get("text", "")
            if self.seen.get(ts) == body:
                continue
            edited = ts in self.seen
            self.seen[ts] = body
            thread = message.get("thread_ts") not in (None, ts)
            label = "thread reply" if thread else ("card updated" if edited else "new message")
            prefix = "    │ " if thread else "│ "
            print(f"\n┌─ #payments-deploys · {label} · ts {ts}", file=self.out)
            for line in body.splitlines() or [""]:
                print(prefix + line, file=self.out)
        self.out.flush()


async def _stdin_line() -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, sys.stdin.readline)


DEMO_FLAGS = (
    "payments.new-router.enabled",
    "payments.new-router.circuit-open",
    sim_world.CHECKOUT_FLAGS["release"],
    sim_world.CHECKOUT_FLAGS["circuit"],
)
#: The workbench's scenario button: checkout (fully rolled out) starts failing, so its card
#: recommends the circuit breaker (Tier 2), there being no canary to abort.
CHECKOUT_ALERT = workbench.AlertScenario(
    sim_world.CHECKOUT,
    "RollbotErrorRateHigh",
    "checkout: 5xx ratio 9 % on the new tax engine (SLO < 1 %)",
    (("slo", "error_rate"),),
)
DEFAULT_UI_PORT = 8088


def _flag_settings(ld: LaunchDarklySim) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings and environment that point the bot at the LaunchDarkly sim."""
    for key in DEMO_FLAGS:
        ld.add_flag("default", key, on=not key.endswith(".circuit-open"))
    settings = {
        "flags": {
            "provider": "launchdarkly",
            "url": ld.url,
            "project": "default",
            "environment": "production",
        }
    }
    return settings, {"ROLLBOT_FLAGS__API_TOKEN": LD_TOKEN}


async def run_demo(
    *,
    speed: float = 60.0,
    port: int = 0,
    auto_abort: bool = False,
    duration: float | None = None,
    out: TextIO = sys.stdout,
    ui: bool = True,
    ui_port: int = DEFAULT_UI_PORT,
) -> int:
    """The demo: the terminal printout and, with `ui`, the workbench page on `ui_port`.

    Returns 2 (with a message) when a port is taken; SIGINT/SIGTERM stop it cleanly."""
    ui_sock = None
    try:
        if port:
            workbench.bind(port, option="--port").close()
        if ui:
            ui_sock = workbench.bind(ui_port, option="--ui-port")
    except workbench.PortInUseError as err:
        print(f"rollbot demo: {err}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with contextlib.AsyncExitStack() as stack:
            options: dict[str, Any] = {}
            flag_sources: list[workbench.FlagSource] = []
            if ui:
                ld = stack.enter_context(LaunchDarklySim())
                settings, env = _flag_settings(ld)
                options = {
                    "pagerduty": True,
                    "jira": True,
                    "checkout": True,
                    "settings": settings,
                    "env": env,
                }
                flag_sources.append(
                    workbench.FlagSource(
                        "LaunchDarkly", DEMO_FLAGS, lambda key: ld.is_on("default", key)
                    )
                )
            world = await stack.enter_async_context(SimWorld(speed=speed, port=port, **options))
            if ui:
                # @payments-lead owns the services but is not on call: acting as them, the
                # circuit button is refused with "Break glass…" (a reason, loud, audited).
                world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
            url = None
            if ui_sock is not None:
                bench = workbench.Workbench(world, flags=flag_sources, alerts=[CHECKOUT_ALERT])
                url = await stack.enter_async_context(
                    workbench.serve_workbench(bench, sock=ui_sock)
                )
                ui_sock = None
            await _run_terminal(world, speed, auto_abort, duration, out, stop, url)
    finally:
        if ui_sock is not None:
            ui_sock.close()
        for sig in handled:
            loop.remove_signal_handler(sig)
    return 0


async def _run_terminal(
    world: SimWorld,
    speed: float,
    auto_abort: bool,
    duration: float | None,
    out: TextIO,
    stop: asyncio.Event,
    url: str | None,
) -> None:
    print(
        f"rollbot demo: bot at {world.url} · Kubernetes sim at {world.kube.url} · "
        f"Slack sim at {world.slack.url} · clock ×{speed:g}",
        file=out,
    )
    print(
        "payment-router: canary 1.13.0 (revision 42) over stable 1.12.4 (revision 41), "
        "steps 10 → 25 → 50 → 100 %",
        file=out,
    )
    if world.checkout:
        print(
            "checkout: revision 17 (2.4.0) fully rolled out; its new tax engine is behind "
            f"the circuit-breaker flag {sim_world.CHECKOUT_FLAGS['circuit']} (fire its SLO "
            "alert from the Scenarios panel)",
            file=out,
        )
    if url is not None:
        print(f"open {url}", file=out)
    out.flush()
    printer = SlackPrinter(world, out)
    started = time.monotonic()
    clicked = False
    interactive = sys.stdin is not None and sys.stdin.isatty() and not auto_abort and url is None
    enter: asyncio.Task[str] | None = None
    try:
        while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
            printer.poll()
            card = world.card()
            abort = card is not None and world.button(card, "rollout_abort") is not None
            if abort and not clicked:
                if auto_abort:
                    clicked = True
                    print(f"\n» clicking Abort (Tier 1) as @{ONCALL[1]}", file=out)
                    await world.click(card, "rollout_abort")  # type: ignore[arg-type]
                elif interactive and enter is None:
                    print(
                        f"\n» press Enter to click Abort (Tier 1) as @{ONCALL[1]} (Ctrl-C to quit)",
                        file=out,
                    )
                    enter = asyncio.create_task(_stdin_line())
            if enter is not None and enter.done() and not clicked and card is not None:
                clicked = True
                await world.click(card, "rollout_abort")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
    finally:
        if enter is not None:
            enter.cancel()
        printer.poll()
        if stop.is_set():
            print("\nrollbot demo: stopping", file=out)


class Drill:
    """A headless rehearsal: a timeline of what happened and the checks that failed."""

    def __init__(self, name: str, out: TextIO) -> None:
        self.name = name
        self.out = out
        self.t0 = time.monotonic()
        self.timeline: list[tuple[float, str]] = []
        self.failures: list[str] = []

    def mark(self, what: str) -> None:
        self.timeline.append((time.monotonic() - self.t0, what))

    def check(self, ok: bool, failure: str) -> bool:
        if not ok:
            self.failures.append(failure)
        return ok

    def finish(self, summary: str) -> int:
        for at, what in self.timeline:
            print(f"  {at:7.2f} s  {what}", file=self.out)
        total = time.monotonic() - self.t0
        if self.failures:
            print(
                f"drill {self.name}: FAIL · {summary} · " + "; ".join(self.failures), file=self.out
            )
            return 1
        print(f"drill {self.name}: PASS · {summary} · total {total:.1f} s", file=self.out)
        return 0


async def _audit_entry(
    world: SimWorld, action: str, results: tuple[str, ...], timeout: float
) -> Any:
    """The first audit record of `action` with one of `results`, waited for up to
    `timeout` s; None when none came."""
    deadline = time.monotonic() + timeout
    while True:
        for record in await world.rollbot.store.audit_entries():
            if record.entry.action == action and record.entry.result in results:
                return record
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.05)


async def _abort_and_verify(
    world: SimWorld, drill: Drill, card: dict[str, Any], timeout: float
) -> tuple[float, dict[str, Any]]:
    """Click Abort (Tier 1) on `card` as the on-call engineer; check the cluster, the audit
    log and the card. Returns (ack ms, the verification recorded in the audit entry)."""
    clicked = time.monotonic()
    response = await world.click(card, "rollout_abort")
    ack_ms = (time.monotonic() - clicked) * 1000
    drill.mark(f"click acked (HTTP {response.status_code})")
    drill.check(response.status_code == 200, f"click answered HTTP {response.status_code}")

    record = await _audit_entry(world, "abort", ("succeeded", "failed"), timeout)
    verification: dict[str, Any] = {}
    drill.check(record is not None, "no audit entry for the abort")
    if record is not None:
        drill.mark(f"audit entry {record.seq}: {record.entry.result}")
        verification = record.entry.detail.get("verification") or {}
        drill.check(
            record.entry.result == "succeeded",
            f"abort {record.entry.result}: {json.dumps(verification)}",
        )
    status = (world.kube.get("rollouts", "payments", "payment-router") or {}).get("status") or {}
    drill.check(
        status.get("abort") is True and status.get("phase") == "Degraded",
        f"cluster shows abort={status.get('abort')} phase={status.get('phase')}",
    )
    chain = await world.rollbot.store.verify_audit()
    drill.check(chain.ok, f"audit chain broken at {chain.first_bad_seq}: {chain.reason}")
    with contextlib.suppress(TimeoutError):
        await world.wait_for(
            lambda: "Aborted by" in json.dumps((world.card() or {}).get("blocks")),
            timeout=5,
            what="the card to show the outcome",
        )
    if drill.check(
        "Aborted by" in json.dumps((world.card() or {}).get("blocks")),
        "the card does not show who aborted",
    ):
        drill.mark("card shows the outcome")
    return ack_ms, verification


async def _drill_tier1_abort(drill: Drill, *, speed: float, timeout: float) -> str:
    async with SimWorld(speed=speed) as world:
        drill.mark("world up")
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=timeout,
            what="a card with Abort (Tier 1)",
        )
        drill.mark("card posted (canary paused on an inconclusive analysis)")
        ack_ms, verified = await _abort_and_verify(world, drill, card, timeout)
    return (
        f"ack {ack_ms:.0f} ms · abort verified in "
        f"{verified.get('seconds', float('nan')):.2f} s · audit chain checked"
    )


async def _drill_slo_alert(drill: Drill, *, speed: float, timeout: float) -> str:
    # Analyses pass: nothing but the SLO alert says the canary hurts customers.
    async with SimWorld(speed=min(speed, 20.0), analysis_at_25="Successful") as world:
        drill.mark("world up")
        await world.wait_for(
            lambda: (
                (world.kube.get("rollouts", "payments", "payment-router") or {})
                .get("status", {})
                .get("currentStepIndex", 0)
                >= 1
            ),
            timeout=timeout,
            what="the canary at 10 %",
        )
        drill.mark("canary at 10 %")
        drill.check(world.card() is None, "a card was posted before any signal")
        body = sim_alerts.webhook(
            [
                sim_alerts.alert(
                    "RollbotErrorRateHigh",
                    service="payment-router",
                    labels={"version": "canary", "slo": "error_rate"},
                    summary="payment-router canary: 5xx ratio 31 % (SLO < 2 %)",
                )
            ]
        )
        response = await sim_alerts.send(
            f"{world.url}/webhooks/alertmanager", ALERTMANAGER_TOKEN, body
        )
        drill.mark(f"Alertmanager webhook delivered (HTTP {response.status_code})")
        drill.check(response.status_code == 200, f"webhook answered HTTP {response.status_code}")
        card = await world.wait_for(
            lambda: (c := world.card()) and "Incident open" in json.dumps(c["blocks"]) and c,
            timeout=timeout,
            what="the incident card",
        )
        text = json.dumps(card["blocks"], ensure_ascii=False)
        drill.mark("incident card posted")
        for tier in ("Tier 1", "Tier 2", "Tier 3"):
            drill.check(tier in text, f"the card does not offer {tier}")
        recommended = "Tier 1" if "Recommended: Tier 1" in text else None
        drill.check(
            recommended == "Tier 1", "Tier 1 is not the recommendation for a canary in progress"
        )
        drill.mark(f"recommended: {recommended}")
        ack_ms, verified = await _abort_and_verify(world, drill, card, timeout)
        tops = [
            m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m.get("ts"))
        ]
        drill.check(len(tops) == 1, f"{len(tops)} cards in the channel, expected one")
    return (
        f"one card, three tiers, recommended {recommended} executed · ack {ack_ms:.0f} ms"
        f" · abort verified in {verified.get('seconds', float('nan')):.2f} s"
    )


async def _drill_tier2_circuit(drill: Drill, *, speed: float, timeout: float) -> str:
    """On-call opens the circuit from the card; confirmed open and served to SDKs; a
    responder who is not on call is refused."""
    flag = "payments.new-router.circuit-open"
    paged = ("U0PAGED", "paged-engineer")
    with UnleashSim() as unleash, PagerDutySim() as pd:
        unleash.add_flag(flag)
        pd.add_user("PUSER1", "Paged Engineer", "paged@example.com")
        pd.add_escalation_policy("PESC123", "Payments")
        pd.set_oncall("PESC123", ["PUSER1"])
        settings = {
            "flags": {"provider": "unleash", "url": unleash.url},
            "pagerduty": {"api_url": pd.url, "ca_file": pd.ca_file},
            "services": {
                "payment-router": {
                    "pagerduty": {"service_id": "PSVC123", "escalation_policy_id": "PESC123"}
                }
            },
        }
        env = {
            "ROLLBOT_FLAGS__API_TOKEN": unleash.admin_token,
            "ROLLBOT_FLAGS__CLIENT_TOKEN": unleash.client_token,
            "ROLLBOT_PAGERDUTY__API_TOKEN": pd.token,
        }
        async with SimWorld(speed=speed, settings=settings, env=env) as world:
            world.slack.add_user(
                paged[0], paged[1], real_name="Paged Engineer", email="paged@example.com"
            )
            drill.mark("world up (Unleash and PagerDuty sims, paged-engineer on call)")
            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "circuit_open") and c,
                timeout=timeout,
                what="the card with Open circuit (Tier 2)",
            )
            drill.mark("card posted with Tier 2")

            def replies() -> str:
                return "\n".join(json.dumps(r.body) for r in world.slack.responses)

            await world.click(card, "circuit_open", user=ONCALL)  # owners group, not on call
            await world.wait_for(
                lambda: "may not" in replies(),
                timeout=timeout,
                what="the refusal of a responder not on call",
            )
            drill.check(not unleash.enabled(flag), "a responder not on call flipped the flag")
            drill.mark(f"@{ONCALL[1]} (owner, not on call) refused")

            clicked = time.monotonic()
            await world.click(card, "circuit_open", user=paged)
            await world.wait_for(
                lambda: "Opened the circuit" in replies(),
                timeout=timeout,
                what="the on-call's flip confirmed",
            )
            confirmed = time.monotonic() - clicked
            drill.mark(f"@{paged[1]} (on call) opened the circuit, read back on")
            drill.check(unleash.enabled(flag), "the flag does not read back on")
            line = await world.wait_for(
                lambda: next(
                    (
                        m["text"]
                        for m in world.slack.thread(CHANNEL_ID, card["ts"])
                        if "effective for SDKs after" in m["text"]
                    ),
                    None,
                ),
                timeout=timeout,
                what="SDKs served the flag on",
            )
            posted = time.monotonic() - clicked
            sdk = line.split("effective for SDKs after")[-1].strip()
            drill.mark(f"SDKs are served the flag on after {sdk} (thread line posted)")
            entries = [
                e.entry
                for e in await world.rollbot.store.audit_entries()
                if e.entry.action == "circuit-open"
            ]
            drill.check(
                [e.result for e in entries] == ["refused", "succeeded"],
                f"audit shows {[e.result for e in entries]}",
            )
            chain = await world.rollbot.store.verify_audit()
            drill.check(chain.ok, f"audit chain broken at {chain.first_bad_seq}")
    return (
        f"refused the owner not on call · flip confirmed {confirmed:.2f} s after the click"
        f" · SDKs served it {sdk} after the flip (reported in the thread at {posted:.2f} s)"
        " · audit chain checked"
    )


async def _drill_release_cleanup(drill: Drill, *, speed: float, timeout: float) -> str:
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


async def _drill_pagerduty_workflow(drill: Drill, *, speed: float, timeout: float) -> str:
    """A bad canary opens a PagerDuty incident with the runbook link; a signed workflow
    webhook from the on-call user aborts the Rollout; the note and the resolve reach
    PagerDuty."""
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
        with contextlib.suppress(TimeoutError):
            await world.wait_for(
                lambda: world.pd.incident(incident["id"])["status"] == "resolved",
                timeout=timeout,
                what="the resolve",
            )
        status = world.pd.incident(incident["id"])["status"]
        if drill.check(status == "resolved", f"PagerDuty incident is {status}"):
            drill.mark("PagerDuty incident resolved")
        chain = await world.rollbot.store.verify_audit()
        drill.check(chain.ok, f"audit chain broken: {chain.reason}")
    return "incident opened, workflow abort verified, note and resolve in PagerDuty"


async def _drill_checkout_circuit(drill: Drill, *, speed: float, timeout: float) -> str:
    """The demo's second service: checkout is fully rolled out when its SLO alert fires;
    the card recommends Tier 2 (nothing to abort); the on-call opens the circuit from the
    card; the flag reads back on, the PagerDuty incident resolves, the audit chain holds."""
    from bot.sim.harness import PD_CHECKOUT_SERVICE

    circuit = sim_world.CHECKOUT_FLAGS["circuit"]
    with LaunchDarklySim() as ld:
        settings, env = _flag_settings(ld)
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

            record = await _audit_entry(world, "circuit-open", ("succeeded",), timeout)
            if record is not None:
                drill.mark(f"audit entry {record.seq}: circuit-open succeeded (read back)")
            else:
                drill.check(False, "no succeeded circuit-open audit entry")
            with contextlib.suppress(TimeoutError):
                await world.wait_for(
                    lambda: world.pd.incident(incident["id"])["status"] == "resolved",
                    timeout=timeout,
                    what="the resolve",
                )
            status = world.pd.incident(incident["id"])["status"]
            if drill.check(status == "resolved", f"PagerDuty incident is {status}"):
                drill.mark("PagerDuty incident resolved (verified mitigation)")
            chain = await world.rollbot.store.verify_audit()
            drill.check(chain.ok, f"audit chain broken: {chain.reason}")
    return f"Tier 2 recommended and executed on checkout · flag on {flipped:.2f} s after the click"


DRILLS = {
    "checkout-circuit": _drill_checkout_circuit,
    "pagerduty-workflow": _drill_pagerduty_workflow,
    "release-cleanup": _drill_release_cleanup,
    "tier1-abort": _drill_tier1_abort,
    "slo-alert": _drill_slo_alert,
    "tier2-circuit": _drill_tier2_circuit,
}


async def run_drill(
    scenario: str, *, speed: float = 120.0, timeout: float = 60.0, out: TextIO = sys.stdout
) -> int:
    run = DRILLS.get(scenario)
    if run is None:
        print(f"unknown drill {scenario}; known: {', '.join(DRILLS)}", file=out)
        return 2
    drill = Drill(scenario, out)
    try:
        summary = await run(drill, speed=speed, timeout=timeout)
    except TimeoutError as err:
        drill.failures.append(str(err))
        summary = "timed out"
    return drill.finish(summary)
