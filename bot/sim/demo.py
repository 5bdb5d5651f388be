"""`rollbot demo` and `rollbot drill`: the simulated world, shown in the terminal.

The scenario follows the checkout case study: payment-router goes 10 → 25 → 50 → 100 % with
pauses and analysis on an accelerated clock. At 25 % the p95 latency analysis comes back
Inconclusive, the controller pauses the canary, and rollbot posts the card with
Abort (Tier 1). The demo prints every Slack message as readable text; press Enter (or pass
--auto-abort) to click Abort as the on-call engineer, through a signed request exactly as
Slack sends it. `rollbot drill tier1-abort` does the same headless and exits 0 only when the
abort was verified in the cluster and audited in an intact hash chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any, TextIO

from bot.sim.harness import CHANNEL_ID, ONCALL, SimWorld
from bot.slack.render import render_text


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


async def run_demo(
    *,
    speed: float = 60.0,
    port: int = 0,
    auto_abort: bool = False,
    duration: float | None = None,
    out: TextIO = sys.stdout,
) -> int:
    async with SimWorld(speed=speed, port=port) as world:
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
        printer = SlackPrinter(world, out)
        started = time.monotonic()
        clicked = False
        interactive = sys.stdin is not None and sys.stdin.isatty() and not auto_abort
        enter: asyncio.Task[str] | None = None
        try:
            while duration is None or time.monotonic() - started < duration:
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
                            "\n» press Enter to click Abort (Tier 1) as "
                            f"@{ONCALL[1]} (Ctrl-C to quit)",
                            file=out,
                        )
                        enter = asyncio.create_task(_stdin_line())
                if enter is not None and enter.done() and not clicked and card is not None:
                    clicked = True
                    await world.click(card, "rollout_abort")
                await asyncio.sleep(0.1)
        finally:
            if enter is not None:
                enter.cancel()
            printer.poll()
    return 0


async def run_drill(
    scenario: str, *, speed: float = 120.0, timeout: float = 60.0, out: TextIO = sys.stdout
) -> int:
    if scenario != "tier1-abort":
        print(f"unknown drill {scenario}", file=out)
        return 2
    failures: list[str] = []
    timeline: list[tuple[float, str]] = []
    t0 = time.monotonic()

    def mark(what: str) -> None:
        timeline.append((time.monotonic() - t0, what))

    async with SimWorld(speed=speed) as world:
        mark("world up")
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=timeout,
            what="a card with Abort (Tier 1)",
        )
        mark("card posted")
        clicked = time.monotonic()
        response = await world.click(card, "rollout_abort")
        ack_ms = (time.monotonic() - clicked) * 1000
        mark(f"click acked (HTTP {response.status_code})")
        if response.status_code != 200:
            failures.append(f"click answered HTTP {response.status_code}")

        async def audited() -> Any:
            for record in await world.rollbot.store.audit_entries():
                if record.entry.action == "abort" and record.entry.result in (
                    "succeeded",
                    "failed",
                ):
                    return record
            return None

        record = None
        deadline = time.monotonic() + timeout
        while record is None and time.monotonic() < deadline:
            record = await audited()
            if record is None:
                await asyncio.sleep(0.05)
        if record is None:
            failures.append("no audit entry for the abort")
        else:
            mark(f"audit entry {record.seq}: {record.entry.result}")
            if record.entry.result != "succeeded":
                failures.append(
                    f"abort {record.entry.result}: "
                    f"{json.dumps(record.entry.detail.get('verification'))}"
                )
        rollout = world.kube.get("rollouts", "payments", "payment-router") or {}
        status = rollout.get("status") or {}
        if status.get("abort") is not True or status.get("phase") != "Degraded":
            failures.append(
                f"cluster shows abort={status.get('abort')} phase={status.get('phase')}"
            )
        chain = await world.rollbot.store.verify_audit()
        if not chain.ok:
            failures.append(f"audit chain broken at {chain.first_bad_seq}: {chain.reason}")
        with contextlib.suppress(TimeoutError):
            await world.wait_for(
                lambda: "Aborted by" in json.dumps((world.card() or {}).get("blocks")),
                timeout=5,
                what="the card to show the outcome",
            )
        if "Aborted by" not in json.dumps((world.card() or {}).get("blocks")):
            failures.append("the card does not show who aborted")
        else:
            mark("card shows the outcome")

    for at, what in timeline:
        print(f"  {at:7.2f} s  {what}", file=out)
    verified = (record.entry.detail.get("verification") or {}) if record else {}
    summary = (
        f"ack {ack_ms:.0f} ms · abort verified in {verified.get('seconds', float('nan')):.2f} s"
        f" · audit chain {'ok' if not failures else 'checked'}"
    )
    if failures:
        print(f"drill tier1-abort: FAIL · {summary} · " + "; ".join(failures), file=out)
        return 1
    print(f"drill tier1-abort: PASS · {summary} · total {time.monotonic() - t0:.1f} s", file=out)
    return 0
