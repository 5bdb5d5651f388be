"""Jira, over the official `jira` client (REST API v2): the `Tickets` port.

This is the only module that imports `jira`. The client is synchronous (`requests`
underneath), so every call runs in `asyncio.to_thread`, one at a time (the client is not
documented as thread-safe).

What the client does by default, and what is done about it here:

- it calls serverInfo while being constructed: built lazily with ``get_server_info=False``,
  so making a `JiraTickets` touches no network and Jira being down at start is not fatal;
- without that call it does not know it talks to Jira Cloud (``deploymentType`` stays None),
  and then `search_issues` uses the classic ``GET /rest/api/2/search``, which Atlassian has
  removed from Cloud (410 Gone). So ``deploymentType`` is set from `cloud`, or from
  serverInfo on first need: on Cloud the client then uses ``GET /rest/api/2/search/jql``
  (the enhanced search, `nextPageToken` paging), on Server/Data Center ``GET
  /rest/api/2/search``. Either way it first reads ``GET /rest/api/2/field`` to translate
  field names (cached once non-empty);
- its `ResilientSession` retries connection errors, and 429/503 answers that carry
  ``Retry-After``, sleeping up to 60 s with exponential backoff (10 s × 2ⁿ for a refused
  connection): bounded here by `max_retries` (default 1) and `max_retry_delay` (default
  1 s), so an outage fails fast and rollbot retries from its own durable queue. A 503
  without ``Retry-After`` and a read timeout are not retried at all;
- `create_issue` looks the project and the issue type up when they are given as strings:
  passing ``{"key": …}`` and ``{"name": …}`` sends the POST alone; ``prefetch=False`` skips
  reading the issue back;
- its `JIRAError` text joins the *values* of Jira's ``errors`` and drops the field names,
  and its ``str()`` dumps request and response headers: the error body is read again here,
  and neither is ever put in a message (the credentials travel in a header).

Errors are translated at this border:

    400                                          → InvalidRequest naming every field error
    401, 403                                     → Forbidden("Jira", …)
    404 on an issue                              → TargetNotFound("Jira issue", project, key)
    429 (after the bounded retries)              → Unreachable("Jira", …, delay=Retry-After)
    5xx, connection errors, timeouts, non-JSON   → Unreachable("Jira", …)
    any other 4xx                                → InvalidRequest

Creating is at-least-once, like every retried POST: a connection dropped after Jira
created the issue is retried by the client (and by rollbot's queue), which can file a
second issue; `find_by_label` is how callers notice (eventually: Jira Cloud's search index
lags creation by a few seconds).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import jira
import requests
from jira.exceptions import JIRAError

from bot.adapters._http import header, parse_retry_after
from bot.adapters.calls import CallObserver, timed
from bot.core.errors import Forbidden, InvalidRequest, TargetNotFound, Unreachable
from bot.core.model import TicketRef, TicketSpec

SERVICE = "Jira"
REF_FIELDS = ["summary", "status", "labels", "duedate", "resolutiondate"]
MAX_FOUND = 100  # a label names one release's ticket of one kind: a handful at most

log = logging.getLogger(__name__)

T = TypeVar("T")


class JiraTickets:
    """`Tickets` over `jira.JIRA`.

    Cloud: `email` + `api_token` (basic auth). Server/Data Center: `email=None` and a
    personal access token as `api_token` (bearer). `cloud` None: decided from serverInfo's
    ``deploymentType`` the first time it matters (the user lookup and the search differ).
    """

    def __init__(
        self,
        *,
        url: str,
        email: str | None,
        api_token: str,
        timeout: float = 10.0,
        max_retries: int = 1,
        max_retry_delay: float = 1.0,
        cloud: bool | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        if max_retries < 0 or max_retry_delay < 0:
            raise ValueError("max_retries and max_retry_delay cannot be negative")
        self.url = url.rstrip("/")
        self.email = email
        self._token = api_token
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_delay = max_retry_delay
        self.cloud = cloud
        self.observer = observer
        self._client: jira.JIRA | None = None
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}  # email → accountId (Cloud) or user name (Server)

    def __repr__(self) -> str:  # never the token
        return f"JiraTickets(url={self.url!r}, email={self.email!r}, cloud={self.cloud!r})"

    # ------------------------------------------------------------------ the port

    async def check(self) -> str:
        return await self._run("serverInfo", None, self._check)

    async def find_by_label(self, project: str, label: str) -> list[TicketRef]:
        return await self._run(
            f"the search for label {label} in {project}", None, self._find, project, label
        )

    async def create(self, spec: TicketSpec) -> TicketRef:
        given = {"assignee": spec.assignee} if spec.assignee else {}
        return await self._run("the ticket", None, self._create, spec, given=given)

    async def get(self, key: str) -> TicketRef:
        return await self._run(f"reading {key}", key, self._get, key)

    async def set_due(self, key: str, due: date | None) -> None:
        await self._run(f"the due date of {key}", key, self._set_due, key, due)

    async def comment(self, key: str, body: str) -> None:
        await self._run(f"a comment on {key}", key, self._comment, key, body)

    async def reopen(self, key: str) -> str | None:
        return await self._run(f"reopening {key}", key, self._reopen, key)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()  # type: ignore[no-untyped-call]  # untyped in jira
            self._client = None

    # ------------------------------------------------------------------ plumbing

    async def _run(
        self,
        what: str,
        key: str | None,
        fn: Callable[..., T],
        *args: Any,
        given: dict[str, str] | None = None,
    ) -> T:
        """`fn(*args)` in a worker thread, errors translated, timed as one call to Jira
        (`bot.adapters.calls`); `what` names the object of the call in messages, `given`
        the values sent for fields Jira may refuse."""

        def call() -> T:
            with self._lock, timed(self.observer):  # the call itself, not its wait for the lock
                try:
                    return fn(*args)
                except JIRAError as e:
                    raise translate(what, key, e, base_url=self.url, given=given) from None
                except requests.RequestException as e:
                    detail = _network_detail(e, self.timeout)
                    raise Unreachable(SERVICE, f"{detail}, on {what}") from None

        return await asyncio.to_thread(call)

    def _jira(self) -> jira.JIRA:
        """The client, built on first use; `deploymentType` set once known."""
        if self._client is None:
            auth: dict[str, Any] = (
                {"basic_auth": (self.email, self._token)}
                if self.email
                else {"token_auth": self._token}
            )
            client = jira.JIRA(
                server=self.url,
                get_server_info=False,
                max_retries=self.max_retries,
                timeout=self.timeout,
                **auth,
            )
            # ResilientSession(max_retry_delay=60) is not a constructor option of JIRA.
            client._session.max_retry_delay = self.max_retry_delay  # type: ignore[assignment]
            self._client = client
            if self.cloud is not None:
                self._set_deployment(self.cloud)
        return self._client

    def _set_deployment(self, cloud: bool) -> None:
        self.cloud = cloud
        if self._client is not None:
            # What JIRA(get_server_info=True) would have set; it picks the search endpoint.
            self._client.deploymentType = "Cloud" if cloud else "Server"

    def _is_cloud(self) -> bool:
        client = self._jira()
        if self.cloud is None:
            self._set_deployment(client.server_info().get("deploymentType") == "Cloud")
        return bool(self.cloud)

    # ------------------------------------------------------------------ in a worker thread

    def _check(self) -> str:
        info = self._jira().server_info()
        deployment = str(info.get("deploymentType") or "Server")
        if self.cloud is None:
            self._set_deployment(deployment == "Cloud")
        version = str(info.get("version") or "").split("-")[0]
        if not version:
            version = ".".join(str(n) for n in info.get("versionNumbers") or [])
        return f"Jira {deployment} {version or '(unknown version)'}"

    def _find(self, project: str, label: str) -> list[TicketRef]:
        self._is_cloud()  # known before searching: it picks the endpoint
        jql = f"project = {_jql_string(project)} AND labels = {_jql_string(label)}"
        found = self._jira().search_issues(jql, maxResults=MAX_FOUND, fields=list(REF_FIELDS))
        return [self._ref(issue.raw) for issue in found]

    def _create(self, spec: TicketSpec) -> TicketRef:
        fields: dict[str, Any] = {
            "project": {"key": spec.project},
            "issuetype": {"name": spec.issue_type},
            "summary": spec.summary,
            "description": spec.description,
            "labels": list(spec.labels),
        }
        if spec.due is not None:
            fields["duedate"] = spec.due.isoformat()
        if spec.assignee:
            fields["assignee"] = self._assignee(spec.assignee)
        fields.update(dict(spec.extra_fields))
        issue = self._jira().create_issue(fields=fields, prefetch=False)
        key = str(issue.key)
        log.info("jira issue created", extra={"jira_key": key, "project": spec.project})
        # As created: the initial status of Jira's default workflows (`get` reads the real one).
        return TicketRef(
            key=key,
            url=self._browse(key),
            status="To Do",
            status_category="new",
            due=spec.due,
            labels=tuple(spec.labels),
        )

    def _get(self, key: str) -> TicketRef:
        return self._ref(self._jira().issue(key, fields=",".join(REF_FIELDS)).raw)

    def _set_due(self, key: str, due: date | None) -> None:
        issue = self._jira().issue(key, fields="duedate")
        issue.update(fields={"duedate": due.isoformat() if due is not None else None})

    def _comment(self, key: str, body: str) -> None:
        self._jira().add_comment(key, body)

    def _reopen(self, key: str) -> str | None:
        client = self._jira()
        status = client.issue(key, fields="status").raw["fields"]["status"]
        if status["statusCategory"]["key"] != "done":
            return str(status["name"])  # not done: nothing to reopen
        transitions = client.transitions(key)
        chosen = _reopening(transitions)
        if chosen is None:
            return None
        client.transition_issue(key, str(chosen["id"]))
        return str(chosen["to"]["name"])

    def _assignee(self, assignee: str) -> dict[str, str]:
        cloud = self._is_cloud()
        ident = self._users.get(assignee.lower()) if "@" in assignee else assignee
        if ident is None:
            ident = self._look_up(assignee, cloud=cloud)
            self._users[assignee.lower()] = ident
        return {"accountId": ident} if cloud else {"name": ident}

    def _look_up(self, email: str, *, cloud: bool) -> str:
        client = self._jira()
        if cloud:
            users = client.search_users(query=email, maxResults=20)
        else:
            users = client.search_users(user=email, maxResults=20)
        raws = [u.raw for u in users]
        exact = [r for r in raws if str(r.get("emailAddress", "")).lower() == email.lower()]
        # Jira Cloud hides emailAddress for most profiles: then one match is the answer.
        hidden = [r for r in raws if "emailAddress" not in r]
        match = exact[0] if exact else (hidden[0] if len(raws) == 1 and hidden else None)
        if match is None:
            many = f" ({len(raws)} users match it, none exactly)" if raws else ""
            raise InvalidRequest(
                f"Jira has no active user with the email {email!r} to assign the ticket "
                f"to{many}. Fix the service's `owners.jira_assignee`."
            )
        return str(match["accountId"] if cloud else match["name"])

    def _browse(self, key: str) -> str:
        return f"{self.url}/browse/{key}"

    def _ref(self, raw: dict[str, Any]) -> TicketRef:
        fields = raw.get("fields") or {}
        status = fields.get("status") or {}
        due = fields.get("duedate")
        resolved = fields.get("resolutiondate")
        key = str(raw["key"])
        return TicketRef(
            key=key,
            url=self._browse(key),
            status=str(status.get("name", "")),
            status_category=str((status.get("statusCategory") or {}).get("key", "")),
            due=date.fromisoformat(due) if due else None,
            labels=tuple(fields.get("labels") or ()),
            resolved_at=datetime.fromisoformat(resolved) if resolved else None,
        )


def _jql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _reopening(transitions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The transition that reopens: to a status outside the done category, preferring one
    named like a reopen, then one to "To Do"/"Open", then any to the new category."""
    candidates = [
        t
        for t in transitions
        if ((t.get("to") or {}).get("statusCategory") or {}).get("key") not in ("done", None)
    ]

    def rank(t: dict[str, Any]) -> int:
        name = str(t.get("name", "")).lower()
        to = t["to"]
        if "reopen" in name or str(to.get("name", "")).lower() == "reopened":
            return 0
        if str(to.get("name", "")).lower() in ("to do", "open", "backlog"):
            return 1
        if to["statusCategory"]["key"] == "new":
            return 2
        return 3

    return min(candidates, key=rank) if candidates else None


