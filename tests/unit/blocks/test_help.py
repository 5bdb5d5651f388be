"""`/rollback help` and `/release help` say what the policy does (issue 14: "Words a tired
person cannot misread").

The help said actions "need the service's on-call group" while the policy lets the owners
group do Tier 1, and it left out Tier 3 and `/release`. Now its "who may" comes from the
policy's own table (`bot.core.policy.ROLES`, through `who_may`). Aspects:

- every verb of the policy (`policy.VERBS`) appears in the help, and every help line
  about a verb sits under a heading naming exactly `policy.who_may(verb)`;
- `who_may`'s words match the roles of the verb's tier, and `authorise` decides by those
  same roles (a table over every verb and the four people the roles name): so the help,
  the table and the decisions cannot drift apart;
- Tier 3 (recording a revert) and the `/release` subcommands are there, under the
  configured command names;
- `/release help` (hand-written until now) lists every `/release` verb, each one a policy
  verb (`release.VERB`), under a heading naming exactly `policy.who_may` of it; a change
  to the policy's table changes that help (the table patched: the help follows).
"""

from __future__ import annotations

from types import MappingProxyType

import pytest

from bot.blocks import release, replies
from bot.core import policy, release_commands
from bot.core.model import Actor
from bot.core.policy import Role

# verb → how the help writes it: the test's own list, so that a verb the help forgets (or a
# new policy verb nobody documented) fails here.
SYNTAX = {
    "status": "`/rollback SERVICE status`",
    "flags": "`/rollback SERVICE flags`",
    "runbook": "`/rollback SERVICE runbook`",
    "help": "`/rollback help`",
    "release.status": "`/release status SERVICE`",
    "release.list": "`/release list`",
    "release.help": "`/release help`",
    "abort": "`/rollback SERVICE abort`",
    "retry": "`/rollback SERVICE retry`",
    "promote": "`/rollback SERVICE promote`",
    "promote-full": "`/rollback SERVICE promote-full`",
    "pause": "`/rollback SERVICE pause`",
    "ack": "`/rollback SERVICE ack`",
    "revert": "*Record Tier 3 revert…*",
    "release.start": "`/release start SERVICE VERSION [@owner|email]`",
    "release.winner": "`/release winner SERVICE VARIANT`",
    "circuit-open": "`/rollback SERVICE circuit open",
    "circuit-close": "`/rollback SERVICE circuit open|close`",
}


def sections(blocks: list[dict]) -> list[tuple[str, list[str]]]:
    """(heading, bullet lines) of each group section of the help."""
    out = []
    for block in blocks:
        if block["type"] != "section":
            continue
        head, *lines = block["text"]["text"].split("\n")
        if "who may:" in head:
            out.append((head, lines))
    return out


def test_every_policy_verb_is_documented() -> None:
    assert set(SYNTAX) == set(policy.VERBS)
    assert len(policy.VERBS) == len(set(policy.VERBS))


@pytest.mark.parametrize("verb", policy.VERBS)
def test_each_verb_sits_under_the_policy_s_who_may(verb: str) -> None:
    found = [
        head
        for head, lines in sections(replies.help_blocks())
        if any(line.startswith("• ") and SYNTAX[verb] in line for line in lines)
    ]
    assert found, f"{verb} is not in the help"
    for head in found:
        assert head.endswith(f"— who may: {policy.who_may(verb)}"), (verb, head)


# The people the roles name, and whether each may act by the roles of a verb's tier.
ON_CALL = Actor("U0ONCALL", "oncall-engineer")  # on call, not in the owners group
OWNER = Actor("U0OWNER", "payments-owner")  # in the owners group, not on call
OUTSIDER = Actor("U0OUTSIDER", "outsider")  # neither
PEOPLE = {
    "on call": (ON_CALL, False, {Role.ANYONE, Role.ON_CALL}),
    "owner": (OWNER, False, {Role.ANYONE, Role.OWNERS}),
    "owner with break-glass": (OWNER, True, {Role.ANYONE, Role.OWNERS, Role.OWNERS_BREAK_GLASS}),
    "outsider": (OUTSIDER, False, {Role.ANYONE}),
}


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("verb", policy.VERBS)
def test_the_decisions_follow_the_same_roles(verb: str, person: str) -> None:
    actor, break_glass, enough = PEOPLE[person]
    decision = policy.authorise(
        actor=actor,
        service="payment-router",
        action=verb,
        owners_usergroup="S0PAYMENTS",
        usergroup_members=frozenset({OWNER.id}),
        escalation_policy="PESC123",
        on_call=frozenset({ON_CALL.id}),
        break_glass=break_glass,
        break_glass_reason="the on-call does not answer" if break_glass else "",
    )
    assert decision.allowed is bool(enough & set(policy.roles(verb))), decision.reason


