"""PagerDuty's v3 webhooks as the sim sends them: the envelope, the signature, and the
sender thread that delivers (and retries) them.

A change to an incident emits one envelope ``{"event": {id, event_type, resource_type,
occurred_at, agent, client, data}}``; each subscription whose event types (and service
filter) match gets one `Delivery` of its exact bytes, with these headers:

    Content-Type            application/json; charset=utf-8
    User-Agent              PagerDuty-Webhook/V3.0
    X-PagerDuty-Signature   v1=<hex HMAC-SHA256(secret, raw body)>, comma-separated,
                            newest secret first, while a secret is rotated
    X-Webhook-Id            unique per delivery, the same on its retries and `redeliver`
    X-Webhook-Subscription  the subscription id
    (plus the subscription's custom headers)

`Sender` POSTs deliveries (webhooks and Incident Workflow requests alike) from one thread,
never inside the request that caused them, in order, one at a time. A delivery answered 5xx
or 429, or not answered (connection refused, timeout), is retried up to 4 times (5 attempts,
as PagerDuty) after the retry delays; other 4xx and TLS errors drop it at once (PagerDuty's
"permanent errors").

Nothing here knows the sim's state: this is the wire format and the transport.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

__all__ = [
    "EMITTED_EVENT_TYPES",
    "WEBHOOK_EVENT_TYPES",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_USER_AGENT",
    "Attempt",
    "Delivery",
    "Sender",
    "Subscription",
    "Verify",
    "deliveries_for",
    "envelope",
    "is_tls_error",
    "sign",
    "signature",
]

# v3 webhook event types (docs/webhooks/01-Overview.md); the sim emits the incident.* ones
# marked in EMITTED_EVENT_TYPES, and accepts subscriptions to any of these.
WEBHOOK_EVENT_TYPES = frozenset(
    {
        "incident.acknowledged",
        "incident.annotated",
        "incident.delegated",
        "incident.escalated",
        "incident.priority_updated",
        "incident.reassigned",
        "incident.reopened",
        "incident.resolved",
        "incident.responder.added",
        "incident.responder.replied",
        "incident.status_update_published",
        "incident.triggered",
        "incident.unacknowledged",
        "service.created",
        "service.deleted",
        "service.updated",
    }
)
EMITTED_EVENT_TYPES = frozenset(
    {
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
        "incident.escalated",
        "incident.reassigned",
        "incident.annotated",
    }
)
WEBHOOK_USER_AGENT = "PagerDuty-Webhook/V3.0"
WEBHOOK_MAX_ATTEMPTS = 5  # PagerDuty: "retried up to 4 times (total of 5 attempts)"

Verify = bool | str | ssl.SSLContext


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a delivery: the status answered, or why there was no answer."""

    at: float  # time.time()
    status: int | None
    error: str | None = None


