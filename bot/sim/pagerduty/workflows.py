"""Incident Workflows: a workflow with one "Send a Webhook POST" step, run by a person on an
incident, POSTs its body with the ``{{…}}`` field references replaced.

`add_workflow(name, url, headers=, body=)` defines one; `run_workflow(incident_id, name,
user_id)` runs it as that user, from the sender thread. Without `body`,
`DEFAULT_WORKFLOW_BODY`:

    {"action": "{{workflow.name}}",
     "incident": {"id": "{{incident.id}}", "incident_key": "{{incident.incident_key}}",
                  "service_id": "{{incident.service.id}}"},
     "user": {"id": "{{current_user.id}}", "email": "{{current_user.email}}",
              "name": "{{current_user.name}}"}}

A workflow's POST carries ``Content-Type: application/json`` and the author's headers only
(no signature: PagerDuty signs v3 webhooks, not workflow requests). PagerDuty accepts only
https URLs there; the sim also posts to http (loopback receivers in the tests).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from bot.sim.pagerduty.account import Account
from bot.sim.pagerduty.model import WEB_HOST, Workflow
from bot.sim.pagerduty.webhooks import Delivery, Verify

__all__ = ["DEFAULT_WORKFLOW_BODY", "WORKFLOW_VARIABLES", "IncidentWorkflows"]

WORKFLOW_VARIABLES = (
    "workflow.name",
    "incident.id",
    "incident.number",
    "incident.title",
    "incident.status",
    "incident.urgency",
    "incident.html_url",
    "incident.incident_key",
    "incident.service.id",
    "incident.service.summary",
    "current_user.id",
    "current_user.email",
    "current_user.name",
)
DEFAULT_WORKFLOW_BODY: dict[str, Any] = {
    "action": "{{workflow.name}}",
    "incident": {
        "id": "{{incident.id}}",
        "incident_key": "{{incident.incident_key}}",
        "service_id": "{{incident.service.id}}",
    },
    "user": {
        "id": "{{current_user.id}}",
        "email": "{{current_user.email}}",
        "name": "{{current_user.name}}",
    },
}
_FIELD_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


class IncidentWorkflows:
    """`PagerDutySim`'s Incident Workflow methods (a mixin over the sim's account)."""

    _account: Account

    def add_workflow(
        self,
        name: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | list[Any] | str | None = None,
        verify: Verify = True,
    ) -> None:
        """An Incident Workflow `name` with one "Send a Webhook POST" step to `url`.

        `headers` and `body` may hold field references (``{{incident.id}}``, see
        `WORKFLOW_VARIABLES`). A dict or list body has them replaced in its strings and is
        sent as JSON; a str body is sent as written with them replaced verbatim. Without
        `body`: `DEFAULT_WORKFLOW_BODY`."""
        template = DEFAULT_WORKFLOW_BODY if body is None else body
        used = _references(json.dumps(template)) | _references(json.dumps(headers or {}))
        unknown = sorted(used - set(WORKFLOW_VARIABLES))
        if unknown:
            raise ValueError(f"unknown field references {unknown}; known: {WORKFLOW_VARIABLES}")
        with self._account.lock:
            self._account.state.workflows[name] = Workflow(
                name, url, dict(headers or {}), template, verify
            )

    def run_workflow(self, incident_id: str, name: str, user_id: str) -> Delivery:
        """`user_id` runs workflow `name` on the incident (the incident's "Run a workflow"
        menu): its POST is queued on the sender thread; returns the (pending) delivery."""
        account = self._account
        with account.lock:
            workflow = account.state.workflows.get(name)
            if workflow is None:
                raise KeyError(f"no workflow {name!r}: add_workflow it first")
            incident = account.incident_or_raise(incident_id)
            user = account.user_or_raise(user_id)
            service = account.state.services[incident.service_id]
            values = {
                "workflow.name": workflow.name,
                "incident.id": incident.id,
                "incident.number": str(incident.number),
                "incident.title": incident.title,
                "incident.status": incident.status,
                "incident.urgency": incident.urgency,
                "incident.html_url": f"{WEB_HOST}/incidents/{incident.id}",
                "incident.incident_key": incident.incident_key,
                "incident.service.id": service["id"],
                "incident.service.summary": service["summary"],
                "current_user.id": user["id"],
                "current_user.email": user["email"],
                "current_user.name": user["name"],
            }
            if isinstance(workflow.body, str):
                body = _render(workflow.body, values).encode()
            else:
                rendered = _render_json(workflow.body, values)
                body = json.dumps(rendered, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {k: _render(v, values) for k, v in workflow.headers.items()}
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"

            delivery = Delivery(
                id=str(uuid.uuid4()),
                kind="workflow",
                url=workflow.url,
                headers=headers,
                body=body,
                verify=workflow.verify,
                workflow=workflow.name,
                incident_id=incident.id,
            )
            account.state.deliveries.append(delivery)
        account.sender.submit(delivery)
        return delivery


def _render(template: str, values: dict[str, str]) -> str:
    return _FIELD_REFERENCE.sub(lambda m: values.get(m.group(1), ""), template)


def _render_json(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return _render(template, values)
    if isinstance(template, dict):
        return {_render(k, values): _render_json(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_render_json(v, values) for v in template]
    return template


def _references(text: str) -> set[str]:
    return set(_FIELD_REFERENCE.findall(text))