@pytest.mark.parametrize("verb", policy.VERBS)
def test_who_may_says_each_role_and_nothing_else(verb: str) -> None:
    words, allowed = policy.who_may(verb), set(policy.roles(verb))
    assert ("anyone" in words) is (Role.ANYONE in allowed)
    assert ("on-call" in words) is (Role.ON_CALL in allowed)
    assert ("owners group" in words) is bool({Role.OWNERS, Role.OWNERS_BREAK_GLASS} & allowed)
    assert ("break-glass" in words) is (Role.OWNERS_BREAK_GLASS in allowed)
    assert "on-call group" not in words  # the old help's mistake


def test_tiers_three_and_release_are_in_the_help_under_the_configured_names() -> None:
    text = "\n".join(
        block["text"]["text"]
        for block in replies.help_blocks("/rb", "/rel")
        if block["type"] == "section"
    )
    assert "*Tier 3 (full revert in Git)*" in text
    for shape in ("start SERVICE VERSION", "status SERVICE", "list", "winner SERVICE VARIANT"):
        assert f"`/rel {shape}" in text
    assert "`/rb SERVICE abort`" in text and "/rollback" not in text and "/release" not in text
    assert "on-call group" not in str(replies.help_blocks())


# ── `/release help` ──────────────────────────────────────────────────────────

# `/release` verb → how its help writes it (the test's own list, as SYNTAX above).
RELEASE_SYNTAX = {
    "start": "`/release start SERVICE VERSION [@owner|email]`",
    "status": "`/release status SERVICE`",
    "list": "`/release list`",
    "winner": "`/release winner SERVICE VARIANT`",
    "help": "`/release help`",
}


def release_groups(command: str = "/release") -> dict[str, list[str]]:
    """`/release help`'s who-may heading → its bullet lines."""
    out: dict[str, list[str]] = {}
    for block in release.release_help(command)[1]:
        if block["type"] != "section":
            continue
        head, *lines = block["text"]["text"].split("\n")
        if head.startswith("*Who may:* "):
            assert head.removeprefix("*Who may:* ") not in out  # one heading per who
            out[head.removeprefix("*Who may:* ")] = lines
    return out


def test_every_release_verb_is_a_policy_verb() -> None:
    assert set(RELEASE_SYNTAX) == set(release_commands.VERBS)
    assert {f"release.{verb}" for verb in release_commands.VERBS} == {
        verb for verb in policy.VERBS if verb.startswith("release.")
    }


@pytest.mark.parametrize("verb", release_commands.VERBS)
def test_each_release_verb_sits_under_the_policy_s_who_may(verb: str) -> None:
    found = [
        who
        for who, lines in release_groups().items()
        if any(line.startswith(f"• {RELEASE_SYNTAX[verb]}:") for line in lines)
    ]
    assert found == [policy.who_may(f"release.{verb}")], (verb, found)


def test_release_help_says_who_may_in_the_configured_name() -> None:
    groups = release_groups("/rel")
    assert list(groups) == [
        "the service's on-call or a member of its owners group",  # start, winner
        "anyone",  # status, list, help
    ]
    assert all(line.startswith("• `/rel ") for lines in groups.values() for line in lines)
    assert sum(len(lines) for lines in groups.values()) == len(release_commands.VERBS)


def test_release_help_follows_a_change_to_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not written by hand: were Tier 1 the on-call's alone, `start` and `winner` would say
    so, and nothing would name the owners group."""
    roles = {**policy.ROLES, 1: (Role.ON_CALL,)}
    monkeypatch.setattr(policy, "ROLES", MappingProxyType(roles))
    groups = release_groups()
    assert list(groups) == ["the service's on-call", "anyone"]
    assert [line.partition(": ")[0] for line in groups["the service's on-call"]] == [
        f"• {RELEASE_SYNTAX['start']}",
        f"• {RELEASE_SYNTAX['winner']}",
    ]
    assert "owners group" not in str(release.release_help()[1])