@dataclass(eq=False, slots=True)
class Delivery:
    """One webhook (or workflow request) to send, and what became of it.

    `outcome`: pending → delivered (2xx), dropped (4xx other than 429, TLS error: not
    retried), failed (still 5xx/429/unanswered after every attempt) or cancelled (`reset`).
    """

    id: str  # the X-Webhook-Id of a subscription's delivery; an internal id for a workflow
    kind: Literal["webhook", "workflow"]
    url: str
    headers: dict[str, str]
    body: bytes
    verify: Verify = True
    event_type: str | None = None  # webhooks: "incident.acknowledged"
    subscription_id: str | None = None
    workflow: str | None = None
    incident_id: str | None = None
    redelivery_of: Delivery | None = None
    attempts: list[Attempt] = field(default_factory=list)
    outcome: Literal["pending", "delivered", "dropped", "failed", "cancelled"] = "pending"
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def status(self) -> int | None:
        """The last status code answered (None: never answered)."""
        for attempt in reversed(self.attempts):
            if attempt.status is not None:
                return attempt.status
        return None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def json(self) -> Any:
        return json.loads(self.body)

    def wait(self, timeout: float = 10.0) -> Delivery:
        """Block until delivered, dropped, failed or cancelled; TimeoutError otherwise."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"delivery {self.id} to {self.url} still {self.outcome}")
        return self

    def again(self) -> Delivery:
        """The same delivery sent once more (same body, headers and id), as PagerDuty's
        at-least-once delivery may."""
        return Delivery(
            id=self.id,
            kind=self.kind,
            url=self.url,
            headers=dict(self.headers),
            body=self.body,
            verify=self.verify,
            event_type=self.event_type,
            subscription_id=self.subscription_id,
            workflow=self.workflow,
            incident_id=self.incident_id,
            redelivery_of=self,
        )

    def _finish(self, outcome: Literal["delivered", "dropped", "failed", "cancelled"]) -> None:
        self.outcome = outcome
        self._done.set()


@dataclass(slots=True)
class Subscription:
    """A v3 webhook subscription: where to deliver, which events, signed with what."""

    id: str
    url: str
    secrets: list[str]  # newest first; two while rotating
    event_types: frozenset[str]
    verify: Verify
    service_id: str | None
    custom_headers: dict[str, str]


# ---------------------------------------------------------------------- the envelope


def envelope(
    event_type: str,
    resource_type: str,
    data: dict[str, Any],
    *,
    occurred_at: str,
    agent: dict[str, Any] | None,
    client: dict[str, Any] | None,
) -> dict[str, Any]:
    """The v3 envelope of one event (a fresh event id each time)."""
    return {
        "event": {
            "id": str(uuid.uuid4()),
            "event_type": event_type,
            "resource_type": resource_type,
            "occurred_at": occurred_at,
            "agent": agent,
            "client": client,
            "data": data,
        }
    }


def deliveries_for(
    event: dict[str, Any],
    subscriptions: Iterable[Subscription],
    *,
    service_id: str,
    incident_id: str,
) -> list[Delivery]:
    """One signed delivery of `event` (an envelope) per subscription that wants it: its
    event types include the event's, and its service filter, if any, is `service_id`."""
    event_type = event["event"]["event_type"]
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    deliveries = []
    for sub in subscriptions:
        if event_type not in sub.event_types:
            continue
        if sub.service_id is not None and sub.service_id != service_id:
            continue
        delivery_id = str(uuid.uuid4())
        headers = {
            **sub.custom_headers,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": WEBHOOK_USER_AGENT,
            "X-PagerDuty-Signature": sign(body, sub.secrets),
            "X-Webhook-Id": delivery_id,
            "X-Webhook-Subscription": sub.id,
        }
        deliveries.append(
            Delivery(
                id=delivery_id,
                kind="webhook",
                url=sub.url,
                headers=headers,
                body=body,
                verify=sub.verify,
                event_type=event_type,
                subscription_id=sub.id,
                incident_id=incident_id,
            )
        )
    return deliveries


# ---------------------------------------------------------------------- signatures


def signature(body: bytes, secret: str) -> str:
    """``v1=<hex HMAC-SHA256>`` of the raw body with one secret."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets_: list[str]) -> str:
    """The ``X-PagerDuty-Signature`` value: one signature per secret, comma-separated."""
    return ",".join(signature(body, s) for s in secrets_)


# ---------------------------------------------------------------------- the sender


class Sender:
    """Sends deliveries from one thread, in order, one at a time (PagerDuty keeps a
    subscription's webhooks in order and holds later ones while one is being retried)."""

    def __init__(self, *, retry_delays: tuple[float, ...], timeout: float) -> None:
        self.retry_delays = retry_delays
        self.timeout = timeout
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._pending = 0
        self._idle = threading.Condition()
        self._clients: dict[object, httpx.Client] = {}

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pagerduty-sim-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self._thread = None
        self.cancel_pending()
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def submit(self, delivery: Delivery) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(delivery)

    def cancel_pending(self) -> None:
        """Forget what is queued; the delivery in flight stops before its next retry."""
        self._generation += 1
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item._finish("cancelled")
                self._settled()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _settled(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                continue
            try:
                self._deliver(item)
            finally:
                if not item.done:
                    item._finish("cancelled")
                self._settled()

    def _deliver(self, delivery: Delivery) -> None:
        generation = self._generation
        delays = (0.0, *self.retry_delays)[:WEBHOOK_MAX_ATTEMPTS]
        for delay in delays:
            if delay and self._stop.wait(delay):
                return
            if generation != self._generation:
                return
            try:
                response = self._client(delivery.verify).post(
                    delivery.url, content=delivery.body, headers=delivery.headers
                )
            except httpx.TransportError as e:
                delivery.attempts.append(Attempt(time.time(), None, f"{type(e).__name__}: {e}"))
                if is_tls_error(e):
                    delivery._finish("dropped")  # PagerDuty does not retry TLS errors
                    return
                continue
            delivery.attempts.append(Attempt(time.time(), response.status_code))
            if response.is_success:
                delivery._finish("delivered")
                return
            if response.status_code != 429 and response.status_code < 500:
                delivery._finish("dropped")
                return
        delivery._finish("failed")

    def _client(self, verify: Verify) -> httpx.Client:
        key: object = verify if isinstance(verify, bool | str) else id(verify)
        client = self._clients.get(key)
        if client is None:
            client = httpx.Client(verify=verify, timeout=self.timeout, follow_redirects=False)
            self._clients[key] = client
        return client


def is_tls_error(error: BaseException) -> bool:
    """Whether a transport error was (caused by) a TLS failure: not retried."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
