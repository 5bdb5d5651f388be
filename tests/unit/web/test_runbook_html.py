"""bot.web.runbook_html: the runbook pages' Jinja2 templates escape every value they show.

Each templated field is given its own hostile marker (`<script>FIELD</script>`), and the
page must show that marker escaped (`&lt;script&gt;FIELD&lt;/script&gt;`: the field was
rendered, as text) while `<script` never appears raw.

Aspects under test:
- a service's page, in each of its shapes (live Rollout or its read error, flags or their
  read error, an incident, a runbook or its missing path, the circuit flag or why it
  cannot be flipped): the service, Rollout and namespace names, the channel, Rollout and
  analysis messages, phase, pause reasons and image from Kubernetes, flag keys, types,
  environments and providers and the reason a flag's state is unknown, incident
  summaries, tier titles, reasons and steps, the front matter, the runbook path, the
  error texts;
- a signed page: the user name and id from the link's claims, and the token and CSRF
  values inside the form's attributes (no attribute break-out);
- the outcome page: the action from the query string, the responder's message, the name;
- every refusal macro of `refusals.html`, on its own page and above the read-only page,
  with every fact hostile; the fresh-link button only when a CSRF token is given for it;
- the index, 404 (the name from the URL path), 405 (method, Allow) and fresh-link pages;
- rendered Markdown is the one value not escaped again: the runbook's tags stay tags,
  and the raw HTML inside it was already escaped by the Markdown renderer;
- autoescape is on for every template, and the templates load from the package;
- the response carries the security headers and the status it was given.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import jinja2
import pytest
from starlette.requests import Request

from bot.core.flags import FlagInfo, FlagStatus
from bot.core.links import LinkClaims
from bot.core.model import (
    AnalysisStatus,
    FlagState,
    Incident,
    IncidentState,
    RolloutState,
    Tier,
    TierOption,
)
from bot.web import runbook_html as pages

T = datetime(2026, 11, 22, 2, 3, 4, tzinfo=UTC)
REQUEST = Request({"type": "http", "method": "GET", "path": "/runbooks/x", "headers": []})


def bad(field: str) -> str:
    """The hostile value of one field."""
    return f"<script>{field}</script>"


def shown(field: str) -> str:
    """How that value must appear: escaped, as text."""
    return f"&lt;script&gt;{field}&lt;/script&gt;"


def in_url(field: str) -> str:
    """How it appears in a link's path or query: percent-encoded."""
    return quote(bad(field))


def render(template: str, **context: Any) -> str:
    response = pages.render(
        REQUEST, template, {"command": bad("command"), **context}, style_nonce="n0nce"
    )
    text = response.body.decode()
    assert "<script" not in text.lower()
    return text


def assert_escaped(text: str, *fields: str) -> None:
    missing = [field for field in fields if shown(field) not in text and in_url(field) not in text]
    assert not missing, f"not shown escaped: {missing}"


def rollout(**changes: Any) -> RolloutState:
    state = RolloutState(
        namespace=bad("state.namespace"),
        name=bad("state.name"),
        uid="uid",
        revision=42,
        phase=bad("state.phase"),
        message=bad("state.message"),
        step_index=2,
        step_count=8,
        canary_weight=25,
        set_weight=25,
        aborted=False,
        aborted_at=None,
        paused=False,
        controller_pause=True,
        pause_reasons=(bad("state.pause_reason"),),
        progressing_reason=None,
        stable_rs="aaa",
        current_pod_hash="bbb",
        canary_image=bad("state.canary_image"),
        stable_image=None,
        stable_revision=41,
        analysis=AnalysisStatus(
            bad("analysis.name"), bad("analysis.status"), bad("analysis.message")
        ),
        created_at=None,
        resource_version="1",
        generation=1,
        strategy="canary",
    )
    return replace(state, **changes)


def flag(role: str, enabled: bool) -> FlagStatus:
    info = FlagInfo(role=role, key=bad(f"flag.{role}.key"), type=bad(f"flag.{role}.type"))  # type: ignore[arg-type]
    state = FlagState(
        key=info.key,
        project="p",
        environment=bad(f"flag.{role}.environment"),
        enabled=enabled,
        provider=bad(f"flag.{role}.provider"),
    )
    return FlagStatus(info, state, removal="")


