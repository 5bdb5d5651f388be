"""Typed errors that say what to do next.

    RollbotError                 anything rollbot reports to a person
    ├── OutcomeUnknown           an action was under way when something failed: it may or
    │                            may not have taken effect; look before trying again
    ├── PermanentError           retrying will not help; tell the user what to change
    │   ├── UnknownService       not in the catalog (lists the known ones)
    │   ├── TargetNotFound       the Rollout is not in the cluster (says namespace/name)
    │   ├── NotAuthorised        the actor may not do this (says who may)
    │   ├── Forbidden            the outside service refused rollbot's own credentials (403)
    │   ├── FlipNotApplied       a flag provider accepted a flip that does not read back
    │   └── InvalidRequest       the request itself is malformed (says what is wrong)
    └── TemporaryError           try again later (`delay` seconds, when known)
        └── Unreachable          the outside service could not be reached or answered 5xx

Adapters translate HTTP statuses and SDK exceptions into these; the Slack error handler
and the web layer map them to messages and status codes. Nothing else catches broadly.
"""

from __future__ import annotations

from collections.abc import Iterable


class RollbotError(Exception):
    """Base of every error rollbot explains to a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentError(RollbotError):
    pass


class OutcomeUnknown(RollbotError):
    """An action was claimed and possibly sent, then something failed before its effect was
    verified. Unlike a TemporaryError, retrying blindly is not safe (a promote may advance
    twice), so the message tells the person to look first."""


class TemporaryError(RollbotError):
    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Unreachable(TemporaryError):
    def __init__(self, service: str, detail: str, *, delay: float | None = None) -> None:
        super().__init__(f"{service} is unreachable: {detail}", delay=delay)
        self.service = service
        self.detail = detail


class UnknownService(PermanentError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(f"`{k}`" for k in self.known) or "(none configured)"
        super().__init__(f"Unknown service `{name}`. Known services: {listed}.")


class TargetNotFound(PermanentError):
    def __init__(self, kind: str, namespace: str, name: str) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        super().__init__(f"{kind} `{name}` not found in namespace `{namespace}`.")


class NotAuthorised(PermanentError):
    """`break_glass_possible`: the refusal is only for want of break-glass (policy rule 5),
    so asking again with a reason would be allowed."""

    def __init__(
        self, message: str, *, allowed: str = "", break_glass_possible: bool = False
    ) -> None:
        super().__init__(message)
        self.allowed = allowed
        self.break_glass_possible = break_glass_possible


class Forbidden(PermanentError):
    def __init__(self, service: str, detail: str) -> None:
        self.service, self.detail = service, detail
        super().__init__(f"{service} refused rollbot's credentials (403): {detail}")


class InvalidRequest(PermanentError):
    pass


class FlipNotApplied(PermanentError):
    """A flag provider accepted the flip (2xx) but reading the flag back shows the other
    state: something else decides it (a concurrent change, an approval or change-request
    workflow, a proxy answering for the provider). Reported as failed, never as done."""

    def __init__(
        self, *, provider: str, key: str, project: str, environment: str, wanted: bool
    ) -> None:
        self.provider, self.key, self.project = provider, key, project
        self.environment, self.wanted = environment, wanted
        want, seen = ("on", "off") if wanted else ("off", "on")
        super().__init__(
            f"{provider} accepted turning `{key}` {want} in `{project}/{environment}`, but "
            f"reading it back shows it {seen}: NOT done. Look at the flag in {provider} (a "
            f"change request, a concurrent change or a proxy may have decided otherwise)."
        )
