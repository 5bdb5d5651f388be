"""HTML of the runbook pages: one layout, the live panels, the action forms.

Pure string building; every value is escaped here (`esc`) or rendered by the safe Markdown
renderer (`bot.core.markdown`: markdown-it-py, then nh3's allow-list). No scripts, no
external assets: one inline stylesheet allowed by a per-response CSP nonce, and `<details>`
as the confirm step.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.core import markdown as md
from bot.core import tiers as core_tiers
from bot.core.flags import FlagStatus
from bot.core.model import FlagState, Incident, RolloutState

ACTION_LABELS = {
    "abort": "Abort (Tier 1)",
    "circuit-open": "Open the circuit (Tier 2)",
    "circuit-close": "Close the circuit (Tier 2)",
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


STYLE = """
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#1d2430;background:#fff}
main{max-width:980px;margin:0 auto;padding:12px 20px 48px}
header{border-bottom:1px solid #d8dee6;margin-bottom:12px}
header p{margin:.2em 0 .8em;color:#5b6573}
h1{font-size:1.6em;margin:.4em 0 .1em}
h2{font-size:1.3em;margin:1.2em 0 .4em}
h3{font-size:1.1em;margin:1.1em 0 .3em}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code{background:#eef1f5;padding:.1em .3em;border-radius:3px}
pre{background:#f5f7fa;border:1px solid #d8dee6;padding:10px 12px;overflow:auto;border-radius:4px}
pre code{background:none;padding:0}
table{border-collapse:collapse;margin:.6em 0;width:100%}
th,td{border:1px solid #d8dee6;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f5f7fa}
.align-center{text-align:center}.align-right{text-align:right}
blockquote{margin:.6em 0;padding:.1em 1em;border-left:4px solid #d8dee6;color:#5b6573}
.banner{border:1px solid;border-radius:6px;padding:10px 14px;margin:12px 0}
.banner h2{margin:.1em 0 .3em;font-size:1.15em}
.info{background:#eef4ff;border-color:#a8c4f5}
.ok{background:#e9f7ef;border-color:#8fd1a5}
.warn{background:#fff8e6;border-color:#e7c36a}
.bad{background:#fdecec;border-color:#f0a3a3}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:12px}
.panel{border:1px solid #d8dee6;border-radius:6px;padding:8px 14px;background:#fbfcfd;
min-width:0;overflow-wrap:break-word;margin-top:12px}
.grid .panel{margin-top:0}
.panel h2{margin-top:.3em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:.3em 0}
dt{color:#5b6573}dd{margin:0}
.tiers li{margin:.35em 0}
.act{border:1px solid #d8dee6;border-radius:6px;margin:8px 0;background:#fff}
.act summary{cursor:pointer;padding:8px 12px;font-weight:600}
.act div{padding:0 12px 10px}
button{font:inherit;font-weight:600;padding:7px 14px;border-radius:5px;border:1px solid #8a1c12;
background:#b42318;color:#fff;cursor:pointer}
button.plain{background:#0b57d0;border-color:#0842a0}
.muted{color:#5b6573}
article.runbook{border-top:1px solid #d8dee6;margin-top:20px}
footer{margin-top:32px;color:#5b6573;font-size:.9em}
"""


def layout(title: str, body: str, *, style_nonce: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title>"
        f'<style nonce="{esc(style_nonce)}">{STYLE}</style>'
        f"</head><body><main>{body}"
        "<footer>rollbot · every action from this page is authorised, verified and audited "
        "like a Slack click.</footer></main></body></html>\n"
    )


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


_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_SUBTEAM = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|([^>]*))?>")
_EMOJI = re.compile(r":[a-z0-9_+\-]+:")


def mrkdwn_html(text: str, names: dict[str, str] | None = None) -> str:
    """A responder message (Slack mrkdwn) as safe HTML: mentions become names."""
    names = names or {}
    text = _MENTION.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = _SUBTEAM.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _EMOJI.sub("", text).strip()
    return md.inline(text)


@dataclass
class PageView:
    """What a runbook page shows, read once per request."""

    service: str
    namespace: str
    rollout: str
    channel: str
    runbook_path: str | None
    runbook_html: str | None
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


def state_panel(view: PageView) -> str:
    if view.state is None:
        return (
            '<section class="panel"><h2>Live Rollout</h2>'
            f'<p class="bad banner">Rollout state unavailable: {esc(view.state_error)}</p>'
            "</section>"
        )
    s = view.state
    rows = [
        ("Rollout", f"<code>{esc(s.namespace)}/{esc(s.name)}</code>"),
        ("Phase", f"<strong>{esc(s.phase)}</strong>"),
        ("Step", esc(s.step_label)),
        ("Canary weight", f"{s.canary_weight} %"),
        (
            "Revision",
            esc(s.revision)
            + (f" (stable: {esc(s.stable_revision)})" if s.stable_revision is not None else ""),
        ),
    ]
    if s.aborted:
        rows.append(("Aborted", "yes: traffic is on the stable pods"))
    if s.pause_reasons:
        rows.append(("Paused", esc(", ".join(s.pause_reasons))))
    if s.analysis is not None:
        analysis = f"{esc(s.analysis.name)}: <strong>{esc(s.analysis.status)}</strong>"
        if s.analysis.message:
            analysis += f" — {esc(s.analysis.message)}"
        rows.append(("Analysis", analysis))
    if s.message:
        rows.append(("Message", esc(s.message)))
    if s.canary_image:
        rows.append(("Canary image", f"<code>{esc(s.canary_image)}</code>"))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return (
        '<section class="panel"><h2>Live Rollout</h2>'
        f"<dl>{dl}</dl>"
        f'<p class="muted">Read at {view.read_at:%H:%M:%S} UTC.</p></section>'
    )


def flags_panel(view: PageView) -> str:
    if view.flags_error is not None:
        body = f"<p>Flags unavailable: {esc(view.flags_error)}</p>"
    elif not view.flags:
        body = (
            "<p>No flags listed in the catalog "
            f"(<code>services.{esc(view.service)}.flags</code>).</p>"
        )
    else:
        rows = []
        for status in view.flags:
            state = status.state
            if isinstance(state, FlagState):
                shown = (
                    f"<strong>{'on' if state.enabled else 'off'}</strong> in "
                    f"{esc(state.environment)} ({esc(state.provider)})"
                )
            else:
                shown = f'<span class="muted">{esc(state)}</span>'
            rows.append(
                f"<tr><td>{esc(status.info.type)}</td><td><code>{esc(status.info.key)}</code></td>"
                f"<td>{shown}</td></tr>"
            )
        body = (
            "<table><thead><tr><th>flag</th><th>key</th><th>state</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return f'<section class="panel"><h2>Flags</h2>{body}</section>'


def incident_panel(view: PageView) -> str:
    incident = view.incident
    if incident is None:
        body = "<p>No open incident for this service.</p>"
    else:
        firing = "".join(f"<li>{mrkdwn_html(text)}</li>" for _, text in incident.summaries)
        body = (
            f"<p><strong>{esc(incident.state.value)}</strong> since "
            f"{incident.opened_at:%H:%M:%S} UTC on revision {esc(incident.revision)}"
            + (
                f"; first breach {incident.first_breach_at:%H:%M:%S} UTC"
                if incident.first_breach_at
                else ""
            )
            + ".</p>"
            + (f"<ul>{firing}</ul>" if firing else "")
        )
    return f'<section class="panel"><h2>Incident</h2>{body}</section>'


def tiers_list(view: PageView) -> str:
    items = []
    for option in view.tiers:
        mark = " (recommended)" if option.recommended else ""
        avail = "" if option.available else ' class="muted"'
        steps = ""
        if option.steps:
            steps = "<ol>" + "".join(f"<li>{md.inline(s)}</li>" for s in option.steps) + "</ol>"
        items.append(
            f"<li{avail}><strong>Tier {int(option.tier)} — {esc(option.title)}</strong>{mark}: "
            f"{md.inline(option.reason)}{steps}</li>"
        )
    return f'<ul class="tiers">{"".join(items)}</ul>'


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def action_form(
    view: PageView, action: str, what: str, confirm: str, *, token: str, csrf: str
) -> str:
    return (
        f'<details class="act"><summary>{esc(ACTION_LABELS[action])}</summary><div>'
        f"<p>{what}</p>"
        f'<form method="post" action="/runbooks/{esc(quote(view.service))}/actions">'
        f"{hidden('token', token)}{hidden('csrf', csrf)}{hidden('action', action)}"
        f'<button type="submit" name="confirm" value="yes">{esc(confirm)}</button>'
        "</form></div></details>"
    )


def actions_section(view: PageView, *, token: str, csrf: str) -> str:
    forms: list[str] = []
    state = view.state
    if state is not None and core_tiers.canary_in_progress(state):
        stable = (
            f"stable revision {state.stable_revision}"
            if state.stable_revision is not None
            else "the stable pods"
        )
        forms.append(
            action_form(
                view,
                "abort",
                f"Sets <code>status.abort=true</code> on <code>{esc(state.namespace)}/"
                f"{esc(state.name)}</code>: all traffic goes back to {esc(stable)} within a "
                f"minute (canary now at {state.canary_weight} %). rollbot reads the Rollout "
                "back until the abort is verified.",
                f"Confirm: abort {view.service}",
                token=token,
                csrf=csrf,
            )
        )
    else:
        why = view.state_error or "no canary in progress: nothing to abort"
        if state is not None and state.aborted:
            why = "already aborted: traffic is on the stable pods"
        forms.append(f'<p class="muted">Abort (Tier 1): not available — {esc(why)}.</p>')
    if view.circuit_flag and view.circuit_problem is None:
        circuit_on: bool | None = None
        for status in view.flags:
            if status.info.role == "circuit" and isinstance(status.state, FlagState):
                circuit_on = status.state.enabled
        flag = f"<code>{esc(view.circuit_flag)}</code>"
        if circuit_on is not True:
            forms.append(
                action_form(
                    view,
                    "circuit-open",
                    f"Turns {flag} on: every request takes the legacy path within seconds, "
                    "whatever the other flags say. No deploy, no pod restart.",
                    f"Confirm: open the circuit of {view.service}",
                    token=token,
                    csrf=csrf,
                )
            )
        if circuit_on is not False:
            forms.append(
                action_form(
                    view,
                    "circuit-close",
                    f"Turns {flag} off: traffic follows the release and experiment flags "
                    "again. Only after the fix is deployed and verified.",
                    f"Confirm: close the circuit of {view.service}",
                    token=token,
                    csrf=csrf,
                )
            )
    elif view.circuit_problem is not None:
        forms.append(
            '<p class="muted">Circuit breaker (Tier 2): not available here — '
            f"{md.inline(view.circuit_problem)}</p>"
        )
    return (
        '<section><h2>Act</h2><p class="muted">Each button asks once more before it acts. '
        "The link works for one action.</p>" + "".join(forms) + "</section>"
    )


def page_body(view: PageView, *, top: str, actions: str = "") -> str:
    runbook = (
        f'<article class="runbook">{view.runbook_html}</article>'
        if view.runbook_html is not None
        else (
            '<article class="runbook"><p class="muted">No runbook file for this service'
            + (f" (<code>{esc(view.runbook_path)}</code> not found)" if view.runbook_path else "")
            + ".</p></article>"
        )
    )
    front = (
        "<details><summary>Runbook front matter</summary>"
        f"<pre><code>{esc(view.front_matter)}</code></pre></details>"
        if view.front_matter
        else ""
    )
    return (
        f"<header><h1>{esc(view.service)} — runbook</h1>"
        f"<p>Rollout <code>{esc(view.namespace)}/{esc(view.rollout)}</code> · channel "
        f"{esc(view.channel)}</p></header>"
        f"{top}"
        f'<div class="grid">{state_panel(view)}{incident_panel(view)}</div>'
        f"{flags_panel(view)}"
        f"{actions}"
        f"<section><h2>Rollback tiers now</h2>{tiers_list(view)}</section>"
        f"{front}{runbook}"
    )


def banner(kind: str, title: str, body_html: str) -> str:
    return f'<div class="banner {kind}"><h2>{esc(title)}</h2>{body_html}</div>'


def readonly_note(service: str, command: str) -> str:
    return banner(
        "info",
        "Read-only",
        f"<p>To act from this page, get a signed link: <code>{esc(command)} {esc(service)} "
        "runbook</code> in Slack.</p>",
    )


def renew_form(service: str, *, token: str, csrf: str) -> str:
    return (
        f'<form method="post" action="/runbooks/{esc(quote(service))}/renew">'
        f"{hidden('token', token)}{hidden('csrf', csrf)}"
        '<button class="plain" type="submit">Send me a fresh link in Slack</button></form>'
    )
