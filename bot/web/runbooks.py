"""Runbook pages: GET /runbooks/{service}, and the signed-link actions on them (issue 6).

    GET  /runbooks/{service}              the runbook, the live Rollout, flags and incident;
                                          with ?token= (a signed link): buttons as well
    POST /runbooks/{service}/actions      token, csrf, action=abort|circuit-open|circuit-close
    POST /runbooks/{service}/renew        token, csrf: a fresh link to the same person (DM)

Anyone who reaches rollbot can read a runbook page (it holds no more than the runbook and
the Rollout's status). Acting needs a *signed link* (`bot.core.links`), issued to one named
responder, and handed to that person only: `/rollback SERVICE runbook` answers the asker
(ephemeral), whoever acknowledges the PagerDuty incident gets theirs as a Slack DM
(`send_runbook_link`; the incident's note only says one was sent), and so does a fresh
link (renew). It names the person, the service and an expiry
(`server.link_ttl_seconds`), and works once. A link proves who it was given to; it grants
nothing itself: the action runs through the same `Responder` as a Slack click, with
`Actor(user_id, user_name, source="runbook")`, so the on-call / owners policy decides.

A POST is accepted only when, in this order: the token verifies for this service and has
not expired; the Origin (or Referer), when the browser sends one, is this host or
`server.public_url` (`Origin: null`, which browsers send under `Referrer-Policy:
no-referrer`, carries nothing to compare and is left to the next check); the CSRF token is
the double-submit pair (cookie `rollbot_csrf`, HttpOnly, SameSite=Strict, set by the GET
page, equal to the form field and to `csrf_token(keys, nonce)`); the action fits the
moment (nothing to abort → refused, the link stays usable). Only then is the link's nonce
consumed, insert-once in the store (`runbook-link:{nonce}`), so a second POST with the same
token, on any replica, is refused (410) and executes nothing. A POST the responder
refuses (not on call, not in the owners group) gives the nonce back: the refusal is shown
(403) and audited, and the link works once its person may act. The answer is a 303 to
`GET /runbooks/{service}?done=ACTION&token=…` (post/redirect/get): the outcome and the
state after it.

Refusals are pages that say why: 403 for a token that is not ours (malformed, bad
signature), for another service, a failed CSRF or Origin check and a refused actor; 410
Gone for an expired or used link, with "Send me a fresh link in Slack" when the signature
is good (once per old link: `runbook-renew:{nonce}`). Every response carries
Content-Security-Policy (no scripts at all, styles by nonce, forms to self, no framing),
nosniff, `Referrer-Policy: no-referrer` (tokens are in URLs) and `Cache-Control: no-store`.
No external assets, no JavaScript: the confirm step is a `<details>` element. The HTML
is `bot.web.runbook_html`'s Jinja2 templates, autoescaped: a refusal names its template
macro (`Refused.why`) and hands it the facts, never HTML.

Links are signed with the first key of `server.link_secret` and accepted under any of its
keys (comma-separated, new first, while a key is rotated).

Links are absolute: `server.public_url` + path, and only that. Without `public_url` no
link is issued (the log says so once at start; the person is told where the link would
have gone: the DM, the slash command's reply, the renew page), and `rollbot check-config`
reports it when a link key is set. A link is never built from a request's `Host` header,
which anyone can forge. Tokens never reach a log line (`bot.runtime.log_redaction`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Route

from bot.actions import ActionRequest, ActionResult, FlagRequest
from bot.core import links
from bot.core import markdown as md
from bot.core import tiers as core_tiers
from bot.core.errors import (
    InvalidRequest,
    NotAuthorised,
    RollbotError,
)
from bot.core.flags import FlagStatus
from bot.core.model import (
    Actor,
    FlagAction,
    FlagState,
    RolloutAction,
    RolloutState,
)
from bot.runbooks.links import link_setup_problem, send_runbook_link
from bot.web import runbook_html as pages
from bot.web.runbook_deps import RunbookDeps
from bot.web.runbook_guard import (
    CSRF_COOKIE,
    Done,
    Refused,
    check_csrf,
    check_origin,
    check_token,
    error_refusal,
    read_form,
    unexpected,
)

if TYPE_CHECKING:
    pass

if TYPE_CHECKING:
    pass

__all__ = ["RunbookPages", "runbook_routes"]

log = logging.getLogger(__name__)

COOKIE_PATH = "/runbooks/"
LINK_NOTICE = "runbook-link:{nonce}"  # the single-use record of a link (store notices)
RENEW_NOTICE = "runbook-renew:{nonce}"  # one fresh link per old link
NOTICE_KIND = "runbook-link"
MAX_RUNBOOK_BYTES = 512 * 1024
READ_TIMEOUT = 5.0  # live state and flags: a slow provider never hangs the page
RESULTS_KEPT = 500  # outcomes kept in memory for the redirect after a POST

ACTIONS: dict[str, RolloutAction | FlagAction] = {
    "abort": RolloutAction.ABORT,
    "circuit-open": FlagAction.CIRCUIT_OPEN,
    "circuit-close": FlagAction.CIRCUIT_CLOSE,
}


# ── the routes ─────────────────────────────────────────────────────────────────────────


class RunbookPages:
    """The handlers; one per app, holding the outcomes for the redirect after a POST."""

    def __init__(self, deps: RunbookDeps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self._done: dict[str, Done] = {}

    # ── helpers ───────────────────────────────────────────────────────────────────────

    def _keys(self) -> list[bytes] | None:
        """The link keys, the one that signs first (None: links are off)."""
        return self.settings.server.link_keys() or None

    def _count(self, kind: str, status: int) -> None:
        metrics = self.deps.metrics
        metrics.runbook_requests.labels(kind, str(status)).inc()
        route = ROUTE_OF_KIND.get(kind, "/runbooks/{service}")
        metrics.http_requests.labels(route, str(status)).inc()

    def _respond(
        self,
        request: Request,
        kind: str,
        template: str,
        context: dict[str, Any],
        style_nonce: str,
        *,
        status: int = 200,
        csrf: str | None = None,
        ttl: float | None = None,
    ) -> Response:
        response = pages.render(
            request,
            template,
            {"command": self.settings.slack.command, **context},
            style_nonce=style_nonce,
            status=status,
        )
        if csrf is not None:
            response.set_cookie(
                CSRF_COOKIE,
                csrf,
                max_age=int(ttl or self.settings.server.link_ttl_seconds),
                path=COOKIE_PATH,
                secure=(self.settings.server.public_url or "").startswith("https:"),
                httponly=True,
                samesite="strict",
            )
        self._count(kind, status)
        return response

    async def _view(self, service: str) -> pages.PageView:
        cfg = self.deps.responder.service(service)
        responder = self.deps.responder
        runbook_html = front = None
        path = self.settings.runbook_path(service)
        if path is not None:
            try:
                text = await asyncio.to_thread(_read_capped, path)
                document = md.parse(text)
                front = document.front_matter
                runbook_html = pages.render_runbook(document)
            except OSError as err:
                log.warning("runbook of %s unreadable: %s", service, err)

        async def state() -> tuple[RolloutState | None, str | None]:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    current, _ = await responder.status(service)
                return current, None
            except RollbotError as err:
                return None, err.message
            except TimeoutError:
                return None, f"the Kubernetes API did not answer within {READ_TIMEOUT:.0f} s"

        async def flags() -> tuple[list[FlagStatus], str | None]:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    return await responder.flag_states(service), None
            except RollbotError as err:
                return [], err.message
            except TimeoutError:
                return [], f"the flag provider did not answer within {READ_TIMEOUT:.0f} s"

        (current, state_error), (flag_states, flags_error) = await asyncio.gather(state(), flags())
        circuit = cfg.flags.circuit if cfg.flags else None
        try:
            responder.circuit_flag(service)
            circuit_problem = None
        except InvalidRequest as err:
            circuit_problem = err.message
        incident = await self.deps.incidents.open_incident(service)
        tiers = core_tiers.tier_options(
            service=service,
            state=current,
            incident=incident,
            circuit_flag=circuit,
            circuit_available=circuit_problem is None,
            gitops_repo=cfg.gitops.repo,
            gitops_path=cfg.gitops.path,
            sha_annotation=cfg.gitops.sha_annotation,
            runbook_url=None,
            state_error=state_error,
            circuit_open=any(
                isinstance(f.state, FlagState) and f.state.key == circuit and f.state.enabled
                for f in flag_states
            ),
        )
        return pages.PageView(
            service=service,
            namespace=cfg.namespace,
            rollout=cfg.rollout,
            channel=cfg.channel,
            runbook_path=cfg.runbook,
            runbook_html=runbook_html,
            front_matter=front,
            state=current,
            state_error=state_error,
            flags=flag_states,
            flags_error=flags_error,
            incident=incident,
            circuit_flag=circuit,
            circuit_problem=circuit_problem,
            tiers=tiers,
            read_at=datetime.now(UTC),
        )

    async def index(self, request: Request) -> Response:
        """GET /runbooks: the services that have a page."""
        services = sorted(self.settings.services)
        return self._respond(
            request, "index", "index.html", {"services": services}, secrets.token_urlsafe(12)
        )

    async def not_found(self, request: Request) -> Response:
        """Any other GET under /runbooks/: the 404 page (with the security headers)."""
        return self._unknown(
            request, request.path_params.get("rest", ""), "page", secrets.token_urlsafe(12)
        )

    def method_not_allowed(self, request: Request, allow: list[str]) -> Response:
        """405: what this path takes instead (or the 404 page's advice when nothing)."""
        if not allow:
            allow = ["GET"]
        context = {"method": request.method[:16], "allow": allow}
        response = self._respond(
            request, "page", "not_allowed.html", context, secrets.token_urlsafe(12), status=405
        )
        response.headers["Allow"] = ", ".join(allow)
        return response

    def _unknown(self, request: Request, service: str, kind: str, nonce: str) -> Response:
        context = {"name": service[:80], "services": sorted(self.settings.services)}
        return self._respond(request, kind, "unknown.html", context, nonce, status=404)

    async def _used_at(self, nonce: str) -> datetime | None:
        """When the link with this nonce was used, or None (not used)."""
        return await self.deps.store.notice_sent_at(LINK_NOTICE.format(nonce=nonce))

    # ── GET /runbooks/{service} ────────────────────────────────────────────────────────

    async def page(self, request: Request) -> Response:
        style_nonce = secrets.token_urlsafe(12)
        service = request.path_params["service"]
        if service not in self.settings.services:
            return self._unknown(request, service, "page", style_nonce)
        try:
            return await self._page(request, service, style_nonce)
        except Exception:  # noqa: BLE001 - boundary: a page, never a stack trace; logged with an id
            return self._refusal_page(
                request, "page", unexpected("the page"), style_nonce, service=service
            )

    async def _page(self, request: Request, service: str, style_nonce: str) -> Response:
        token = request.query_params.get("token")
        done = request.query_params.get("done")
        view = await self._view(service)
        keys = self._keys()
        if token is None or keys is None:
            context = {"view": view, "links_off": token is not None}
            return self._respond(request, "page", "page_readonly.html", context, style_nonce)
        try:
            claims = check_token(
                self.settings, keys, token, service, allow_expired=done is not None
            )
            used_at = await self._used_at(claims.nonce)
            if done is not None and used_at is not None:
                outcome = await self._outcome(claims, done, used_at)
                context = {"view": view, "claims": claims, "used_at": used_at, **outcome}
                return self._respond(request, "result", "page_outcome.html", context, style_nonce)
            if claims.expired(datetime.now(UTC)):
                raise Refused(
                    410,
                    "This link has expired",
                    "expired_at",
                    {"expires_at": claims.expires_at},
                    reason="expired",
                    renew=claims,
                    token=token,
                )
            if used_at is not None:
                raise await self._used(claims, token)
        except Refused as refused:
            return self._refusal_page(
                request, "page", refused, style_nonce, service=service, view=view
            )
        csrf = links.csrf_token(keys, claims.nonce)
        remaining = (claims.expires_at - datetime.now(UTC)).total_seconds()
        return self._respond(
            request,
            "page",
            "page_signed.html",
            {"view": view, "claims": claims, "token": token, "csrf": csrf},
            style_nonce,
            csrf=csrf,
            ttl=max(60.0, remaining + 60),
        )

    async def _outcome(
        self, claims: links.LinkClaims, action: str, used_at: datetime
    ) -> dict[str, Any]:
        """What the result page says of the action this link ran: `label`, and `done`
        (how it ended, or None when neither this replica nor the audit log knows)."""
        done = self._done.get(claims.nonce)
        if done is None:
            done = await self._outcome_from_audit(claims, action)
        return {"label": pages.ACTION_LABELS.get(action, action), "done": done}

    async def _outcome_from_audit(self, claims: links.LinkClaims, action: str) -> Done | None:
        """Another replica ran the action: its audit entry says how it ended."""
        store = self.deps.store
        head, _ = await store.audit_head()
        prefix = f"runbook:{claims.user_id}:"
        for record in reversed(await store.audit_entries(since_seq=max(0, head - 200))):
            entry = record.entry
            if (
                entry.actor.startswith(prefix)
                and entry.action == action
                and entry.at >= claims.issued_at
            ):
                verified = (entry.detail.get("verification") or {}).get("ok")
                text = f"{action} on `{entry.target}`: {entry.result}" + (
                    " (verified)" if verified else ""
                )
                return Done(action, entry.result, text, entry.at)
        return None

    def _refusal_page(
        self,
        request: Request,
        kind: str,
        refused: Refused,
        style_nonce: str,
        *,
        service: str,
        view: pages.PageView | None = None,
    ) -> Response:
        if refused.reason is not None:
            self.deps.metrics.runbook_links_refused.labels(refused.reason).inc()
        keys = self._keys()
        csrf: str | None = None  # set: the signature was good, offer a fresh link
        if refused.renew is not None and refused.token and keys is not None:
            csrf = links.csrf_token(keys, refused.renew.nonce)
        context: dict[str, Any] = {"refused": refused, "renew_csrf": csrf, "service": service}
        template = "refused.html"
        if view is not None:
            context["view"] = view
            template = "page_refused.html"
        return self._respond(
            request, kind, template, context, style_nonce, status=refused.status, csrf=csrf
        )

    # ── POST /runbooks/{service}/actions ───────────────────────────────────────────────

    async def act(self, request: Request) -> Response:
        style_nonce = secrets.token_urlsafe(12)
        service = request.path_params["service"]
        if service not in self.settings.services:
            return self._unknown(request, service, "action", style_nonce)
        try:
            return await self._act(request, service)
        except Refused as refused:
            return self._refusal_page(request, "action", refused, style_nonce, service=service)
        except RollbotError as err:
            return self._refusal_page(
                request, "action", error_refusal(err), style_nonce, service=service
            )
        except Exception:  # noqa: BLE001 - boundary: a page, never a stack trace; logged with an id
            return self._refusal_page(
                request, "action", unexpected("an action"), style_nonce, service=service
            )

    async def _act(self, request: Request, service: str) -> Response:
        form = await read_form(request)
        keys = self._keys()
        if keys is None:
            raise Refused(403, "Signed links are off", "links_off", reason="disabled")
        token = form.get("token", "")
        claims = check_token(self.settings, keys, token, service)
        check_origin(self.settings, request)
        check_csrf(request, keys, claims, form)
        action = form.get("action", "")
        if action not in ACTIONS:
            raise Refused(400, "Unknown action", "unknown_action", {"action": action[:40]})
        if await self._used_at(claims.nonce) is not None:
            raise await self._used(claims, token)
        kind = ACTIONS[action]
        if isinstance(kind, RolloutAction):
            state, _ = await self.deps.responder.status(service)
            if not core_tiers.canary_in_progress(state):
                raise Refused(
                    409,
                    "Nothing to abort",
                    "nothing_to_abort",
                    {
                        "service": service,
                        "phase": state.phase,
                        "aborted": state.aborted,
                        "weight": state.canary_weight,
                    },
                )
        else:
            self.deps.responder.circuit_flag(service)  # InvalidRequest says why not

        notice = LINK_NOTICE.format(nonce=claims.nonce)
        if not await self.deps.store.mark_notice_sent(notice, release_id=NOTICE_KIND):
            raise await self._used(claims, token)  # lost a race with another POST
        actor = Actor(claims.user_id, claims.user_name, source="runbook")
        log.info(
            "runbook %s on %s by %s (%s)",
            action,
            service,
            claims.user_id,
            claims.user_name,
            extra={"service": service, "actor": claims.user_id, "action": action},
        )
        result: ActionResult
        try:
            if isinstance(kind, RolloutAction):
                result = await self.deps.responder.handle(ActionRequest(service, kind, actor))
            else:
                result = await self.deps.responder.handle_flag(FlagRequest(service, kind, actor))
        except NotAuthorised as err:
            # Refused before anything ran (the responder audited it): the link is not used
            # up, so its person can act with it once they may (on call, in the group).
            await self.deps.store.unmark_notice(notice)
            raise Refused(
                403,
                "Not authorised",
                "not_authorised_unused",
                {"message": err.message, "until": claims.expires_at},
                reason="not-authorised",
            ) from None
        self._remember(claims.nonce, Done(action, result.status, result.message, datetime.now(UTC)))
        location = f"/runbooks/{quote(service)}?done={quote(action)}&token={quote(token)}"
        response = RedirectResponse(
            location, status_code=303, headers=pages.security_headers(secrets.token_urlsafe(12))
        )
        self._count("action", 303)
        return response

    async def _used(self, claims: links.LinkClaims, token: str) -> Refused:
        return Refused(
            410,
            "This link was already used",
            "used",
            {"used_at": await self._used_at(claims.nonce)},
            reason="used",
            renew=claims,
            token=token,
        )

    def _remember(self, nonce: str, done: Done) -> None:
        self._done[nonce] = done
        while len(self._done) > RESULTS_KEPT:
            self._done.pop(next(iter(self._done)))

    # ── POST /runbooks/{service}/renew ─────────────────────────────────────────────────

    async def renew(self, request: Request) -> Response:
        style_nonce = secrets.token_urlsafe(12)
        service = request.path_params["service"]
        if service not in self.settings.services:
            return self._unknown(request, service, "renew", style_nonce)
        try:
            return await self._renew(request, service, style_nonce)
        except Refused as refused:
            return self._refusal_page(request, "renew", refused, style_nonce, service=service)
        except RollbotError as err:
            return self._refusal_page(
                request, "renew", error_refusal(err), style_nonce, service=service
            )
        except Exception:  # noqa: BLE001 - boundary: a page, never a stack trace; logged with an id
            return self._refusal_page(
                request, "renew", unexpected("a fresh link"), style_nonce, service=service
            )

    async def _renew(self, request: Request, service: str, style_nonce: str) -> Response:
        form = await read_form(request)
        keys = self._keys()
        if keys is None:
            raise Refused(403, "Signed links are off", "no_link_key")
        claims = check_token(self.settings, keys, form.get("token"), service, allow_expired=True)
        check_origin(self.settings, request)
        check_csrf(request, keys, claims, form)
        problem = link_setup_problem(self.settings)
        if problem is not None:  # no public_url: never a link built from this request's Host
            raise Refused(
                409, "No fresh link", "not_set_up", {"problem": problem}, reason="not-set-up"
            )
        notice = RENEW_NOTICE.format(nonce=claims.nonce)
        store = self.deps.store
        if not await store.mark_notice_sent(notice, release_id=NOTICE_KIND):
            raise Refused(
                410,
                "A fresh link was already sent",
                "renew_used",
                {
                    "user_name": claims.user_name,
                    "command": self.settings.slack.command,
                    "service": service,
                },
                reason="renew-used",
            )
        try:
            link = await send_runbook_link(
                self.settings,
                self.deps.chat,
                service,
                claims.user_id,
                claims.user_name,
                why="You asked for a fresh link on the runbook page. ",
            )
            if link is None:  # the settings changed since the check above
                raise InvalidRequest(link_setup_problem(self.settings) or "No link was issued.")
        except BaseException:
            await store.unmark_notice(notice)  # not sent: the old link may ask again
            raise
        context = {
            "service": service,
            "user_name": claims.user_name,
            "expires_at": link.expires_at,
        }
        return self._respond(request, "renew", "renew_sent.html", context, style_nonce)


ROUTE_OF_KIND = {
    "index": "/runbooks",
    "action": "/runbooks/{service}/actions",
    "renew": "/runbooks/{service}/renew",
}


def _read_capped(path: Any) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(MAX_RUNBOOK_BYTES)


def runbook_routes(deps: RunbookDeps) -> list[BaseRoute]:
    """The runbook pages' routes."""
    web = RunbookPages(deps)
    problem = link_setup_problem(deps.settings)
    if problem is not None and deps.settings.server.link_secret is not None:
        # Said once here; each person who would have had a link is told where it would
        # have gone (their DM, the slash command's reply, the renew page).
        log.warning("%s No signed links will be issued.", problem)
    handlers: list[tuple[str, Callable[[Request], Awaitable[Response]], str]] = [
        ("/runbooks", web.index, "GET"),
        ("/runbooks/", web.index, "GET"),
        ("/runbooks/{service}", web.page, "GET"),
        ("/runbooks/{service}/actions", web.act, "POST"),
        ("/runbooks/{service}/renew", web.renew, "POST"),
        ("/runbooks/{rest:path}", web.not_found, "GET"),
    ]
    routes = [Route(path, handler, methods=[method]) for path, handler, method in handlers]
    specific = routes[:-1]  # not the catch-all 404

    async def not_allowed(request: Request) -> Response:
        """A method no route under /runbooks takes for this path: 405 with `Allow`, as a
        page with the same security headers (Starlette's own 405 has none)."""
        allow = sorted(
            {
                method
                for route in specific
                if route.matches(request.scope)[0] is not Match.NONE
                for method in route.methods or ()
            }
        )
        return web.method_not_allowed(request, allow)

    catch_all = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    routes.append(Route("/runbooks/{rest:path}", not_allowed, methods=catch_all))
    routes.append(Route("/runbooks", not_allowed, methods=catch_all))
    return list[BaseRoute](routes)
