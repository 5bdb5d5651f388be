"""The demo workbench: a Slack-like page in the browser over a running :class:`SimWorld`.

    async with SimWorld(pagerduty=True, jira=True) as world:
        async with serve_workbench(Workbench(world), port=8088) as url:
            ...  # open url

- ``GET /`` — one page (``workbench_static/``: HTML, CSS and a little JavaScript; nothing
  fetched from elsewhere): #payments-deploys as the Slack sim recorded it, rendered from the
  real Block Kit by :mod:`bot.sim.blockkit`, threads, a composer for slash commands, and
  panels with the simulated world (Rollouts, flags, PagerDuty, Jira, the GitOps repository,
  the audit log).
- ``GET /api/state`` — the rendered fragments the page polls and swaps.
- ``POST /api/command`` ``{"text": "/rollback payment-router", "user": "U0ONCALL"}`` — a
  SIGNED slash command through ``world.sender``, exactly as Slack sends it.
- ``POST /api/click`` ``{"message_ts", "action_id", "block_id", "value", "user"}`` — a
  signed ``block_actions`` for a button that is on that message (else 4xx saying why).
- ``POST /api/submit`` ``{"view_id", "values": {block_id: {action_id: text}}, "user"}`` — a
  signed ``view_submission`` of a modal the bot opened for that user (``views.open``); the
  modal closes or shows the errors the bot answered, as Slack does.
  ``POST /api/close`` ``{"view_id", "user"}`` — the user dismissed it (Cancel or ×).
- ``POST /api/alert`` ``{"service", "status": "firing" | "resolved"}`` — the scenario
  buttons: an Alertmanager webhook for one of the demo's SLO alerts (bearer token and all).

The bot does not know about any of this: every request reaches it at ``/slack/events``
signed, and every answer is read back from what the sims recorded.

How the package is split:

* ``state``: :class:`Workbench`, the page's model (what it shows, the signed requests it sends);
* ``panels``: the side panels (Rollouts, scenarios, flags, PagerDuty, Jira, GitOps, audit) and the
  :class:`FlagSource` / :class:`AlertScenario` rows they show;
* ``app``: the Starlette routes (the page from ``workbench_static/`` and the JSON API);
* ``server``: :func:`bind` and :func:`serve_workbench`, uvicorn on a loopback socket.
"""

from bot.sim.workbench.panels import AlertScenario, FlagSource
from bot.sim.workbench.server import PortInUseError, bind, serve_workbench
from bot.sim.workbench.state import Workbench

__all__ = ["AlertScenario", "FlagSource", "PortInUseError", "Workbench", "bind", "serve_workbench"]
