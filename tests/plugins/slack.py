"""Fixtures for Slack: a started SlackSim seeded with the payments team, and its secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sim.slack import SlackSim


@pytest.fixture
def signing_secret() -> str:
    return "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def bot_token() -> str:
    return "xoxb-test-0000000000-rollbot"


def seed_payments(sim: SlackSim) -> SlackSim:
    """The workspace every test starts from: an on-call engineer, an outsider, one channel."""
    sim.add_user(
        "U0ONCALL", "oncall-engineer", real_name="On-call Engineer", email="oncall@example.com"
    )
    sim.add_user("U0OUTSIDER", "outsider", real_name="Out Sider", email="outsider@example.com")
    sim.add_usergroup("S0PAYMENTS", "payments-oncall", ["U0ONCALL"])
    sim.add_channel("C0PAYDEPLOY", "#payments-deploys")
    return sim


@pytest.fixture
def slack_sim() -> Iterator[SlackSim]:
    with SlackSim() as sim:
        yield seed_payments(sim)
