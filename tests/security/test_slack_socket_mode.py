"""Socket Mode's envelopes meet the checks `/slack/events` applies to requests
(SECURITY.md, "Slack over Socket Mode"), against rollbot served with only the app-level
token and the Slack sim's Socket Mode server.

Aspects under test:
- an envelope is answered as a verified request is: a click whose button value rollbot
  did not make is acked, and told so on its response_url, and nothing is aborted;
- an envelope delivered twice (Slack re-sending one whose ack it lost): acked both times,
  the slash command's work runs once;
- an envelope not shaped like a Slack payload is not acknowledged, and the log says why,
  never what;
- no envelope body reaches a log line, even with slack_sdk's client logger at DEBUG, and
  the app-level token none.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from bot.sim.harness import CHANNEL_ID, ONCALL, SimWorld
from bot.slack.socket_mode import SDK_LOGGER

pytestmark = pytest.mark.timeout(120)

MARKER = "envelope-body-marker-7f3a"


def _aborted(world: SimWorld) -> bool:
    rollout = world.kube.get("rollouts", "payments", "payment-router") or {}
    return rollout.get("status", {}).get("abort") is True


def _status_replies(world: SimWorld) -> list[dict[str, Any]]:
    """The status cards `/rollback payment-router` answered on response_urls."""
    return [
        r.body for r in world.slack.responses if "Canary weight" in json.dumps(r.body.get("blocks"))
    ]


async def test_envelopes_meet_the_checks_of_the_http_edge(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER)  # it would log every body at DEBUG
    async with SimWorld(speed=600, workdir=tmp_path, slack_mode="socket") as world:
        # A socket request's failure after its ack is told on its response_url, and the
        # envelope acked (bot.slack.errors.after_ack; tests/e2e/test_errors_after_ack.py).
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=60,
            what="the card with Abort",
        )
        before = len(world.slack.responses)
        garbage = world.sender.click(
            ONCALL[0], "rollout_abort", "not-rollbots", message=card, channel_id=CHANNEL_ID
        )
        assert (await garbage.send()).status_code == 200  # the envelope's ack
        told = await world.wait_for(
            lambda: [r.body for r in world.slack.responses[before:]],
            timeout=20,
            what="the error's answer",
        )
        assert "This button's payload is not one rollbot made." in json.dumps(told)
        assert not _aborted(world)

        # The same envelope twice: acked both times, run once.
        first = world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router")
        assert (await first.send()).status_code == 200
        await world.wait_for(lambda: _status_replies(world), timeout=20, what="the status")
        assert (await first.send()).status_code == 200
        await world.wait_for(
            lambda: any("replayed Slack request" in r.getMessage() for r in caplog.records),
            timeout=10,
            what="the redelivery skipped",
        )
        assert len(_status_replies(world)) == 1
        ids = [e.envelope_id for e in world.slack.socket.envelopes]
        assert ids.count(first.envelope_id) == 2

        # Not a Slack payload: not acked, and the log says why, never what.
        odd = await world.slack.socket.deliver(
            "interactive",
            {"type": "block_actions", "actions": {MARKER: 1}},
            accepts_response_payload=False,
            wait=0.0,
        )
        await world.wait_for(
            lambda: any("not a Slack payload" in r.getMessage() for r in caplog.records),
            timeout=10,
            what="the envelope refused",
        )
        assert odd.acked_at is None
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "actions is not a list of objects" in logged and MARKER not in logged

        # A body's words and the app token in no log line, slack_sdk's DEBUG included.
        unknown = await world.sender.slash_command(ONCALL[0], ONCALL[1], f"zz-{MARKER}").send()
        assert MARKER in unknown.text  # answered in the ack (an unknown service)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert any(r.name == SDK_LOGGER for r in caplog.records)  # it does log, at INFO
        assert MARKER not in logged
        assert world.secrets.slack_app_token not in logged
