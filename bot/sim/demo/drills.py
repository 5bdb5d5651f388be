"""`rollbot drill NAME`: the drills by name, and running one.

:data:`DRILLS` maps each name the command line offers to its scenario (in
``canary_drills`` and ``integration_drills``); :func:`run_drill` runs one and returns the
exit code: 0 when every check held, 1 when one failed or it timed out, 2 for an unknown name.
"""

from __future__ import annotations

import sys
from typing import TextIO

from bot.sim.demo.canary_drills import drill_slo_alert, drill_tier1_abort, drill_tier2_circuit
from bot.sim.demo.drill import Drill
from bot.sim.demo.integration_drills import (
    drill_checkout_circuit,
    drill_pagerduty_workflow,
    drill_release_cleanup,
)

__all__ = ["DRILLS", "run_drill"]


DRILLS = {
    "checkout-circuit": drill_checkout_circuit,
    "pagerduty-workflow": drill_pagerduty_workflow,
    "release-cleanup": drill_release_cleanup,
    "tier1-abort": drill_tier1_abort,
    "slo-alert": drill_slo_alert,
    "tier2-circuit": drill_tier2_circuit,
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