def view(**changes: Any) -> pages.PageView:
    fields: dict[str, Any] = {
        "service": bad("service"),
        "namespace": bad("namespace"),
        "rollout": bad("rollout"),
        "channel": bad("channel"),
        "runbook_path": bad("runbook_path"),
        "runbook_html": pages.render_runbook(f"# Runbook\n\n{bad('runbook')}\n"),
        "front_matter": bad("front_matter"),
        "state": rollout(),
        "state_error": None,
        "flags": [
            flag("release", True),
            flag("circuit", False),
            FlagStatus(
                FlagInfo(role="experiment", key=bad("flag.unknown.key"), type="t"),
                bad("flag.unknown.why"),
                removal="",
            ),
        ],
        "flags_error": None,
        "incident": Incident(
            service="s",
            namespace="n",
            rollout="r",
            revision=42,
            state=IncidentState.OPEN,
            opened_at=T,
            changed_at=T,
            firing=frozenset(),
            seen=frozenset(),
            first_breach_at=T,
            summaries=(("alert", f"*p95* {bad('incident.summary')}"),),
        ),
        "circuit_flag": bad("circuit_flag"),
        "circuit_problem": None,
        "tiers": [
            TierOption(Tier.ABORT, bad("tier.title"), True, bad("tier.reason"), True),
            TierOption(Tier.FULL_REVERT, "Revert", True, "git", steps=(bad("tier.step"),)),
        ],
        "read_at": T,
    }
    fields.update(changes)
    return pages.PageView(**fields)


CLAIMS = LinkClaims(
    service=bad("claims.service"),
    user_id=bad("claims.user_id"),
    user_name=bad("claims.user_name"),
    issued_at=T,
    expires_at=T + timedelta(minutes=15),
    nonce="n0nce-abcdefgh",
)
PAGE_FIELDS = (
    "service",
    "namespace",
    "rollout",
    "channel",
    "front_matter",
    "runbook",
    "state.namespace",
    "state.name",
    "state.phase",
    "state.message",
    "state.pause_reason",
    "state.canary_image",
    "analysis.name",
    "analysis.status",
    "analysis.message",
    "flag.release.key",
    "flag.release.type",
    "flag.release.environment",
    "flag.release.provider",
    "flag.circuit.key",
    "flag.unknown.key",
    "flag.unknown.why",
    "incident.summary",
    "tier.title",
    "tier.reason",
    "tier.step",
)


# ── a service's page ───────────────────────────────────────────────────────────────────


def test_read_only_page_escapes_every_field():
    text = render("page_readonly.html", view=view(), links_off=False)
    assert_escaped(text, *PAGE_FIELDS, "command")
    assert "<form" not in text


def test_read_errors_missing_runbook_and_circuit_problem_are_escaped():
    errors = view(
        state=None,
        state_error=bad("state_error"),
        flags_error=bad("flags_error"),
        runbook_html=None,
        circuit_problem=bad("circuit_problem"),
    )
    text = render("page_readonly.html", view=errors, links_off=True)
    assert_escaped(text, "state_error", "flags_error", "runbook_path")
    assert "Signed links are off" in text
    signed = render("page_signed.html", view=errors, claims=CLAIMS, token="t", csrf="c")
    assert_escaped(signed, "circuit_problem", "state_error")  # why Tier 1 and 2 are not offered
    assert "<form" not in signed


def test_signed_page_escapes_the_claims_and_the_form_values():
    hostile = 'x" autofocus onfocus="alert(1)'
    text = render(
        "page_signed.html", view=view(), claims=CLAIMS, token=hostile + "T", csrf=hostile + "C"
    )
    assert_escaped(text, *PAGE_FIELDS, "claims.user_name", "claims.user_id", "circuit_flag")
    for name in ("token", "csrf"):
        values = re.findall(rf'<input type="hidden" name="{name}" value="([^"]*)">', text)
        assert values and all(v.startswith("x&#34; autofocus") for v in values), values
    # Abort (a canary is in progress) and Open (the circuit is off) are the forms offered.
    assert re.findall(r'name="action" value="([^"]+)"', text) == ["abort", "circuit-open"]
    assert 'action="/runbooks/%3Cscript%3Eservice%3C/script%3E/actions"' in text


def test_outcome_page_escapes_the_action_message_and_name():
    done = SimpleNamespace(status=bad("done.status"), message=bad("done.message"), at=T)
    text = render(
        "page_outcome.html",
        view=view(),
        claims=CLAIMS,
        used_at=T,
        label=bad("label"),
        done=done,
    )
    assert_escaped(text, "label", "done.status", "done.message", "claims.user_name")
    unknown = render(
        "page_outcome.html", view=view(), claims=CLAIMS, used_at=T, label=bad("label"), done=None
    )
    assert_escaped(unknown, "label")


def test_rendered_markdown_is_the_one_value_not_escaped_again():
    text = render("page_readonly.html", view=view(), links_off=False)
    assert re.search(r"<h2[^>]*>Runbook</h2>", text)  # the runbook's own tags stay tags
    assert "*p95*" in text and "<em>p95</em>" not in text  # a summary is outside words: text
    assert "&amp;lt;script" not in text  # nothing escaped twice


