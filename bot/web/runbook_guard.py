"""The runbook pages' guard: every check a request passes before a signed link acts, and
the refusals that say why not (as pages, never stack traces).

    check_token   the link verifies under a current key, for this service, not expired
    check_origin  the form came from this host or `server.public_url`
    check_csrf    the double-submit pair (cookie `rollbot_csrf` = form field = HMAC of nonce)
    read_form     a bounded, well-formed urlencoded body
    Refused       a refusal page: status, title, the template macro that explains it
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from bot.core import links
from bot.core.errors import (
    InvalidRequest,
    NotAuthorised,
    OutcomeUnknown,
    PermanentError,
    RollbotError,
    TargetNotFound,
    TemporaryError,
    UnknownService,
)

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = [
    "CSRF_COOKIE",
    "MAX_FORM_BYTES",
    "Done",
    "Refused",
    "check_csrf",
    "check_origin",
    "check_token",
    "error_refusal",
    "minutes",
    "read_form",
    "unexpected",
]

log = logging.getLogger(__name__)

CSRF_COOKIE = "rollbot_csrf"
MAX_FORM_BYTES = 8 * 1024


class Refused(Exception):
    """A request answered with an explanation page (never a stack trace).

    `why` names the macro of `templates/runbooks/refusals.html` that says why and what to
    do next, `facts` are its arguments (escaped where the template writes them)."""

    def __init__(
        self,
        status: int,
        title: str,
        why: str,
        facts: dict[str, Any] | None = None,
        *,
        reason: str | None = None,
        renew: links.LinkClaims | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.why, self.facts = status, title, why, facts or {}
        self.reason = reason  # counted as a refused link use when set
        self.renew, self.token = renew, token


@dataclass(frozen=True)
class Done:
    action: str
    status: str
    message: str
    at: datetime


def minutes(seconds: int) -> int:
    return max(1, round(seconds / 60))


def check_token(
    settings: Settings,
    keys: list[bytes],
    token: str | None,
    service: str,
    *,
    allow_expired: bool = False,
) -> links.LinkClaims:
    now = datetime.now(UTC)
    try:
        claims = links.verify(keys, token or "", now=now)
    except links.LinkError as err:
        if err.reason == "expired" and err.claims is not None:
            if allow_expired:
                claims = err.claims
            else:
                raise Refused(
                    410,
                    "This link has expired",
                    "expired",
                    {
                        "message": err.message,
                        "minutes": minutes(settings.server.link_ttl_seconds),
                    },
                    reason="expired",
                    renew=err.claims,
                    token=token,
                ) from None
        else:
            raise Refused(
                403,
                "This link is not valid",
                "invalid",
                {
                    "message": err.message,
                    "command": settings.slack.command,
                    "service": service,
                },
                reason=err.reason,
            ) from None
    if claims.service != service:
        raise Refused(
            403,
            "This link is for another service",
            "wrong_service",
            {
                "user_name": claims.user_name,
                "link_service": claims.service,
                "service": service,
                "token": token or "",
            },
            reason="wrong-service",
        )
    return claims


def check_origin(settings: Settings, request: Request) -> None:
    """The Origin (or Referer), when the browser sends one, is this host or
    `server.public_url`; `Origin: null` carries nothing to compare."""
    allowed = {f"{request.url.scheme}://{request.headers.get('host', '')}".lower()}
    public = settings.server.public_url
    if public:
        parts = urlsplit(public)
        allowed.add(f"{parts.scheme}://{parts.netloc}".lower())
    origin = request.headers.get("origin")
    seen: str | None = None
    if origin and origin != "null":
        seen = origin.lower().rstrip("/")
    elif request.headers.get("referer"):
        parts = urlsplit(request.headers["referer"])
        seen = f"{parts.scheme}://{parts.netloc}".lower()
    if seen is not None and seen not in allowed:
        raise Refused(
            403,
            "Refused: the form came from another site",
            "origin",
            {"seen": seen},
            reason="origin",
        )


def check_csrf(
    request: Request, keys: list[bytes], claims: links.LinkClaims, form: dict[str, str]
) -> None:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not links.csrf_ok(keys, claims.nonce, form.get("csrf"), cookie):
        raise Refused(
            403,
            "Refused: the page's security check failed",
            "csrf",
            {"service": claims.service, "token": form.get("token", "")},
            reason="csrf",
        )


async def read_form(request: Request) -> dict[str, str]:
    """An HTML form's fields (urlencoded, at most MAX_FORM_BYTES); first value of each."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Refused(415, "Not a form", "not_a_form")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise Refused(413, "Too large", "too_large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "Too large", "too_large")
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=16, keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "Unreadable form", "unreadable_form") from None
    return {key: values[0] for key, values in fields.items() if values}


def error_refusal(err: RollbotError) -> Refused:
    """A domain error from the responder, as a page: what happened, what to do next."""
    message = {"message": err.message}
    if isinstance(err, NotAuthorised):
        return Refused(403, "Not authorised", "error", message, reason="not-authorised")
    if isinstance(err, UnknownService | TargetNotFound):
        return Refused(404, "Not found", "error", message)
    if isinstance(err, OutcomeUnknown):
        return Refused(502, "Outcome unknown: look before trying again", "error", message)
    if isinstance(err, TemporaryError):
        return Refused(503, "Try again shortly", "error", {**message, "unchanged": True})
    if isinstance(err, InvalidRequest | PermanentError):
        return Refused(409, "Not done", "error", message)
    return Refused(500, "Not done", "error", message)


def unexpected(what: str) -> Refused:
    error_id = secrets.token_hex(4)
    log.exception("unexpected error %s handling %s on a runbook page", error_id, what)
    return Refused(500, "Something went wrong inside rollbot", "unexpected", {"error_id": error_id})
