"""SlackTokenCheck: auth.test at start, as /readyz and the log say it.

Aspects:
- accepted at the first try: no problem, one info line, nothing left running;
- refused (Forbidden: invalid_auth, or any PermanentError): a problem naming Slack's code
  and the variable to fix, never the token; one error line; never asked again;
- out of reach (Unreachable, a timeout, no answer within `first_wait`): a problem saying
  so, one warning line however many tries; asked again with a growing delay (capped at
  `retry_max`) until Slack answers; then no problem and one line saying so;
- before it is started, the token counts as not checked (a problem);
- `close` stops the retries.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.core.errors import Forbidden, PermanentError, Unreachable
from bot.runtime.slack_token import SlackTokenCheck
from tests.helpers import eventually

TOKEN = "xoxb-never-in-a-message"


class Probe:
    """auth.test answering each scripted outcome in turn (an exception or who), then ok."""

    def __init__(self, *outcomes: object, hang: bool = False) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.hang = hang

    async def __call__(self) -> str:
        self.calls += 1
        if self.hang and self.calls == 1:
            await asyncio.sleep(3600)
        outcome = self.outcomes.pop(0) if self.outcomes else "@rollbot in Payments (T0)"
        if isinstance(outcome, BaseException):
            raise outcome
        return str(outcome)


def check(probe: Probe, **kw: float) -> SlackTokenCheck:
    return SlackTokenCheck(probe, retry_initial=0.01, retry_max=0.04, **kw)


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


async def test_accepted_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.runtime.slack_token")
    probe = Probe()
    token = check(probe)
    assert token.problem is not None  # not checked yet
    await token.start()
    assert token.problem is None and token.accepted
    assert lines(caplog, logging.INFO) == [
        "Slack accepted the bot token (@rollbot in Payments (T0))"
    ]
    await asyncio.sleep(0.05)
    assert probe.calls == 1
    await token.close()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Forbidden("Slack", "invalid_auth"), "invalid_auth"),
        (Forbidden("Slack", "token_revoked"), "token_revoked"),
        (PermanentError("Slack refused auth.test: something_else"), "something_else"),
    ],
)
async def test_refused_is_final_named_once_without_the_token(
    caplog: pytest.LogCaptureFixture, error: PermanentError, code: str
) -> None:
    caplog.set_level(logging.INFO, logger="bot.runtime.slack_token")
    probe = Probe(error)
    token = check(probe)
    await token.start()
    assert token.refused and not token.accepted
    assert token.problem is not None
    assert token.problem.startswith("slack: the bot token was refused (auth.test: ")
    assert code in token.problem
    assert token.problem.endswith("set a valid ROLLBOT_SLACK__BOT_TOKEN and restart")
    await asyncio.sleep(0.1)
    assert probe.calls == 1  # never asked again: the token will not change in this process
    errors = lines(caplog, logging.ERROR)
    assert len(errors) == 1 and code in errors[0]
    assert TOKEN not in caplog.text + token.problem
    await token.close()


async def test_out_of_reach_is_said_once_and_retried_until_slack_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.runtime.slack_token")
    down = Unreachable("Slack", "auth.test answered HTTP 503")
    probe = Probe(down, down, TimeoutError(), down, down)
    token = check(probe)
    await token.start()
    assert token.problem == (
        "slack: unreachable at start; the bot token is not checked yet (retrying)"
    )
    await eventually(lambda: token.accepted, timeout=5, what="Slack answering at last")
    assert token.problem is None
    assert probe.calls == 6
    warnings = lines(caplog, logging.WARNING)
    assert warnings == [
        "Slack is unreachable at start (auth.test: Slack is unreachable: auth.test answered "
        "HTTP 503); not fatal: asking again, backing off up to 0.04 s"
    ]
    assert lines(caplog, logging.INFO) == [
        "Slack answered at last: the bot token is accepted (@rollbot in Payments (T0))"
    ]
    await token.close()


async def test_out_of_reach_then_refused(caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe(Unreachable("Slack", "ClientConnectorError"), Forbidden("Slack", "invalid_auth"))
    token = check(probe)
    await token.start()
    await eventually(lambda: token.refused, timeout=5, what="the refusal")
    assert token.problem is not None and "invalid_auth" in token.problem
    await token.close()


async def test_no_answer_within_the_first_wait_does_not_hold_the_start() -> None:
    probe = Probe(hang=True)
    token = check(probe, first_wait=0.05)
    started = asyncio.get_running_loop().time()
    await token.start()
    assert asyncio.get_running_loop().time() - started < 1
    assert token.problem is not None and "unreachable at start" in token.problem
    await eventually(lambda: token.accepted, timeout=5, what="the retry")
    await token.close()


async def test_close_stops_the_retries() -> None:
    probe = Probe(*[Unreachable("Slack", "down")] * 1000)
    token = check(probe)
    await token.start()
    await token.close()
    calls = probe.calls
    await asyncio.sleep(0.1)
    assert probe.calls == calls
    await token.close()  # twice is fine
