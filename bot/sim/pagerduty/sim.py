"""`PagerDutySim`: the account (account.py) served over HTTPS on loopback by the shared
`ThreadedServer`, with the REST API (rest.py) and the Events API (events.py) on one port,
the webhook sender thread (webhooks.py), and the test controls and inspection a test uses.

The seeding, webhook subscription and Incident Workflow methods live with their subjects
(seed.py, subscriptions.py, workflows.py) and are mixed in here; what stays is the server's
lifecycle, failure injection, a person's actions in the web UI, and inspection.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.applications import Starlette

from bot.sim import tls
from bot.sim._server import RecordedRequest, ThreadedServer
from bot.sim.pagerduty.account import Account
from bot.sim.pagerduty.events import EventsApi
from bot.sim.pagerduty.model import DEFAULT_TOKEN, Forced, deep_copy, now, user_reference
from bot.sim.pagerduty.rest import RestApi
from bot.sim.pagerduty.seed import SeedData
from bot.sim.pagerduty.subscriptions import WebhookSubscriptions
from bot.sim.pagerduty.webhooks import Delivery, Sender
from bot.sim.pagerduty.workflows import IncidentWorkflows

__all__ = ["PagerDutySim"]

_UI_CLIENT = {"name": "PagerDuty"}  # a person in the web app, as in the fixture


class PagerDutySim(SeedData, WebhookSubscriptions, IncidentWorkflows):
    """PagerDuty's REST and Events APIs on a loopback HTTPS port, in its own thread and event
    loop, plus a webhook sender thread.

    Pass `url` as the clients' base URL (REST and Events) and `ca_file` as the CA to trust.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        tls_enabled: bool = True,
        webhook_retry_delays: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4),
        webhook_timeout: float = 5.0,
    ) -> None:
        self.host, self._port = host, port
        self.tls_enabled = tls_enabled
        self._tls = tls.write_files() if tls_enabled else None
        self._down = False
        self._server: ThreadedServer | None = None
        # PagerDuty waits 5 s for an answer and retries over ~20 minutes; the sim keeps the
        # same number of attempts with short delays.
        self._sender = Sender(retry_delays=webhook_retry_delays, timeout=webhook_timeout)
        self._account = Account(token=token, sender=self._sender)
        self._app = Starlette(
            routes=[*EventsApi(self._account).routes(), *RestApi(self._account).routes()]
        )

    @property
    def token(self) -> str:
        """The REST API token the sim accepts."""
        return self._account.token

    @token.setter
    def token(self, value: str) -> None:
        self._account.token = value

    @property
    def ignore_include(self) -> bool:
        """True: answer bare references whatever include[] asks."""
        return self._account.ignore_include

    @ignore_include.setter
    def ignore_include(self, value: bool) -> None:
        self._account.ignore_include = value

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The REST API base URL (``https://127.0.0.1:<port>``), like https://api.pagerduty.com."""
        if not self._port:
            raise RuntimeError("PagerDutySim is not started")
        scheme = "https" if self.tls_enabled else "http"
        return f"{scheme}://{self.host}:{self._port}"

    @property
    def events_url(self) -> str:
        """The Events API base URL, like https://events.pagerduty.com (the same server)."""
        return self.url

    @property
    def ca_file(self) -> str | None:
        """The CA certificate clients must trust (None without TLS)."""
        return self._tls.ca_file if self._tls else None

    def start(self) -> PagerDutySim:
        self._sender.start()
        self._start_server()
        return self

    def stop(self) -> None:
        self._stop_server()
        self._sender.stop()

    def __enter__(self) -> PagerDutySim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_server(self) -> None:
        """Serve on the port of the last start (a free one the first time)."""
        config: dict[str, Any] = {}
        if self._tls is not None:
            config = {"ssl_certfile": self._tls.cert_file, "ssl_keyfile": self._tls.key_file}
        server = ThreadedServer(
            self._app, host=self.host, port=self._port, name="pagerduty-sim", **config
        )
        self._server, self._port = server, server.port
        server.start()

    def _stop_server(self) -> None:
        """Stop serving and close the port (idle keep-alive connections are not waited for)."""
        if self._server is not None:
            self._server.stop()
        self._server = None

    def set_down(self, down: bool = True, *, status: int | None = None) -> None:
        """Down: the port refuses connections (both APIs). With `status` (e.g. 503) the port
        stays open and every request, REST or Events, is answered with that status instead.
        Up again: served on the same port, answering normally."""
        with self._account.lock:
            self._account.state.down_status = status if down else None
            refuse = down and status is None
            if refuse == self._down:
                return
            self._down = refuse
        if refuse:
            self._stop_server()
        else:
            self._start_server()

    def force_status(
        self,
        n: int = 1,
        status: int = 429,
        *,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `n` requests (whose path starts with `path`, when given; REST or
        Events, ``/v2/enqueue``) with `status` and the API's error body, plus
        ``Retry-After`` when given."""
        with self._account.lock:
            self._account.state.forced.extend(Forced(status, retry_after, path) for _ in range(n))

    def lose_answers(
        self,
        n: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
        status: int = 502,
    ) -> None:
        """The next `n` REST requests (whose path starts with `path` and whose method is
        `method`, when given) are carried out, then answered `status` as a proxy losing
        the real answer would: the client cannot tell that its note (or change) was made."""
        with self._account.lock:
            self._account.state.lost.extend((path, method, status) for _ in range(n))

    # ------------------------------------------------------------------ a person in the UI

    def acknowledge(self, incident_id: str, user_id: str) -> None:
        """`user_id` acknowledges the incident in the web app (incident.acknowledged)."""
        account = self._account
        with account.lock:
            incident = account.incident_or_raise(incident_id)
            user = account.user_or_raise(user_id)
            if incident.status == "resolved":
                raise ValueError(f"incident {incident_id} is resolved")
            account.acknowledge(incident, user_reference(user), _UI_CLIENT)

    def resolve(self, incident_id: str, user_id: str) -> None:
        """`user_id` resolves the incident in the web app (incident.resolved)."""
        account = self._account
        with account.lock:
            incident = account.incident_or_raise(incident_id)
            user = account.user_or_raise(user_id)
            if incident.status == "resolved":
                raise ValueError(f"incident {incident_id} is already resolved")
            account.resolve(incident, user_reference(user), _UI_CLIENT)

    def escalate(self, incident_id: str, to_user_id: str, *, by_user_id: str | None = None) -> None:
        """The incident escalates to `to_user_id` (incident.escalated): it is assigned to
        them and triggered again (an acknowledgement does not survive an escalation). The
        agent is `by_user_id` when given (someone pressed "Escalate"), else the policy."""
        account = self._account
        with account.lock:
            incident = account.incident_or_raise(incident_id)
            target = account.user_or_raise(to_user_id)
            if incident.status == "resolved":
                raise ValueError(f"incident {incident_id} is resolved")
            if by_user_id is not None:
                agent = user_reference(account.user_or_raise(by_user_id))
            else:
                agent = account.policy_reference(incident.escalation_policy_id)
            at = now()
            incident.assignees = [(target["id"], at)]
            if incident.status != "triggered":
                incident.status = "triggered"
                incident.acknowledgements.clear()
                incident.last_status_change_at, incident.last_status_change_by = at, agent
            account.log(incident, "escalate_log_entry", agent, f"Escalated to {target['name']}")
            account.emit_incident("incident.escalated", incident, agent, _UI_CLIENT)

    def reassign(self, incident_id: str, user_id: str, to_user_ids: list[str]) -> None:
        """`user_id` reassigns the incident to `to_user_ids` (incident.reassigned)."""
        account = self._account
        with account.lock:
            incident = account.incident_or_raise(incident_id)
            user = account.user_or_raise(user_id)
            targets = [account.user_or_raise(u) for u in to_user_ids]
            at = now()
            incident.assignees = [(t["id"], at) for t in targets]
            agent = user_reference(user)
            names = ", ".join(t["name"] for t in targets)
            account.log(incident, "assign_log_entry", agent, f"Reassigned to {names}")
            account.emit_incident("incident.reassigned", incident, agent, _UI_CLIENT)

    def annotate(self, incident_id: str, user_id: str, content: str) -> dict[str, Any]:
        """`user_id` adds a note in the web app (incident.annotated); returns the note."""
        account = self._account
        with account.lock:
            incident = account.incident_or_raise(incident_id)
            user = account.user_or_raise(user_id)
            return account.add_note(incident, user, content, _UI_CLIENT)

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, refused ones included, oldest first."""
        with self._account.lock:
            return list(self._account.state.requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear_requests(self) -> None:
        with self._account.lock:
            self._account.state.requests.clear()

    def events(self) -> list[dict[str, Any]]:
        """Every Events API v2 body received (JSON objects only), invalid ones included."""
        with self._account.lock:
            return deep_copy(self._account.state.events)

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident, oldest first, as ``GET /incidents/{id}`` answers it."""
        account = self._account
        with account.lock:
            return deep_copy([account.rest_incident(i) for i in account.state.incidents.values()])

    def incident(self, incident_id: str) -> dict[str, Any]:
        with self._account.lock:
            incident = self._account.incident_or_raise(incident_id)
            return deep_copy(self._account.rest_incident(incident))

    def incident_by_key(self, incident_key: str) -> dict[str, Any] | None:
        """The newest incident with that key (open or not), None when there is none."""
        account = self._account
        with account.lock:
            found = [i for i in account.state.incidents.values() if i.incident_key == incident_key]
            return deep_copy(account.rest_incident(found[-1])) if found else None

    def alerts(self, incident_id: str) -> list[dict[str, Any]]:
        with self._account.lock:
            return deep_copy(self._account.incident_or_raise(incident_id).alerts)

    def log_entries(self, incident_id: str) -> list[dict[str, Any]]:
        with self._account.lock:
            return deep_copy(self._account.incident_or_raise(incident_id).log_entries)

    def notes(self, incident_id: str) -> list[dict[str, Any]]:
        with self._account.lock:
            return deep_copy(self._account.incident_or_raise(incident_id).notes)

    def webhook_events(self) -> list[dict[str, Any]]:
        """Every v3 envelope emitted, with or without a subscription to deliver it."""
        with self._account.lock:
            return deep_copy(self._account.state.webhook_events)

    def deliveries(self) -> list[Delivery]:
        with self._account.lock:
            return list(self._account.state.deliveries)

    def wait_deliveries(
        self, n: int, *, event_type: str | None = None, timeout: float = 10.0
    ) -> list[Delivery]:
        """Wait until `n` deliveries (of `event_type`, when given) have settled (delivered,
        dropped, failed); returns them in order. TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            settled = [
                d
                for d in self.deliveries()
                if d.done and (event_type is None or d.event_type == event_type)
            ]
            if len(settled) >= n:
                return settled
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(settled)} of {n} deliveries settled in {timeout} s")
            time.sleep(0.01)

    def drain(self, timeout: float = 10.0) -> list[Delivery]:
        """Wait until nothing is queued or in flight; returns every delivery."""
        if not self._sender.wait_idle(timeout):
            raise TimeoutError(f"webhook deliveries still pending after {timeout} s")
        return self.deliveries()

    def reset(self) -> None:
        """Forget everything (users, services, on-calls, integrations, incidents,
        subscriptions, workflows, forced statuses, requests, deliveries); bring it up.
        Deliveries still queued are cancelled."""
        self.set_down(False)
        self._sender.cancel_pending()
        self._account.reset()
