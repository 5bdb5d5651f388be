"""Parsing `/rollback` command text.

    /rollback help
    /rollback SERVICE                  → status
    /rollback SERVICE status|abort|retry|promote|promote-full|pause|help
    /rollback SERVICE circuit open|close      (Tier 2: the circuit-breaker flag)
    /rollback SERVICE circuit open break-glass REASON…   (owners not on call; loud, audited)
    /rollback SERVICE flags                   (the service's flags and their live states)
    /rollback SERVICE runbook                 (a signed, single-use link to its runbook page)
    /rollback SERVICE ack                     (acknowledge its PagerDuty incident)

Verbs are case-insensitive; `promote --full`, `promote full` and `promote_full` are
accepted as `promote-full` (people type what the kubectl plugin taught them). Anything
else is an `InvalidRequest` whose message is the usage, so the user learns the syntax
from the error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.errors import InvalidRequest
from bot.core.model import FlagAction, RolloutAction

VERBS: tuple[str, ...] = (
    "status",
    "help",
    "flags",
    "runbook",
    "ack",
    *(a.value for a in RolloutAction),
    *(a.value for a in FlagAction),
)
_SERVICE_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_ALIASES = {
    "promote_full": "promote-full",
    "promotefull": "promote-full",
    "promote --full": "promote-full",
    "promote full": "promote-full",
    "get": "status",
    "show": "status",
    "circuit open": "circuit-open",
    "circuit close": "circuit-close",
    "circuit-open": "circuit-open",
    "circuit-close": "circuit-close",
    "open circuit": "circuit-open",
    "close circuit": "circuit-close",
    "flag": "flags",
    "link": "runbook",
    "runbook link": "runbook",
    "page": "runbook",
    "acknowledge": "ack",
}


def usage(command: str = "/rollback") -> str:
    return (
        f"Usage: `{command} SERVICE [status|abort|retry|promote|promote-full|pause|flags|"
        f"runbook|ack]`, `{command} SERVICE circuit open|close` or `{command} help`."
    )


@dataclass(frozen=True, slots=True)
class Command:
    verb: str  # "help", "status", "flags", "runbook", a RolloutAction or a FlagAction value
    service: str | None
    break_glass: str | None = None  # the reason given after `break-glass`

    @property
    def action(self) -> RolloutAction | None:
        try:
            return RolloutAction(self.verb)
        except ValueError:
            return None

    @property
    def flag_action(self) -> FlagAction | None:
        try:
            return FlagAction(self.verb)
        except ValueError:
            return None


def parse(text: str, *, command: str = "/rollback") -> Command:
    words = text.split()
    if not words or (len(words) == 1 and words[0].lower() in ("help", "-h", "--help")):
        return Command("help", None)
    service, rest = words[0].lower(), " ".join(words[1:]).lower()
    reason: str | None = None
    if " break-glass" in f" {rest}":
        head, _, _ = rest.partition("break-glass")
        original = " ".join(words[1:])
        reason = original[original.lower().index("break-glass") + len("break-glass") :].strip()
        rest = head.strip()
        if not reason:
            raise InvalidRequest(
                f"break-glass needs a reason: `{command} {service} {rest} break-glass "
                f"<why, in a few words>`."
            )
    if not _SERVICE_RE.match(service):
        shown = words[0][:64]
        raise InvalidRequest(f"`{shown}` is not a service name. {usage(command)}")
    verb = _ALIASES.get(rest, rest) or "status"
    if verb not in VERBS:
        shown = " ".join(words[1:])[:64]
        raise InvalidRequest(f"Unknown action `{shown}` for `{service}`. {usage(command)}")
    if reason is not None and verb not in {a.value for a in FlagAction}:
        raise InvalidRequest(
            f"break-glass applies to the circuit breaker only (`{command} {service} circuit "
            f"open break-glass <reason>`); {verb} needs no override."
        )
    return Command(verb, service, reason[:500] if reason else None)