# ── refusals ───────────────────────────────────────────────────────────────────────────

# The arguments of the refusal macros: text is hostile; the rest typed as runbooks.py
# passes them. A new macro argument fails the test below until it is listed here.
NOT_TEXT: dict[str, Any] = {
    "minutes": 15,
    "weight": 25,
    "aborted": True,
    "unchanged": True,
    "until": T,
    "expires_at": T,
    "used_at": T,
}
TEXT = {
    "message",
    "command",
    "service",
    "user_name",
    "link_service",
    "token",
    "seen",
    "action",
    "phase",
    "problem",
    "error_id",
}


def refusal_macros() -> dict[str, tuple[str, ...]]:
    module: Any = pages.templates.get_template("runbooks/refusals.html").module
    return {
        name: macro.arguments
        for name in dir(module)
        if not name.startswith("_") and name != "shown"
        for macro in [getattr(module, name)]
    }


def test_every_refusal_escapes_every_fact():
    macros = refusal_macros()
    assert {"invalid", "expired", "wrong_service", "csrf", "origin", "used", "error"} <= set(macros)
    for why, arguments in macros.items():
        unknown = set(arguments) - TEXT - set(NOT_TEXT)
        assert not unknown, f"{why}: list {unknown} in TEXT or NOT_TEXT"
        facts = {arg: NOT_TEXT.get(arg, bad(f"{why}.{arg}")) for arg in arguments}
        refused = SimpleNamespace(
            status=403, title=bad("title"), why=why, facts=facts, renew=None, token=None
        )
        texts = (
            render("refused.html", refused=refused, renew_csrf=None, service=bad("service")),
            render("page_refused.html", refused=refused, renew_csrf=None, view=view()),
        )
        for text in texts:
            assert_escaped(text, "title", *(f"{why}.{arg}" for arg in set(arguments) & TEXT))
            assert "Send me a fresh link" not in text


def test_a_refusal_with_a_good_signature_offers_a_fresh_link():
    refused = SimpleNamespace(
        status=410,
        title="This link has expired",
        why="expired_at",
        facts={"expires_at": T},
        renew=CLAIMS,
        token=bad("token"),
    )
    text = render("refused.html", refused=refused, renew_csrf=bad("csrf"), service="s")
    assert_escaped(text, "claims.user_name", "token", "csrf")
    assert 'class="banner warn"' in text and "Send me a fresh link in Slack" in text
    assert 'action="/runbooks/%3Cscript%3Eclaims.service%3C/script%3E/renew"' in text


# ── the other pages ────────────────────────────────────────────────────────────────────


def test_index_404_405_and_fresh_link_pages_escape_their_values():
    services = [bad("known")]
    assert_escaped(render("index.html", services=services), "known")
    assert_escaped(render("unknown.html", name=bad("path"), services=services), "path", "known")
    assert 'href="/runbooks/%3Cscript%3Eknown%3C/script%3E"' in render(
        "index.html", services=services
    )
    assert_escaped(
        render("not_allowed.html", method=bad("method"), allow=[bad("allow")]), "method", "allow"
    )
    sent = render("renew_sent.html", service=bad("service"), user_name=bad("name"), expires_at=T)
    assert_escaped(sent, "service", "name")


def test_autoescape_everywhere_and_templates_from_the_package():
    env = pages.templates.env
    assert env.autoescape is True
    assert isinstance(env.loader, jinja2.PackageLoader)  # installed with the package
    names = set(env.list_templates())
    assert {"runbooks/base.html", "runbooks/runbook.html", "runbooks/refusals.html"} <= names


@pytest.mark.parametrize("status", [200, 404, 410])
def test_responses_carry_the_security_headers(status):
    response = pages.render(
        REQUEST,
        "index.html",
        {"command": "/rollback", "services": []},
        style_nonce="abc",
        status=status,
    )
    assert response.status_code == status
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "style-src 'nonce-abc'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert '<style nonce="abc">' in response.body.decode()


def test_an_incidents_outside_words_are_text_not_links() -> None:
    """An alert's summary annotation is the alert author's text: `[Confirm](url)` must not
    become a link beside the action buttons."""
    incident = view().incident
    assert incident is not None
    hostile = dataclasses.replace(
        incident, summaries=(("alert", "[Confirm abort here](https://evil.example/x)"),)
    )
    page = render("page_readonly.html", view=view(incident=hostile), links_off=False)
    assert 'href="https://evil.example' not in page
    assert "[Confirm abort here](https://evil.example/x)" in page
