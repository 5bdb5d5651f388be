"""The HTTP edge (Starlette on uvicorn): `app.create_web_app` serves a built rollbot, and
`app.create_internal_app` its probes and /metrics on the internal port.

    observe.py        first of all: the request's id, in every log line it causes
    guard.py          body limits and read deadlines, before anything is parsed
    slack.py          /slack/events: signature on the raw bytes, then Bolt
    alertmanager.py   /webhooks/alertmanager      pagerduty.py  /webhooks/pagerduty
    runbooks.py       /runbooks pages and signed-link actions (runbook_html: templates)
    inbox.py          the poison bin              refusals.py   quiet, counted refusals
    server.py         uvicorn's h11 with header deadlines and a waiting-connection cap;
                      the internal listener beside the public one (serve_beside)

Modules are imported by name."""

__all__: list[str] = []
