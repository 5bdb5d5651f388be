"""Who may do what: pure decisions, explained.

For now (Tier 1 only) the rule is the catalog's: when a service names an owners usergroup,
only its members may act on the service's Rollout; when it names none, anyone in the
workspace may. Every refusal says who may act instead, so a refused responder knows whom
to call at 2 a.m.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bot.core.model import Actor, RolloutAction

# Reading state is never restricted; changing it is.
READ_ONLY: frozenset[str] = frozenset({"status", "help"})


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


def authorise(
    *,
    actor: Actor,
    service: str,
    action: RolloutAction | str,
    owners_usergroup: str | None,
    usergroup_members: Collection[str] | None,
) -> Decision:
    """Decide whether `actor` may perform `action` on `service`.

    `usergroup_members` is None when the members could not be read; with an owners group
    configured that is a refusal (fail closed), never an allowance.
    """
    verb = str(action)
    if verb in READ_ONLY:
        return Decision(True, "reading state is open to everyone")
    if not owners_usergroup:
        return Decision(True, f"{service} has no owners group configured: anyone may act")
    group = f"<!subteam^{owners_usergroup}>"
    if usergroup_members is None:
        return Decision(
            False,
            f"Could not read the members of {group}, so {verb} on {service} is refused "
            f"(rollbot fails closed). Members of {group} may {verb} once Slack answers.",
        )
    if actor.id in usergroup_members:
        return Decision(True, f"<@{actor.id}> is a member of {group}")
    return Decision(
        False,
        f"<@{actor.id}> may not {verb} {service}: only members of {group} may. "
        f"Ask one of them, or the service's on-call.",
    )
