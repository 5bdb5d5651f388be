"""PagerDuty, over the official `pagerduty` client: the `OnCall` port (REST API v2) and
`PagerDutyPaging` (Events API v2 for incidents, REST API v2 for reading them and notes).

This is the only module that imports `pagerduty`. The clients are synchronous (httpx
underneath), so every call runs in `asyncio.to_thread`, through `_off_thread`, where it is
timed (`bot.adapters.calls`: latency and errors in /metrics).

The clients' defaults are tamed here, in one place (`_tame`):

- their retry on HTTP 429 is unbounded by default (``retry`` empty means "retry 429 for
  ever", sleeping 1.5 s × 2ⁿ and ignoring ``Retry-After``), and `EventsApiV2Client` also
  retries 500/502/503/504 2, 4, 6 and 6 times: every retried status is bounded to the
  adapter's retry count through ``retry[status]`` and ``max_http_attempts`` (a total over
  all statuses);
- their backoff (``sleep_timer``) starts at `backoff` seconds instead of 3 s, so a person
  waiting on an authorisation (or a page) is not kept for tens of seconds;
- connection errors are retried a bounded number of times (default 3 with the same long
  sleeps), and each request has a `timeout` (default 60 s);
- the CA to trust (`ca_file`) is an ``ssl.SSLContext`` passed as httpx's ``verify``; the
  clients refuse any base URL that is not ``https://`` (`ValueError` here, up front).

Errors are translated at this border:

    401, 403                                    → Forbidden("PagerDuty", …)
    429 after the bounded retries               → Unreachable("PagerDuty", …, delay=Retry-After)
    5xx, connection errors, timeouts, TLS       → Unreachable("PagerDuty", …)
    any other 4xx                               → PagerDutyRefused (a PermanentError), with
                                                  PagerDuty's message and errors (an invalid
                                                  event's ``errors``, e.g. "Invalid routing key")
    a REST call without api_token / from_email  → PagerDutyNotConfigured (a PermanentError)

Routing keys and the API token are secrets: they never appear in a log line or an error
(the Events API carries the routing key in the body, so URLs and messages stay clean).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pagerduty

from bot.adapters._http import header, parse_retry_after
from bot.adapters.calls import CallObserver, timed
from bot.core.errors import Forbidden, InvalidRequest, PermanentError, Unreachable

SERVICE = "PagerDuty"
REST_URL = "https://api.pagerduty.com"
EVENTS_URL = "https://events.pagerduty.com"
EVENTS_PATH = "/v2/enqueue"  # the client appends it to its base URL
EVENTS_RETRIED = (429, 500, 502, 503, 504)  # what PagerDuty says to retry for events
MAX_SUMMARY = 1024  # Events API v2: payload.summary is at most 1024 characters

log = logging.getLogger(__name__)


class PagerDutyRefused(PermanentError):
    """PagerDuty answered a 4xx other than 401/403/429; retrying the same call will not help."""

    def __init__(self, what: str, status: int, detail: str) -> None:
        super().__init__(f"PagerDuty refused {what}: HTTP {status} {detail}".rstrip())
        self.what, self.status, self.detail = what, status, detail


class PagerDutyNotConfigured(PermanentError):
    """A PagerDuty REST call needs what the settings do not give (an API token, or the
    ``From`` email writes need)."""

    def __init__(self, what: str, missing: str) -> None:
        super().__init__(f"rollbot cannot {what}: set {missing}")
        self.what, self.missing = what, missing


class PagerDutyOnCall:
    """`OnCall` over `pagerduty.RestApiV2Client`. Answers are cached `ttl` seconds.

    Authorisation asks on every click, so the cache keeps PagerDuty off the click path;
    it must also never let a revoked on-call act for longer than `ttl`. So an answer's age
    counts from when its question was *sent* (a slow or retried request does not make an
    old answer look fresh), `ttl` 0 turns the cache off, and `forget` (PagerDuty told
    rollbot something changed: `bot.web.pagerduty` calls it on every signed webhook) drops
    every answer, including one still in flight: an answer to a question asked before the
    last `forget` is returned to its asker but never kept.

    `ca_file` is the CA bundle to trust instead of the system's (the simulations serve
    HTTPS with a test CA; the client refuses plain http base URLs). `observer` times each
    call (`bot.adapters.calls`).
    """

    def __init__(
        self,
        *,
        api_token: str,
        base_url: str = "https://api.pagerduty.com",
        timeout: float = 5.0,
        max_429_retries: int = 2,
        max_network_retries: int = 1,
        backoff: float = 0.5,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        ca_file: str | None = None,
        page_size: int = 100,
        observer: CallObserver | None = None,
    ) -> None:
        if max_429_retries < 0 or max_network_retries < 0:
            raise ValueError("retry counts cannot be negative")
        client = _rest_client(api_token, base_url=base_url, verify=_verify(ca_file))
        _tame(
            client,
            timeout=timeout,
            statuses=(429,),
            http_retries=max_429_retries,
            network_retries=max_network_retries,
            backoff=backoff,
        )
        self.client = client
        self.observer = observer
        self.base_url = base_url
        self.max_429_retries = max_429_retries
        self.ttl = ttl
        self.clock = clock
        self.page_size = page_size
        self._on_call: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Bumped by `forget`: an answer asked for under an older generation is not kept.
        self._generation = 0

    async def on_call_emails(self, escalation_policy_id: str) -> frozenset[str]:
        """Emails of everyone on call now for the escalation policy, at any level."""
        cached = self._fresh(escalation_policy_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(escalation_policy_id, asyncio.Lock())
        async with lock:  # one request per policy at a time; latecomers read the cache
            cached = self._fresh(escalation_policy_id)
            if cached is not None:
                return cached
            asked, generation = self.clock(), self._generation
            emails = await _off_thread(self.observer, self._read_on_call, escalation_policy_id)
            if generation == self._generation:  # no `forget` since it was asked
                self._on_call[escalation_policy_id] = (asked, emails)
            return emails

    async def service_description(self, service_id: str) -> str:
        """The PagerDuty service's description (where teams link the runbook)."""
        return await _off_thread(self.observer, self._read_service_description, service_id)

    def forget(self) -> None:
        """Drop the cache, and any answer in flight with it (PagerDuty told of a change)."""
        self._generation += 1
        self._on_call.clear()

    def close(self) -> None:
        self.client.close()

    def _fresh(self, escalation_policy_id: str) -> frozenset[str] | None:
        cached = self._on_call.get(escalation_policy_id)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        return None

    # ------------------------------------------------------------------ in a worker thread

    def _read_service_description(self, service_id: str) -> str:
        try:
            service = self.client.rget(f"/services/{service_id}")
        except pagerduty.Error as e:
            raise translate(f"service {service_id}", e) from e
        return str((service or {}).get("description") or "")

    def _read_on_call(self, escalation_policy_id: str) -> frozenset[str]:
        what = f"the on-calls of escalation policy {escalation_policy_id}"
        params = {"escalation_policy_ids[]": [escalation_policy_id], "include[]": ["users"]}
        try:
            oncalls = list(
                self.client.iter_all("/oncalls", params=params, page_size=self.page_size)
            )
            emails: set[str] = set()
            for oncall in oncalls:
                user = oncall.get("user") or {}
                email = user.get("email")
                if not email and user.get("id"):
                    # a bare user_reference (include[] ignored): read the user itself
                    email = self.client.rget(f"/users/{user['id']}").get("email")
                if email:
                    emails.add(str(email).strip())
            return frozenset(emails)
        except pagerduty.Error as e:
            raise translate(what, e) from e


