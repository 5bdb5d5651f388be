"""HTML of the runbook pages: Jinja2 templates with autoescape, and what they are fed.

The templates live in the package (`bot/web/templates/runbooks/`, package data):

    base.html            the document: head, security meta, the inline stylesheet, footer
    runbook.html         a service's page: header, `top` block, the live panels, `actions`
                         block, rollback tiers, front matter, the rendered runbook
      page_readonly.html   … without a link (or with links off): how to get one
      page_signed.html     … with a signed link: whom it names, and the action forms
      page_outcome.html    … after an action (post/redirect/get): how it ended
      page_refused.html    … with a link that cannot be used: why, above the page
    refused.html         a refusal on its own (the POSTs: actions, renew)
    index.html, unknown.html (404), not_allowed.html (405), renew_sent.html
    parts.html           macros: banner, hidden field, action and renew forms, service list
    panels.html          macros: the Rollout, incident and flags panels, tiers, actions
    refusals.html        macros: one per refusal, saying why and what to do next

Autoescape is on for every template, so every value is escaped where it is written. The
one exception is HTML rendered from Markdown by `bot.core.markdown` (the runbook, the
tier reasons, responder messages), which that module has already made safe; it is marked
so in exactly one place (`_sanitised`). No scripts, no external assets: one inline
stylesheet allowed by a per-response CSP nonce, and `<details>` as the confirm step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from bot.core import markdown as md
from bot.core import tiers as core_tiers
from bot.core.flags import FlagStatus
from bot.core.model import FlagState, Incident, RolloutState

__all__ = [
    "ACTION_LABELS",
    "PageView",
    "mrkdwn_html",
    "render",
    "render_runbook",
    "security_headers",
    "templates",
]

ACTION_LABELS = {
    "abort": "Abort (Tier 1)",
    "circuit-open": "Open the circuit (Tier 2)",
    "circuit-close": "Close the circuit (Tier 2)",
}


def security_headers(style_nonce: str) -> dict[str, str]:
    """Headers on every runbook response."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{style_nonce}'; img-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
    }


# ── Markdown: the only HTML that is not escaped ────────────────────────────────────────


def _sanitised(rendered: str) -> Markup:
    # The one place a value is marked safe. `rendered` is always the output of
    # bot.core.markdown (render / inline), which escapes every piece of text and emits
    # only its allow-listed tags, attributes and URL schemes: it is HTML already, and
    # escaping it again would show its tags as text. Nothing else reaches this function.
    return Markup(rendered)


def render_runbook(document: str | md.Document) -> Markup:
    """A parsed runbook's body as the page shows it (markdown-it-py, then nh3's allow-list)."""
    return _sanitised(md.render(document, heading_offset=1))


def inline_html(text: str) -> Markup:
    """One line of rollbot's own Markdown (a tier's reason, a revert step) as HTML."""
    return _sanitised(md.inline(text))


_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_SUBTEAM = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|([^>]*))?>")
_EMOJI = re.compile(r":[a-z0-9_+\-]+:")


def mrkdwn_html(text: str, names: dict[str, str] | None = None) -> Markup:
    """A responder message (Slack mrkdwn) as safe HTML: mentions become names."""
    names = names or {}
    text = _MENTION.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = _SUBTEAM.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _EMOJI.sub("", text).strip()
    return _sanitised(md.message(text))  # emphasis and code; a quoted URL stays text


# ── what a service's page shows ────────────────────────────────────────────────────────


@dataclass
class PageView:
    """What a runbook page shows, read once per request."""

    service: str
    namespace: str
    rollout: str
    channel: str
    runbook_path: str | None
    runbook_html: Markup | None  # render_runbook(document)
    front_matter: str | None
    state: RolloutState | None
    state_error: str | None
    flags: list[FlagStatus]
    flags_error: str | None
    incident: Incident | None
    circuit_flag: str | None
    circuit_problem: str | None  # why Tier 2 cannot be flipped from here, or None
    tiers: list[Any]
    read_at: datetime

    @property
    def can_abort(self) -> bool:
        """A canary is in progress: the Abort form is offered."""
        return self.state is not None and core_tiers.canary_in_progress(self.state)

    @property
    def why_no_abort(self) -> str:
        if self.state is not None and self.state.aborted:
            return "already aborted: traffic is on the stable pods"
        return self.state_error or "no canary in progress: nothing to abort"

    @property
    def stable(self) -> str:
        """Where an abort sends the traffic."""
        revision = self.state.stable_revision if self.state is not None else None
        return f"stable revision {revision}" if revision is not None else "the stable pods"

    @property
    def circuit_on(self) -> bool | None:
        """Whether the circuit flag is on (None: its state is unknown)."""
        on: bool | None = None
        for status in self.flags:
            if status.info.role == "circuit" and isinstance(status.state, FlagState):
                on = status.state.enabled
        return on


# ── the environment ────────────────────────────────────────────────────────────────────


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, never blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["inline"] = inline_html
    env.filters["mrkdwn"] = mrkdwn_html
    env.tests["flag_state"] = lambda value: isinstance(value, FlagState)
    env.globals["ACTION_LABELS"] = ACTION_LABELS
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    style_nonce: str,
    status: int = 200,
) -> HTMLResponse:
    """`runbooks/{name}` as an HTML response with the security headers."""
    return templates.TemplateResponse(
        request,
        f"runbooks/{name}",
        {**context, "style_nonce": style_nonce},
        status_code=status,
        headers=security_headers(style_nonce),
    )
