"""bot.core.policy: who may act.

Aspects: read-only verbs open to all; no owners group → anyone; member allowed; non-member
refused with who may; unreadable membership fails closed; every refusal names the group;
`break_glass_possible` marks exactly the refusals break-glass with a reason would allow.
"""

from __future__ import annotations

import itertools

import pytest

from bot.core.model import Actor, RolloutAction
from bot.core.policy import authorise, tier_of

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


# ── on-call, Tier 2 and break-glass ─────────────────────────────────────────────────────
#
# The table below crosses every dimension the policy reads. `expected` restates the rules
# of bot.core.policy as a plain table of facts (who is who, what is configured), so a
# change of rule shows up as a failing row, not as a silently updated oracle.

OWNER = Actor("U0OWNER", "owner")  # in the owners group, not on call
PAGED = Actor("U0PAGED", "paged")  # on call, not in the owners group
BOTH = Actor("U0BOTH", "paged-owner")  # on call and in the owners group
NOBODY = Actor("U0NOBODY", "nobody")  # neither

ACTORS = (OWNER, PAGED, BOTH, NOBODY)
ACTIONS = ("status", "abort", "promote-full", "circuit-open", "circuit-close")
# (escalation_policy, owners_usergroup)
CONFIGS = ((None, None), ("PESC123", None), (None, "S0PAY"), ("PESC123", "S0PAY"))
MEMBERS = ("readable", "unreadable")
ON_CALL = ("known", "nobody", "unavailable")
BREAK_GLASS = ("no", "with-reason", "empty-reason")

GROUP_MEMBERS = frozenset({"U0OWNER", "U0BOTH", "U0OTHEROWNER"})
ON_CALL_NOW = frozenset({"U0PAGED", "U0BOTH"})


def expected(actor, action, config, members, on_call, break_glass) -> tuple[bool, bool]:
    """(allowed, break_glass) by the rules of the policy module, stated as facts."""
    ep, group = config
    tier = 0 if action == "status" else 1 if action in ("abort", "promote-full") else 2
    is_member = group is not None and members == "readable" and actor.id in GROUP_MEMBERS
    pd_known = ep is not None and on_call != "unavailable"
    is_on_call = pd_known and on_call == "known" and actor.id in ON_CALL_NOW
    if tier == 0 or (ep is None and group is None) or is_on_call:
        return True, False
    if ep is not None and not pd_known:  # PagerDuty down: the owners group, all tiers
        return is_member, False
    if not is_member:
        return False, False
    if tier == 1 or ep is None:
        return True, False
    # Tier 2, owner not on call, on-call known: break-glass with a reason only
    return (break_glass == "with-reason"), (break_glass == "with-reason")


ROWS = list(itertools.product(ACTORS, ACTIONS, CONFIGS, MEMBERS, ON_CALL, BREAK_GLASS))


@pytest.mark.parametrize(
    ("actor", "action", "config", "members", "on_call", "break_glass"),
    ROWS,
    ids=[f"{a.name}-{act}-ep={c[0]}-grp={c[1]}-{m}-{o}-bg={b}" for a, act, c, m, o, b in ROWS],
)
def test_policy_table(actor, action, config, members, on_call, break_glass):
    ep, group = config
    decision = authorise(
        actor=actor,
        service="payment-router",
        action=action,
        owners_usergroup=group,
        usergroup_members=GROUP_MEMBERS if members == "readable" else None,
        escalation_policy=ep,
        on_call=(
            None if on_call == "unavailable" else ON_CALL_NOW if on_call == "known" else frozenset()
        ),
        on_call_error="HTTP 503" if on_call == "unavailable" else None,
        break_glass=break_glass != "no",
        break_glass_reason="checkout is failing for 30% of users"
        if break_glass == "with-reason"
        else "  ",
    )
    allowed, used_break_glass = expected(actor, action, config, members, on_call, break_glass)
    assert (decision.allowed, decision.break_glass) == (allowed, used_break_glass), decision.reason
    assert decision.reason
    # break_glass_possible: refused now, but break-glass with a reason would be allowed
    # (what makes the card offer its break-glass modal)
    could = expected(actor, action, config, members, on_call, "with-reason")[0]
    assert decision.break_glass_possible == (not allowed and could), decision.reason

    pd_down = ep is not None and on_call == "unavailable" and action != "status"
    if pd_down:
        assert "PagerDuty unavailable (HTTP 503): fell back to the owners group" in decision.reason
    if ep is None and group is None and action != "status":
        assert "neither an escalation policy nor an owners group" in decision.reason
    if decision.break_glass:
        assert "checkout is failing" in decision.reason
    if not decision.allowed:
        # every refusal names who may act instead
        assert action in decision.reason
        if group is not None:
            assert "<!subteam^S0PAY>" in decision.reason
        if ep is not None and on_call == "known":
            assert "<@U0PAGED>" in decision.reason and "<@U0BOTH>" in decision.reason
        if (
            break_glass == "empty-reason"
            and actor is OWNER
            and action.startswith("circuit-")
            and members == "readable"
            and ep is not None
            and group is not None
            and on_call != "unavailable"
        ):
            assert "requires a reason" in decision.reason