def translate(
    what: str,
    key: str | None,
    error: JIRAError,
    *,
    base_url: str,
    given: dict[str, str] | None = None,
) -> Exception:
    """The bot.core.errors equivalent of a `JIRAError` (never its str(): it dumps headers).
    `given`: values sent for fields, named next to Jira's complaint about them."""
    status = error.status_code
    response = error.response
    messages = _messages(response, given or {})
    if status is None or status < 400:
        detail = messages or str(error.text or "no details")
        return Unreachable(SERVICE, f"unexpected answer ({detail}), on {what}")
    if status == 400:
        return InvalidRequest(f"Jira refused {what}: {messages or 'HTTP 400'}")
    if status in (401, 403):
        return Forbidden(SERVICE, f"HTTP {status} {messages}".strip())
    if status == 404 and key is not None:
        project = key.rsplit("-", 1)[0] if "-" in key else "-"
        return TargetNotFound("Jira issue", project, key)
    if status == 429:
        return Unreachable(
            SERVICE,
            f"rate-limited (HTTP 429) on {what}, still after the retries",
            delay=parse_retry_after(header(getattr(response, "headers", None), "Retry-After")),
        )
    if status >= 500:
        return Unreachable(
            SERVICE,
            f"HTTP {status} {messages}, on {what}",
            delay=parse_retry_after(header(getattr(response, "headers", None), "Retry-After")),
        )
    if status == 404:
        return InvalidRequest(
            f"Jira answered 404 to {what} at {base_url}: is jira.url the site's base URL? "
            f"{messages}".strip()
        )
    return InvalidRequest(f"Jira refused {what}: HTTP {status} {messages}".strip())


def _messages(response: Any, given: dict[str, str]) -> str:
    """Jira's error body, every field named: "priority: Field 'priority' is required; …"."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        text = str(getattr(response, "text", "") or "").strip()
        return text[:200]
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    messages = body.get("errorMessages")
    if isinstance(messages, list):
        parts.extend(str(m) for m in messages)
    elif messages:
        parts.append(str(messages))
    errors = body.get("errors")
    if isinstance(errors, dict):
        for name, message in errors.items():
            value = f" (given {given[name]!r})" if name in given else ""
            parts.append(f"{name}: {message}{value}")
    for single in ("errorMessage", "message"):
        if not parts and body.get(single):
            parts.append(str(body[single]))
    return "; ".join(parts)


def _network_detail(error: requests.RequestException, timeout: float) -> str:
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s ({type(error).__name__})"
    if isinstance(error, requests.ConnectionError):
        return f"cannot connect ({type(error).__name__})"
    return f"{type(error).__name__}: the answer was not what Jira sends"
