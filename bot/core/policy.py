"""Who may do what: pure decisions, explained.

The inputs are the actor, the service's catalog entry (its owners usergroup and its
PagerDuty escalation policy), the action, who is on call now (Slack user ids, already
mapped from PagerDuty by the caller) and whether the actor asked for break-glass.

Actions come in three kinds:

    read      status, help, flags, runbook,                  never restricted
              release.status, release.list, release.help
    Tier 1    abort, retry, promote, promote-full, pause     Rollout commands
    Tier 2    circuit-open, circuit-close                    the ops flag (circuit breaker)

Recording a Tier 3 revert (`revert`: someone says they started reverting the release in
Git) is guarded like the Tier 1 commands: the on-call or the owners group. So are three
more actions that change no Rollout (`TIER1_GUARDED`):

    ack             acknowledge the service's PagerDuty incident (it stops the escalation)
    release.start   start a release from Slack (files its cleanup tickets in Jira)
    release.winner  declare the experiment's winner (dates the experiment flag's removal)

(`rollbot release start` from CI is not asked: it runs with the database credentials, so
whoever runs it is already trusted.)

Any other verb is treated as Tier 2 (the strictest), so a new action is never more open
than the circuit breaker until someone decides otherwise.

Who may do each tier is one table, `ROLES` (tier → the roles allowed, in the usual case: a
service with an escalation policy and an owners group); `authorise` reads it for rules 1,
3, 4 and 5, and the `/rollback help` and `/release help` texts are built from it
(`who_may`), so the help cannot say anything the policy does not do. `VERBS` lists every
verb, reading ones included.

The rules, first match wins:

 1. Reading is open to everyone.
 2. A service with neither an escalation policy nor an owners group: anyone may act.
 3. The person on call for the service's escalation policy may do any action (Tier 1 and 2),
    even when the owners group cannot be read.
 4. Members of the owners group may do Tier 1 actions.
 5. Tier 2 is for the on-call only. A member of the owners group who is not on call may
    flip it only through break-glass, and break-glass needs a reason (an empty reason is
    refused, saying a reason is required). Break-glass is for the owners group only:
    anyone else asking for it is refused. Asking for break-glass when it is not needed
    (the actor is allowed anyway) is no error: the decision says so and is not marked
    `break_glass`. The two refusals of this rule (no break-glass asked, or no reason
    given) are marked `break_glass_possible`: only there would break-glass help, so only
    there does the card offer it.
 6. When on-call data is unavailable (PagerDuty down: `on_call=None`, with
    `on_call_error`), rollbot falls back to the owners group: its members may do every
    action, Tier 2 included, and the reason says "PagerDuty unavailable (<error>): fell
    back to the owners group". Without an owners group nobody can be confirmed, so the
    action is refused (fail closed).
 7. A service with an owners group but no escalation policy has nobody on call to defer
    to: the owners group may do every action, Tier 2 included.
 8. When the owners group is configured but its members cannot be read, only a confirmed
    on-call may act (rule 3); everyone else is refused (fail closed).

Every refusal names who may act instead: the on-call as `<@U…>` when known, and the owners
group as `<!subteam^S…>`, so a refused responder knows whom to call at 2 a.m. A reason is
Slack mrkdwn: the words that come from elsewhere in it (PagerDuty's error, the break-glass
reason a person typed) are escaped (`bot.core.mrkdwn`), so they never mention or link.

Callers that pass no on-call data (no `escalation_policy`) get the Tier 1 behaviour of the
owners group alone: members may act, others are refused, no group means anyone may.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bot.core import mrkdwn
from bot.core.model import Actor, RolloutAction

# Reading state is never restricted; changing it is. (`flags` and `runbook` answer the asker
# alone; the `/release` reads are the release verbs' siblings.)
READ_ONLY: frozenset[str] = frozenset(
    {"status", "help", "flags", "runbook", "release.status", "release.list", "release.help"}
)
TIER1: frozenset[str] = frozenset(a.value for a in RolloutAction)
TIER2: frozenset[str] = frozenset({"circuit-open", "circuit-close"})
# Tier 3 is done in Git; rollbot only records that it was started, with Tier 1's guard.
REVERT = "revert"
# Not Rollout commands, but guarded like them (the on-call or the owners group). The release
# verbs are the audit log's, so a refusal and a success are filed under one action.
ACKNOWLEDGE = "ack"
RELEASE_START = "release.start"
RELEASE_WINNER = "release.winner"
TIER1_GUARDED: frozenset[str] = frozenset({REVERT, ACKNOWLEDGE, RELEASE_START, RELEASE_WINNER})

# Every verb, reading first, then by tier (the order the help lists them in).
VERBS: tuple[str, ...] = (
    "status",
    "flags",
    "runbook",
    "help",
    "release.status",
    "release.list",
    "release.help",
    *(a.value for a in RolloutAction),
    ACKNOWLEDGE,
    REVERT,
    RELEASE_START,
    RELEASE_WINNER,
    "circuit-open",
    "circuit-close",
)


class Role(enum.StrEnum):
    """Who may act, as rules 1 and 3–5 name them."""

    ANYONE = "anyone"
    ON_CALL = "on-call"  # on call now for the service's escalation policy
    OWNERS = "owners"  # a member of the service's owners group
    OWNERS_BREAK_GLASS = "owners-break-glass"  # a member, through break-glass with a reason


# Tier → who may: the one table both `authorise` and the help read.
ROLES: Mapping[int, tuple[Role, ...]] = MappingProxyType(
    {
        0: (Role.ANYONE,),
        1: (Role.ON_CALL, Role.OWNERS),
        2: (Role.ON_CALL, Role.OWNERS_BREAK_GLASS),
    }
)

ROLE_WORDS: Mapping[Role, str] = MappingProxyType(
    {
        Role.ANYONE: "anyone",
        Role.ON_CALL: "the service's on-call",
        Role.OWNERS: "a member of its owners group",
        Role.OWNERS_BREAK_GLASS: "a member of its owners group through break-glass, with a reason",
    }
)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    break_glass: bool = False  # True only when break-glass is what allowed the action
    # True only on a refusal that break-glass with a reason would turn into an allowance
    # (rule 5: an owner, not on call, Tier 2): the card offers its break-glass modal then.
    break_glass_possible: bool = False


def tier_of(action: RolloutAction | str) -> int:
    """0 for reading, 1 for Rollout commands (and `TIER1_GUARDED`: recording a revert,
    acknowledging the page, starting a release, declaring a winner), 2 for the circuit
    breaker (and unknown verbs)."""
    verb = str(action)
    if verb in READ_ONLY:
        return 0
    if verb in TIER1 or verb in TIER1_GUARDED:
        return 1
    return 2


def roles(action: RolloutAction | str) -> tuple[Role, ...]:
    """Who may do `action` (the `ROLES` of its tier)."""
    return ROLES[tier_of(action)]


def who_may(action: RolloutAction | str) -> str:
    """`roles(action)` in plain words, for the help: `the service's on-call or a member of
    its owners group`."""
    return " or ".join(ROLE_WORDS[role] for role in roles(action))


def authorise(
    *,
    actor: Actor,
    service: str,
    action: RolloutAction | str,
    owners_usergroup: str | None,
    usergroup_members: Collection[str] | None,
    escalation_policy: str | None = None,
    on_call: Collection[str] | None = None,
    on_call_error: str | None = None,
    break_glass: bool = False,
    break_glass_reason: str = "",
) -> Decision:
    """Decide whether `actor` may perform `action` on `service` (see the module's rules).

    `usergroup_members` is None when the members could not be read; with an owners group
    configured that is never an allowance (fail closed). `on_call` holds the Slack user ids
    of the people on call now for `escalation_policy`; None means PagerDuty could not be
    asked (`on_call_error` says why). `on_call` is ignored without `escalation_policy`.
    """
    verb = str(action)
    allowed = roles(verb)
    if Role.ANYONE in allowed:
        return Decision(True, "reading state is open to everyone")
    if not owners_usergroup and not escalation_policy:
        return Decision(
            True,
            f"{service} has neither an escalation policy nor an owners group configured: "
            f"anyone may act{_not_needed(break_glass)}",
        )

    group = f"<!subteam^{owners_usergroup}>" if owners_usergroup else None
    on_call_known = bool(escalation_policy) and on_call is not None
    oncall_ids = sorted(on_call or ()) if on_call_known else []
    member: bool | None = None  # None: unknown (no group, or unreadable)
    if owners_usergroup and usergroup_members is not None:
        member = actor.id in usergroup_members
    who = f"<@{actor.id}>"

    # 3. the on-call may do anything
    if on_call_known and actor.id in oncall_ids and Role.ON_CALL in allowed:
        return Decision(
            True,
            f"{who} is on call for {service} (escalation policy {escalation_policy})"
            f"{_not_needed(break_glass)}",
        )

    # 6. PagerDuty unavailable: fall back to the owners group
    if escalation_policy and not on_call_known:
        prefix = (
            f"PagerDuty unavailable ({mrkdwn.escape(on_call_error or 'no on-call data')}): "
            f"fell back to the owners group"
        )
        if group is None:
            return Decision(
                False,
                f"{prefix}, but {service} has none configured, so nobody can be confirmed "
                f"to {verb} {service} (rollbot fails closed). Try again once PagerDuty "
                f"answers, or ask the service's on-call to act from PagerDuty.",
            )
        if member is None:
            return Decision(
                False,
                f"{prefix}, and the members of {group} could not be read either, so "
                f"{verb} on {service} is refused (rollbot fails closed). Members of {group} "
                f"may {verb} once Slack or PagerDuty answers.",
            )
        if member:
            return Decision(
                True, f"{prefix}: {who} is a member of {group}{_not_needed(break_glass)}"
            )
        return Decision(
            False,
            f"{prefix}: {who} may not {verb} {service}, only members of {group} may. "
            f"Ask one of them.",
        )

    instead = _who_may_instead(oncall_ids, group, allowed, escalation_policy)

    # 8. owners group unreadable: only a confirmed on-call may act
    if group is not None and member is None:
        return Decision(
            False,
            f"Could not read the members of {group}, so {verb} on {service} is refused "
            f"for {who} (rollbot fails closed). {instead}",
        )

    if member:
        # 4 and 7: owners may do Tier 1, and Tier 2 when nobody is on call to defer to
        if Role.OWNERS in allowed:
            return Decision(True, f"{who} is a member of {group}{_not_needed(break_glass)}")
        if not escalation_policy:
            return Decision(
                True,
                f"{who} is a member of {group}, and {service} has no escalation policy: "
                f"the owners group may {verb}{_not_needed(break_glass)}",
            )
        # 5. Tier 2 for an owner who is not on call: break-glass only
        if not break_glass:
            return Decision(
                False,
                f"<@{actor.id}> may not {verb} {service} without break-glass: {verb} is "
                f"for the on-call only. {instead}",
                break_glass_possible=True,
            )
        if not break_glass_reason.strip():
            return Decision(
                False,
                f"Break-glass on {service} requires a reason: say why {verb} cannot wait "
                f"for the on-call. {instead}",
                break_glass_possible=True,
            )
        return Decision(
            True,
            f"break-glass: {who} (a member of {group}, not on call) may {verb} {service}; "
            f"reason given: {mrkdwn.escape(break_glass_reason.strip())}",
            break_glass=True,
        )

    # not on call, not an owner (or no owners group)
    if break_glass:
        if group is None:
            why = f"{service} has no owners group, so break-glass is not available"
        else:
            why = f"break-glass is for members of {group} only"
        return Decision(False, f"{who} may not {verb} {service}: {why}. {instead}")
    return Decision(False, f"{who} may not {verb} {service}. {instead}")


def _not_needed(break_glass: bool) -> str:
    return " (break-glass not needed)" if break_glass else ""


def _who_may_instead(
    on_call: list[str], group: str | None, allowed: tuple[Role, ...], escalation_policy: str | None
) -> str:
    """The sentence a refusal ends with: whom to ask instead."""
    if on_call:
        people = ", ".join(f"<@{u}>" for u in on_call)
        oncall = f"the on-call ({people})"
    elif escalation_policy:
        oncall = (
            f"the on-call of escalation policy {escalation_policy} (nobody on call could be "
            f"matched to a Slack user)"
        )
    else:
        oncall = ""
    if Role.OWNERS in allowed:
        parts = [p for p in (oncall, f"a member of {group}" if group else "") if p]
        return f"Ask {' or '.join(parts)}." if parts else "Nobody may."
    if group and oncall:
        return f"Ask {oncall}; members of {group} may use break-glass with a reason."
    if oncall:
        return f"Ask {oncall}."
    if group:
        return f"Members of {group} may use break-glass with a reason."
    return "Nobody may."
