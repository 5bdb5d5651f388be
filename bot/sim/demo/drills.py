"""`rollbot drill NAME`: the drills by name, what each proves, and running one.

:data:`DRILLS` is the one table of drills: each name the command line offers, with the one
line ``rollbot drill --help`` prints for it (what a PASS proves) and its scenario (in
``canary_drills``, ``integration_drills`` and ``gitops_drills``). :func:`run_drill` runs
one and returns the exit code: 0 when every check held, 1 when one failed or it timed out,
2 for an unknown name.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

from bot.sim.demo.canary_drills import drill_slo_alert, drill_tier1_abort, drill_tier2_circuit
from bot.sim.demo.drill import Drill
from bot.sim.demo.gitops_drills import drill_tier3_revert
from bot.sim.demo.integration_drills import (
    drill_checkout_circuit,
    drill_pagerduty_workflow,
    drill_release_cleanup,
)

__all__ = ["DRILLS", "DrillScenario", "run_drill"]


@dataclass(frozen=True, slots=True)
class DrillScenario:
    """One drill: what its PASS proves (one line, for ``--help``) and the scenario, which
    marks its timeline on the `Drill` and returns the summary of its PASS line."""

    proves: str
    run: Callable[..., Awaitable[str]]


DRILLS: dict[str, DrillScenario] = {
    "tier1-abort": DrillScenario(
        "a paused canary's card, Abort (Tier 1) clicked: verified in the cluster, audited",
        drill_tier1_abort,
    ),
    "slo-alert": DrillScenario(
        "an SLO alert alone opens one card with three tiers; Tier 1 executed and verified",
        drill_slo_alert,
    ),
    "tier2-circuit": DrillScenario(
        "an owner not on call is refused; the on-call opens the circuit: read back, SDKs served",
        drill_tier2_circuit,
    ),
    "checkout-circuit": DrillScenario(
        "a fully rolled-out service's SLO alert: Tier 2 recommended, opened, PagerDuty acked",
        drill_checkout_circuit,
    ),
    "release-cleanup": DrillScenario(
        "a release files its 3 Jira tickets once; at 100 % their due dates become the real ones",
        drill_release_cleanup,
    ),
    "pagerduty-workflow": DrillScenario(
        "a bad canary pages; the on-call's workflow aborts: noted, acknowledged, then resolved",
        drill_pagerduty_workflow,
    ),
    "tier3-revert": DrillScenario(
        "Tier 3 started by the on-call: a revert pull request, refused to its requester, "
        "approved by an owner, merged, synced by Argo CD, verified on the stable image, audited",
        drill_tier3_revert,
    ),
}


async def run_drill(
    scenario: str,
    *,
    speed: float = 120.0,
    timeout: float = 60.0,
    out: TextIO = sys.stdout,
    started: float | None = None,
) -> int:
    """Run the drill `scenario`; its timeline and total count from `started` (a
    `time.monotonic()` reading: the command's start, so the total includes start-up),
    or from now."""
    spec = DRILLS.get(scenario)
    if spec is None:
        print(f"unknown drill {scenario}; known: {', '.join(DRILLS)}", file=out)
        return 2
    drill = Drill(scenario, out, started=started)
    try:
        summary = await spec.run(drill, speed=speed, timeout=timeout)
    except TimeoutError as err:
        drill.failures.append(str(err))
        summary = "timed out"
    return drill.finish(summary)
