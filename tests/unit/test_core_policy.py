"""bot.core.policy: who may act.

Aspects: read-only verbs open to all; no owners group → anyone; member allowed; non-member
refused with who may; unreadable membership fails closed; every refusal names the group.
"""

from __future__ import annotations

import pytest

from bot.core.model import Actor, RolloutAction
from bot.core.policy import authorise

ONCALL = Actor("U0ONCALL", "oncall-engineer")
OUTSIDER = Actor("U0OUTSIDER", "outsider")


@pytest.mark.parametrize(
    ("actor", "action", "group", "members", "allowed"),
    [
        (OUTSIDER, "status", "S0PAY", frozenset(), True),
        (OUTSIDER, RolloutAction.ABORT, None, None, True),
        (ONCALL, RolloutAction.ABORT, "S0PAY", frozenset({"U0ONCALL"}), True),
        (OUTSIDER, RolloutAction.ABORT, "S0PAY", frozenset({"U0ONCALL"}), False),
        (OUTSIDER, RolloutAction.PROMOTE_FULL, "S0PAY", frozenset({"U0ONCALL"}), False),
        (ONCALL, RolloutAction.RETRY, "S0PAY", None, False),
    ],
)
def test_decisions(actor, action, group, members, allowed):
    decision = authorise(
        actor=actor,
        service="payment-router",
        action=action,
        owners_usergroup=group,
        usergroup_members=members,
    )
    assert decision.allowed is allowed
    if not allowed:
        assert "<!subteam^S0PAY>" in decision.reason
        assert str(action) in decision.reason


def test_refusal_names_actor_and_service():
    decision = authorise(
        actor=OUTSIDER,
        service="payment-router",
        action=RolloutAction.ABORT,
        owners_usergroup="S0PAY",
        usergroup_members={"U0ONCALL"},
    )
    assert "<@U0OUTSIDER>" in decision.reason
    assert "payment-router" in decision.reason
