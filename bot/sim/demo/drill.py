"""What every drill shares: the timeline and checks of one run, and the verified abort.

A drill (``rollbot drill NAME``) is a headless rehearsal on a :class:`SimWorld`: it marks
what happened with the time since the start (:meth:`Drill.mark`), checks what must hold
(:meth:`Drill.check`) and prints the timeline and one PASS or FAIL line (:meth:`Drill.finish`),
whose total counts from the same start as the timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, TextIO

from bot.sim.harness import SimWorld

__all__ = ["Drill", "abort_and_verify", "audit_entry"]


class Drill:
    """A headless rehearsal: a timeline of what happened and the checks that failed."""

    def __init__(self, name: str, out: TextIO, *, started: float | None = None) -> None:
        """`started`: where the timeline's clock starts (a `time.monotonic()` reading; the
        command's start for `rollbot drill`, so the total includes start-up); default now."""
        self.name = name
        self.out = out
        self.t0 = time.monotonic() if started is None else started
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


async def audit_entry(
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


async def abort_and_verify(
    world: SimWorld, drill: Drill, card: dict[str, Any], timeout: float
) -> tuple[float, dict[str, Any]]:
    """Click Abort (Tier 1) on `card` as the on-call engineer; check the cluster, the audit
    log and the card. Returns (ack ms, the verification recorded in the audit entry)."""
    clicked = time.monotonic()
    response = await world.click(card, "rollout_abort")
    ack_ms = (time.monotonic() - clicked) * 1000
    drill.mark(f"click acked (HTTP {response.status_code})")
    drill.check(response.status_code == 200, f"click answered HTTP {response.status_code}")

    record = await audit_entry(world, "abort", ("succeeded", "failed"), timeout)
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
