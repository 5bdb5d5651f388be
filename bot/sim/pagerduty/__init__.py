"""PagerDuty (REST API v2, Events API v2, v3 webhooks, Incident Workflows), for the demo and
the tests.

`PagerDutySim` answers what rollbot asks PagerDuty, over real HTTPS on loopback (the
`pagerduty` client refuses any base URL that is not ``https://``; trust `ca_file`), with
PagerDuty's shapes. One server plays both hosts: `url` is the REST API base URL *and* the
Events API base URL (``events_url``), as api.pagerduty.com and events.pagerduty.com.

The package, by responsibility:

- rest.py           REST API v2: on-calls, users, services, incidents, alerts, log entries,
                    notes; token auth, the ``From`` header on writes, PagerDuty's error
                    envelope and classic pagination;
- events.py         Events API v2 (``POST /v2/enqueue``): validation, dedup keys, how
                    trigger/acknowledge/resolve open, update and close incidents;
- webhooks.py       the v3 webhook envelope, its ``X-PagerDuty-Signature`` and the sender
                    thread that delivers it (in order, retried on 5xx/429/no answer);
- subscriptions.py  webhook subscriptions, secret rotation, redelivery (test controls);
- workflows.py      Incident Workflows ("Send a Webhook POST" with ``{{…}}`` references);
- seed.py           users, escalation policies, on-calls, services, integrations;
- account.py        the state behind both APIs and what happens to an incident whoever
                    acts (REST, Events API, a person in the web UI), with its webhooks;
- model.py          the state's data types, ids, timestamps, ``*_reference`` shapes;
- sim.py            `PagerDutySim`: the server's lifecycle on the shared `ThreadedServer`,
                    failure injection, a person's actions, inspection.

v3 webhooks: `subscribe` registers a receiver. Each incident change emits an envelope
(incident.triggered, .acknowledged, .resolved, .escalated, .reassigned with the incident as
data; incident.annotated with the ``incident_note``). ``agent`` is the user who acted (a
``user_reference``), or for the Events API the integration. Each delivery is recorded
(`deliveries`) with every status answered.

Test controls: `add_user`, `add_escalation_policy`, `add_service`, `set_oncall`,
`add_integration`; a person's actions in the web UI (`acknowledge`, `resolve`, `escalate`,
`reassign`, `annotate`), each emitting its webhook with that person as agent; `subscribe`,
`rotate_secret`, `finish_rotation`, `redeliver`, `add_workflow`, `run_workflow`;
`ignore_include`; `force_status` (the next *n* requests answer a status, e.g. 429 with
``Retry-After``); `lose_answers` (done, then answered 502); `set_down` (connection refused
until brought back on the same port, or with `status=` every request of both APIs answered
with it, e.g. 503); `reset`. Inspection: `requests` (everything received, refused requests
included, as the shared `RecordedRequest`: ``body`` parsed, ``raw`` the bytes), `events`
(Events API bodies received), `incidents`, `incident`, `incident_by_key`, `notes`,
`webhook_events`, `deliveries`, `wait_deliveries`, `drain`.
"""

from bot.sim.pagerduty.events import (
    EVENT_ACTIONS,
    EVENTS_PATH,
    MAX_DEDUP_KEY,
    MAX_SUMMARY,
    SEVERITIES,
)
from bot.sim.pagerduty.model import API_HOST, DEFAULT_TOKEN, ERRORS, SUBDOMAIN, WEB_HOST
from bot.sim.pagerduty.rest import DEFAULT_LIMIT, FROM_MISSING, FROM_UNKNOWN, MAX_LIMIT
from bot.sim.pagerduty.sim import PagerDutySim
from bot.sim.pagerduty.webhooks import (
    EMITTED_EVENT_TYPES,
    WEBHOOK_EVENT_TYPES,
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_USER_AGENT,
    Attempt,
    Delivery,
    Verify,
    sign,
    signature,
)
from bot.sim.pagerduty.workflows import DEFAULT_WORKFLOW_BODY, WORKFLOW_VARIABLES

__all__ = [
    "API_HOST",
    "DEFAULT_LIMIT",
    "DEFAULT_TOKEN",
    "DEFAULT_WORKFLOW_BODY",
    "EMITTED_EVENT_TYPES",
    "ERRORS",
    "EVENTS_PATH",
    "EVENT_ACTIONS",
    "FROM_MISSING",
    "FROM_UNKNOWN",
    "MAX_DEDUP_KEY",
    "MAX_LIMIT",
    "MAX_SUMMARY",
    "SEVERITIES",
    "SUBDOMAIN",
    "WEBHOOK_EVENT_TYPES",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_USER_AGENT",
    "WEB_HOST",
    "WORKFLOW_VARIABLES",
    "Attempt",
    "Delivery",
    "PagerDutySim",
    "Verify",
    "sign",
    "signature",
]
