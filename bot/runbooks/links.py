"""Signed runbook links, issued to one named responder and handed to that person only.

A link (`bot.core.links`: the claims, signing with rotating keys, expiry) opens the service's
runbook page with its buttons (`bot.web.runbooks`). This module is the service that issues
them: `/rollback SERVICE runbook` answers the asker with one (`slack_link_issuer`), and
whoever acknowledges a PagerDuty incident gets theirs as a Slack DM (`send_runbook_link`).

Links are absolute: `server.public_url` + path, and only that. A link is never built from a
request's `Host` header, which anyone can forge. Without `public_url` or a link key no link
is issued, and the person is told what is missing where the link would have gone.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.core import links
from bot.core.errors import InvalidRequest, UnknownService

if TYPE_CHECKING:
    from bot.core.ports import Chat
    from bot.settings import Settings

__all__ = [
    "issue_link",
    "issue_runbook_link",
    "link_setup_problem",
    "send_runbook_link",
    "slack_link_issuer",
]


def link_setup_problem(settings: Settings) -> str | None:
    """Why signed links cannot be issued with these settings, or None when they can.

    Both are needed: the key that signs, and `server.public_url`, the one base a link is
    built on. A link is never built from a request's `Host` header: anyone can send one,
    and a link to their host would hand them the token."""
    missing = []
    if settings.server.link_secret is None:
        missing.append("a link key (`ROLLBOT_SERVER__LINK_SECRET`)")
    if not settings.server.public_url:
        missing.append("the URL people reach rollbot at (`server.public_url`)")
    if not missing:
        return None
    return (
        "Signed runbook links are not set up on this rollbot: it needs "
        + " and ".join(missing)
        + ". Until then the runbook pages are read-only."
    )


def issue_link(
    settings: Settings,
    service: str,
    user_id: str,
    user_name: str,
    *,
    now: datetime | None = None,
) -> links.IssuedLink:
    """A signed, single-use link to `service`'s runbook page for one named responder,
    at `server.public_url`.

    Raises UnknownService (not in the catalog) or InvalidRequest (links not set up, saying
    what is missing)."""
    if service not in settings.services:
        raise UnknownService(service, settings.services)
    problem = link_setup_problem(settings)
    keys = settings.server.link_keys()
    base = settings.server.public_url
    if problem is not None or not keys or not base:
        raise InvalidRequest(problem or "Signed runbook links are not set up.")
    issued_at = now or datetime.now(UTC)
    ttl = timedelta(seconds=settings.server.link_ttl_seconds)
    token = links.issue(
        keys,
        service=service,
        user_id=user_id,
        user_name=user_name or user_id,
        issued_at=issued_at,
        ttl=ttl,
        nonce=secrets.token_urlsafe(18),
    )
    return links.IssuedLink(
        url=links.runbook_url(base, service, token),
        service=service,
        user_id=user_id,
        user_name=user_name or user_id,
        expires_at=links.expiry(issued_at, ttl),
        ttl=ttl,
    )


def issue_runbook_link(
    settings: Settings,
    service: str,
    user_id: str,
    user_name: str,
    now: datetime | None = None,
) -> str | None:
    """The URL of a signed, single-use runbook link for the named responder (Slack user
    id), or None when links are not set up (no `server.link_secret` or `public_url`) or the
    service is unknown. The caller hands it to that person only."""
    try:
        return issue_link(settings, service, user_id, user_name, now=now).url
    except (InvalidRequest, UnknownService):
        return None


def slack_link_issuer(settings: Settings) -> Callable[[str, str, str], links.IssuedLink]:
    """`/rollback SERVICE runbook`: (service, user id, name) → the link, or InvalidRequest
    saying what is not set up. Reads the settings at each call. The command answers the
    asker only (an ephemeral reply)."""

    def issue(service: str, user_id: str, user_name: str) -> links.IssuedLink:
        return issue_link(settings, service, user_id, user_name)

    return issue


async def send_runbook_link(
    settings: Settings,
    chat: Chat,
    service: str,
    user_id: str,
    user_name: str,
    why: str = "",
) -> links.IssuedLink | None:
    """Issue a link and hand it to its person only: a Slack direct message
    (chat.postMessage with their user id as the channel posts in the app's DM with them).
    Never a channel, a thread or an incident note: everyone there could act as that person.

    No link key: links are off by choice; None, nothing sent. A key but no
    `server.public_url`: no link (it is never built from a request's Host); the person is
    told why in the DM, where the link would have gone; None. Raises UnknownService, or
    the chat's error when the DM could not be sent."""
    if settings.server.link_secret is None:
        return None
    problem = link_setup_problem(settings)
    if problem is not None:
        await chat.post(user_id, text=f":warning: {why}No signed runbook link for you: {problem}")
        return None
    link = issue_link(settings, service, user_id, user_name)
    await chat.post(user_id, text=links.message(link, why=why))
    return link
