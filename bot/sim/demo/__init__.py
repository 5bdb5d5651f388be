"""`rollbot demo` and `rollbot drill`: the simulated world, shown in the terminal.

The scenario follows the checkout case study: payment-router goes 10 → 25 → 50 → 100 % with
pauses and analysis on an accelerated clock. At 25 % the p95 latency analysis comes back
Inconclusive, the controller pauses the canary, and rollbot posts the card with
Abort (Tier 1). The demo prints every Slack message as readable text; press Enter (or pass
--auto-abort) to click Abort as the on-call engineer, through a signed request exactly as
Slack sends it. Unless --no-browser-ui, the demo also runs the PagerDuty, Jira and
LaunchDarkly sims, keeps payment-router's desired state in a GitOps repository served by
git itself with the GitHub sim and Argo CD's over it (where git is installed: its card then
offers Tier 3 run by rollbot), and serves the workbench page (bot/sim/workbench/) on
--ui-port, with one line `open http://127.0.0.1:PORT`; SIGINT/SIGTERM stop everything.
`rollbot drill tier1-abort` does the same headless and exits 0 only when the abort was
verified in the cluster and audited in an intact hash chain.

How the package is split:

* ``scenario``: the demo's flags and the checkout alert scenario (demo and drills share them);
* ``runner``: :func:`run_demo` and the terminal printout (:class:`SlackPrinter`);
* ``drill``: :class:`Drill` (timeline and checks) and the verified abort the drills share;
* ``canary_drills``: tier1-abort, slo-alert, tier2-circuit (payment-router's card);
* ``integration_drills``: release-cleanup (Jira), pagerduty-workflow, checkout-circuit;
* ``gitops_drills``: tier3-revert (a revert pull request in a real GitOps repository, two
  people, Argo CD's sync);
* ``drills``: :data:`DRILLS` by name, with what each proves, and :func:`run_drill`.
"""

from bot.sim.demo.drill import Drill
from bot.sim.demo.drills import DRILLS, DrillScenario, run_drill
from bot.sim.demo.runner import SlackPrinter, run_demo
from bot.sim.demo.scenario import CHECKOUT_ALERT, DEFAULT_UI_PORT, DEMO_FLAGS

__all__ = [
    "CHECKOUT_ALERT",
    "DEFAULT_UI_PORT",
    "DEMO_FLAGS",
    "DRILLS",
    "Drill",
    "DrillScenario",
    "SlackPrinter",
    "run_demo",
    "run_drill",
]