class PagerDutyPaging:
    """PagerDuty incidents for rollbot's incidents, over `pagerduty.EventsApiV2Client` and
    `pagerduty.RestApiV2Client`.

    - Events API v2 (`trigger`, `acknowledge`, `resolve`): the routing key is per call (one
      per service), so one client is kept per key (its connections reused). `events_url`
      is the host (``https://events.pagerduty.com``); the client appends ``/v2/enqueue``
      itself, so a URL already ending in it is trimmed. 429 and 5xx are retried
      `max_retries` times (PagerDuty asks for retries; the dedup key makes them safe).
    - REST API v2 (`incident_by_key`, `incident`, `user`, `add_note`): needs `api_token`;
      writes need `from_email`, the PagerDuty user rollbot writes as (``From``). Only 429
      is retried (a 5xx on a note may have added it).
    - Connection errors are retried `max_retries` times; each request has `timeout`.
    - `observer` times each call, Events or REST (`bot.adapters.calls`).
    """

    def __init__(
        self,
        *,
        api_token: str | None,
        api_url: str = REST_URL,
        events_url: str = EVENTS_URL,
        from_email: str | None,
        ca_file: str | None = None,
        timeout: float = 5.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        page_size: int = 100,
        observer: CallObserver | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("retry counts cannot be negative")
        self._verify = _verify(ca_file)
        self.observer = observer
        self.timeout, self.backoff, self.max_retries = timeout, backoff, max_retries
        self.events_url = _events_base(events_url)
        if not self.events_url.startswith("https://"):
            raise ValueError(
                f"PagerDuty events URL {events_url!r}: the client needs an https:// URL"
            )
        self.api_url = api_url
        self.from_email = from_email or None
        self.page_size = page_size
        self.rest: pagerduty.RestApiV2Client | None = None
        if api_token:
            self.rest = _rest_client(
                api_token, base_url=api_url, verify=self._verify, default_from=self.from_email
            )
            _tame(
                self.rest,
                timeout=timeout,
                statuses=(429,),
                http_retries=max_retries,
                network_retries=max_retries,
                backoff=backoff,
            )
        self._events: dict[str, pagerduty.EventsApiV2Client] = {}
        self._events_lock = threading.Lock()

    # ------------------------------------------------------------------ Events API v2

    async def trigger(
        self,
        routing_key: str,
        *,
        dedup_key: str | None,
        summary: str,
        source: str,
        severity: str,
        custom_details: dict[str, Any],
        links: list[dict[str, Any]],
        component: str | None = None,
        group: str | None = None,
        class_: str | None = None,
    ) -> str:
        """Open (or add to) the incident for `dedup_key` on the routing key's service;
        returns the dedup key (PagerDuty's own when `dedup_key` is None)."""
        payload: dict[str, Any] = {
            "summary": _clip(summary, MAX_SUMMARY),
            "source": source,
            "severity": severity,
            # the client insists on `type(x) is dict` (a dict subclass raises ValueError)
            "custom_details": dict(custom_details),
        }
        for name, value in (("component", component), ("group", group), ("class", class_)):
            if value:
                payload[name] = value
        event: dict[str, Any] = {"payload": payload, "client": "rollbot"}
        if links:
            event["links"] = [dict(link) for link in links]
        return await _off_thread(
            self.observer, self._send, routing_key, "trigger", dedup_key, event
        )

    async def acknowledge(self, routing_key: str, dedup_key: str) -> None:
        await _off_thread(self.observer, self._send, routing_key, "acknowledge", dedup_key, {})

    async def resolve(self, routing_key: str, dedup_key: str) -> None:
        await _off_thread(self.observer, self._send, routing_key, "resolve", dedup_key, {})

    # ------------------------------------------------------------------ REST API v2

    async def incident_by_key(self, dedup_key: str) -> dict[str, Any] | None:
        """The incident PagerDuty opened for `dedup_key`: the open one, else the latest;
        None when there is none (yet: the Events API is asynchronous)."""
        return await _off_thread(self.observer, self._incident_by_key, dedup_key)

    async def incident(self, incident_id: str) -> dict[str, Any]:
        """``GET /incidents/{id}``'s incident."""
        path = f"/incidents/{_pd_id(incident_id)}"
        return await _off_thread(self.observer, self._get, path, f"incident {incident_id}")

    async def user(self, user_id: str) -> dict[str, Any]:
        """``GET /users/{id}``'s user (``email``, ``name``, …)."""
        path = f"/users/{_pd_id(user_id)}"
        return await _off_thread(self.observer, self._get, path, f"user {user_id}")

    async def add_note(self, incident_id: str, content: str) -> str:
        """Add a note to the incident as `from_email`; returns the note's id."""
        return await _off_thread(self.observer, self._add_note, _pd_id(incident_id), content)

    async def note_contents(self, incident_id: str) -> list[str]:
        """The contents of the incident's notes (``GET /incidents/{id}/notes``)."""
        return await _off_thread(self.observer, self._note_contents, _pd_id(incident_id))

    def close(self) -> None:
        if self.rest is not None:
            self.rest.close()
        with self._events_lock:
            for client in self._events.values():
                client.close()
            self._events.clear()

    # ------------------------------------------------------------------ in a worker thread

    def _send(
        self, routing_key: str, action: str, dedup_key: str | None, event: dict[str, Any]
    ) -> str:
        what = f"the {action} event for dedup key {dedup_key}"
        client = self._events_client(routing_key)
        try:
            key = client.send_event(action, dedup_key=dedup_key, **event)
        except pagerduty.Error as e:
            # `from None`: the client's own message may carry the key's last characters
            raise translate(what, e) from None
        log.info("pagerduty event accepted", extra={"pd_action": action, "dedup_key": key})
        return str(key)

    def _events_client(self, routing_key: str) -> pagerduty.EventsApiV2Client:
        with self._events_lock:
            client = self._events.get(routing_key)
            if client is None:
                client = pagerduty.EventsApiV2Client(
                    routing_key, base_url=self.events_url, verify=self._verify
                )
                _tame(
                    client,
                    timeout=self.timeout,
                    statuses=EVENTS_RETRIED,
                    http_retries=self.max_retries,
                    network_retries=self.max_retries,
                    backoff=self.backoff,
                )
                self._events[routing_key] = client
            return client

    def _rest_client(self, what: str) -> pagerduty.RestApiV2Client:
        if self.rest is None:
            raise PagerDutyNotConfigured(what, "ROLLBOT_PAGERDUTY__API_TOKEN")
        return self.rest

    def _incident_by_key(self, dedup_key: str) -> dict[str, Any] | None:
        what = f"the incidents with key {dedup_key}"
        rest = self._rest_client(f"read {what}")
        params = {"incident_key": dedup_key, "date_range": "all"}
        try:
            found: list[dict[str, Any]] = list(
                rest.iter_all("/incidents", params=params, page_size=self.page_size)
            )
        except pagerduty.Error as e:
            raise translate(what, e) from e
        if not found:
            return None
        open_ = [i for i in found if i.get("status") != "resolved"]
        return max(open_ or found, key=_newest)

    def _get(self, path: str, what: str) -> dict[str, Any]:
        rest = self._rest_client(f"read {what}")
        try:
            found = rest.rget(path)
        except pagerduty.Error as e:
            raise translate(what, e) from e
        if not isinstance(found, dict):
            raise Unreachable(SERVICE, f"{what}: unexpected answer")
        return found

    def _note_contents(self, incident_id: str) -> list[str]:
        what = f"the notes of incident {incident_id}"
        rest = self._rest_client(f"read {what}")
        try:
            notes = rest.rget(f"/incidents/{incident_id}/notes")
        except pagerduty.Error as e:
            raise translate(what, e) from e
        if not isinstance(notes, list):
            raise Unreachable(SERVICE, f"{what}: unexpected answer")
        return [str(n.get("content", "")) for n in notes if isinstance(n, dict)]

    def _add_note(self, incident_id: str, content: str) -> str:
        what = f"a note on incident {incident_id}"
        rest = self._rest_client(f"add {what}")
        if not self.from_email:
            raise PagerDutyNotConfigured(
                f"add {what}",
                "pagerduty.from_email (ROLLBOT_PAGERDUTY__FROM_EMAIL), the email of the "
                "PagerDuty user rollbot writes as",
            )
        try:
            note = rest.rpost(f"/incidents/{incident_id}/notes", json={"content": content})
        except pagerduty.Error as e:
            raise translate(what, e) from e
        if not isinstance(note, dict) or not note.get("id"):
            raise Unreachable(SERVICE, f"{what}: unexpected answer")
        return str(note["id"])


# ---------------------------------------------------------------------- plumbing

T = TypeVar("T")


async def _off_thread(observer: CallObserver | None, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` in a worker thread (the clients are synchronous), timed as one call
    to PagerDuty (its errors already typed by `translate`)."""
    with timed(observer):
        return await asyncio.to_thread(call, *args)


# ---------------------------------------------------------------------- client construction


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    """httpx's ``verify``: the system's CAs, or an SSLContext trusting `ca_file` as well."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def _rest_client(
    api_token: str,
    *,
    base_url: str,
    verify: ssl.SSLContext | bool,
    default_from: str | None = None,
) -> pagerduty.RestApiV2Client:
    try:
        return pagerduty.RestApiV2Client(
            api_token, default_from=default_from, base_url=base_url, verify=verify
        )
    except pagerduty.UrlError as e:
        raise ValueError(f"PagerDuty base URL {base_url!r}: {e}") from e


def _tame(
    client: pagerduty.ApiClient,
    *,
    timeout: float,
    statuses: Iterable[int],
    http_retries: int,
    network_retries: int,
    backoff: float,
) -> None:
    """Bound the client's retries to exactly `http_retries` (all `statuses` together) and
    `network_retries`, starting the backoff at `backoff` seconds."""
    client.timeout = timeout  # type: ignore[assignment]  # declared int; httpx takes float
    # For a status in `retry`, the client stops retrying (and returns the response) once it
    # has retried retry[status] times or more than max_http_attempts times in all;
    # retry[s] = 0 would mean "the default", i.e. for ever for 429. So retry[s] >= 1 and
    # max_http_attempts = n - 1 stop it after exactly n retries, n = 0 included.
    client.retry = {status: max(1, http_retries) for status in statuses}
    client.max_http_attempts = http_retries - 1
    client.max_network_attempts = network_retries
    # The first sleep is sleep_timer × sleep_timer_base, then it doubles.
    client.sleep_timer = backoff / client.sleep_timer_base


def _events_base(url: str) -> str:
    """The Events API host: the client appends ``/v2/enqueue`` to it."""
    url = url.rstrip("/")
    return url[: -len(EVENTS_PATH)] if url.endswith(EVENTS_PATH) else url


def _pd_id(value: str) -> str:
    """A PagerDuty object id (letters and digits), refused otherwise before it reaches a
    URL path."""
    if not value or not value.isascii() or not value.isalnum():
        raise InvalidRequest(f"{value!r} is not a PagerDuty id")
    return value


def _newest(incident: dict[str, Any]) -> tuple[str, int]:
    return str(incident.get("created_at") or ""), int(incident.get("number") or 0)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------- errors


def translate(what: str, error: pagerduty.Error) -> Exception:
    """The bot.core.errors equivalent of a `pagerduty` client error."""
    response = getattr(error, "response", None)
    if response is None:
        cause = error.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(error)
        return Unreachable(SERVICE, f"{what}: {detail}")
    status = int(response.status_code)
    message = _error_message(response)
    if status in (401, 403):
        return Forbidden(SERVICE, f"HTTP {status} {message}".strip())
    if status == 429:
        retry_after = parse_retry_after(header(response.headers, "Retry-After"))
        return Unreachable(
            SERVICE,
            f"rate-limited (HTTP 429) on {what}, still after retries",
            delay=retry_after,
        )
    if status >= 500:
        return Unreachable(SERVICE, f"{what}: HTTP {status} {message}".strip())
    if status < 400:  # e.g. a 200 whose body is not the JSON it should be
        return Unreachable(SERVICE, f"{what}: unexpected answer: {error}")
    return PagerDutyRefused(what, status, message)


def _error_message(response: Any) -> str:
    """PagerDuty's error body in words.

    REST ``{"error": {"message", "code", "errors"?}}`` → "Authentication failed (code 2006)",
    "Invalid Input Provided (code 2001): Incident Already Resolved"; Events API ``{"status",
    "message", "errors"}`` → "Event object is invalid: Invalid routing key".
    """
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        code = error.get("code")
        text = f"{message} (code {code})" if code is not None else message
        errors = error.get("errors")
    elif isinstance(body.get("status"), str):
        text = str(body.get("message") or body["status"])
        errors = body.get("errors")
    else:
        return ""
    if isinstance(errors, list) and errors:
        text = f"{text}: {'; '.join(str(e) for e in errors)}"
    return text
