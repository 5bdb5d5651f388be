"""`rollbot serve` asks Slack at start whether it takes the bot token, and says so in /readyz.

Real `rollbot serve` processes over a SimWorld's config (tests/e2e/serving.py); the token
reaches the Slack sim through slack_sdk's client, as in production.

Aspects under test:
- a token Slack refuses (the sim's `set_token_valid(token, False)`: `{"ok": false, "error":
  "invalid_auth"}`, as Slack documents for auth.test): `/readyz` 503 with one problem naming
  `invalid_auth` and the variable to fix, never the token; the log says it once; the process
  stays up (`/healthz` 200);
- Slack out of reach at start (auth.test answered 503 three times): `/readyz` 503 saying
  Slack is unreachable, one warning line in the log, not fatal; asked again until Slack
  answers, then `/readyz` 200;
- a token Slack takes: `/readyz` 200, and the first call rollbot made to Slack was auth.test;
  the world's advisory configuration problem (a circuit flag without a provider) is a
  warning line, and serve starts anyway.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.sim.harness import SimWorld
from tests.e2e.serving import Served, start
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)


async def _readyz(served: Served) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(f"{served.url}/readyz")


async def _ready_with(served: Served, status: int) -> httpx.Response:
    async def answered() -> httpx.Response | None:
        assert served.proc.poll() is None, served.log.read_text()[-3000:]
        response = await _readyz(served)
        return response if response.status_code == status else None

    return await eventually(
        answered,
        timeout=30,
        interval=0.05,
        what=lambda: f"/readyz {status}:\n{served.log.read_text()[-3000:]}",
    )


async def test_a_refused_token_is_a_readiness_problem_named_once_never_shown(tmp_path):
    async with SimWorld(speed=60, workdir=tmp_path, start_bot=False) as world:
        token = world.secrets.slack_bot_token
        world.slack.set_token_valid(token, False)
        served = await start(world, tmp_path / "serve.log")
        try:
            ready = await _readyz(served)  # known from the first request on
            assert ready.status_code == 503, ready.text
            problems = ready.json()["problems"]
            slack = [p for p in problems if p.startswith("slack:")]
            assert slack == [
                "slack: the bot token was refused (auth.test: invalid_auth); "
                "set a valid ROLLBOT_SLACK__BOT_TOKEN and restart"
            ], problems
            assert token not in ready.text
            await asyncio.sleep(2)  # time for a (wrong) second attempt or log line
            async with httpx.AsyncClient(timeout=5) as client:
                assert (await client.get(f"{served.url}/healthz")).status_code == 200
            assert (await _readyz(served)).status_code == 503
            assert served.proc.poll() is None  # not fatal: serving, and saying why not ready
        finally:
            served.stop()
        log = served.log.read_text()
        assert log.count("Slack refused the bot token at start (auth.test: invalid_auth)") == 1
        assert token not in log
        assert token.removeprefix("xoxb-") not in log
        attempts = world.slack.calls_to("auth.test")
        assert attempts and all(
            c.response == {"ok": False, "error": "invalid_auth"} for c in attempts
        )


async def test_slack_out_of_reach_at_start_is_said_and_retried_not_fatal(tmp_path):
    async with SimWorld(speed=60, workdir=tmp_path, start_bot=False) as world:
        world.slack.force_status("auth.test", status=503, times=3)
        served = await start(world, tmp_path / "serve.log")
        try:
            ready = await _readyz(served)
            assert ready.status_code == 503, ready.text
            assert (
                "slack: unreachable at start; the bot token is not checked yet (retrying)"
                in ready.json()["problems"]
            )
            await _ready_with(served, 200)
        finally:
            served.stop()
        log = served.log.read_text()
        assert log.count("Slack is unreachable at start (auth.test: ") == 1, log
        assert "Slack answered at last: the bot token is accepted (@rollbot in " in log
        statuses = [c.status for c in world.slack.calls_to("auth.test")]
        assert statuses == [503, 503, 503, 200], statuses


async def test_an_accepted_token_is_ready_and_checked_first(tmp_path):
    async with SimWorld(speed=60, workdir=tmp_path, start_bot=False) as world:
        served = await start(world, tmp_path / "serve.log")
        try:
            ready = await _readyz(served)
            assert ready.status_code == 200, ready.text
        finally:
            served.stop()
        assert world.slack.calls[0].path == "/api/auth.test"
        assert world.slack.calls[0].status == 200
        log = served.log.read_text()
        assert "Slack accepted the bot token (@rollbot in Payments (T" in log
        # An advisory configuration problem is logged, and serve starts anyway.
        assert "WARNING bot.cli: configuration: services.payment-router.flags.circuit: " in log
        assert "(serving anyway)" in log