def test_owner_tier2_needs_break_glass_then_a_reason():
    common = dict(
        actor=OWNER,
        service="payment-router",
        action="circuit-open",
        owners_usergroup="S0PAY",
        usergroup_members=GROUP_MEMBERS,
        escalation_policy="PESC123",
        on_call={"U0PAGED"},
    )
    plain = authorise(**common)
    assert not plain.allowed and plain.break_glass_possible
    assert "for the on-call only" in plain.reason
    assert "<@U0PAGED>" in plain.reason
    assert "break-glass" in plain.reason

    empty = authorise(**common, break_glass=True, break_glass_reason="")
    assert not empty.allowed and empty.break_glass_possible
    assert "requires a reason" in empty.reason

    ok = authorise(**common, break_glass=True, break_glass_reason="on-call unreachable")
    assert ok.allowed and ok.break_glass and not ok.break_glass_possible
    assert "on-call unreachable" in ok.reason


def test_break_glass_refused_outside_the_owners_group():
    decision = authorise(
        actor=NOBODY,
        service="payment-router",
        action="circuit-open",
        owners_usergroup="S0PAY",
        usergroup_members=GROUP_MEMBERS,
        escalation_policy="PESC123",
        on_call={"U0PAGED"},
        break_glass=True,
        break_glass_reason="I really want to",
    )
    assert not decision.allowed and not decision.break_glass
    assert not decision.break_glass_possible  # break-glass would not help an outsider
    assert "break-glass is for members of <!subteam^S0PAY> only" in decision.reason
    assert "<@U0PAGED>" in decision.reason


def test_on_call_may_flip_the_circuit_even_when_the_group_is_unreadable():
    decision = authorise(
        actor=PAGED,
        service="payment-router",
        action="circuit-close",
        owners_usergroup="S0PAY",
        usergroup_members=None,
        escalation_policy="PESC123",
        on_call={"U0PAGED"},
    )
    assert decision.allowed and not decision.break_glass
    assert "on call" in decision.reason


def test_pagerduty_down_falls_back_to_the_owners_group_for_tier_2():
    decision = authorise(
        actor=OWNER,
        service="payment-router",
        action="circuit-open",
        owners_usergroup="S0PAY",
        usergroup_members=GROUP_MEMBERS,
        escalation_policy="PESC123",
        on_call=None,
        on_call_error="PagerDuty is unreachable: timed out",
    )
    assert decision.allowed and not decision.break_glass
    assert decision.reason.startswith(
        "PagerDuty unavailable (PagerDuty is unreachable: timed out): fell back to the owners group"
    )


def test_nobody_matched_on_call_says_so():
    decision = authorise(
        actor=NOBODY,
        service="payment-router",
        action="abort",
        owners_usergroup=None,
        usergroup_members=None,
        escalation_policy="PESC123",
        on_call=frozenset(),
    )
    assert not decision.allowed
    assert "PESC123" in decision.reason and "nobody on call" in decision.reason


def test_tiers():
    assert tier_of("status") == 0
    assert {tier_of(a) for a in RolloutAction} == {1}
    assert tier_of("circuit-open") == tier_of("circuit-close") == 2
    assert tier_of("something-new") == 2
