"""The HTTP face of the Kubernetes sim: routes, watch streaming, injected failures, and the
connection-level behaviour (cut watches, an unreachable server).

``KubeApi`` is one Starlette app answering every path: it records each request, applies the
``fail_next`` rules, serves discovery, checks the bearer token, and maps the resource URLs
(``/apis/<group>/<version>[/namespaces/<ns>]/<plural>[/<name>[/status]]``) onto the store.
``HeldAnswers`` holds the answer of a request the store has already applied (the
``hold_answers`` switch): the change is made, its answer waits for ``release_answers`` and is
lost when the caller goes away first, as an answer is when a client dies mid-request.
A watch is a chunked stream of JSON lines with optional ``BOOKMARK`` events; ``drop_watches``
makes each stream raise ``DroppedWatch`` so uvicorn cuts the connection mid-stream, as a
restarting API server does (the traceback uvicorn would log for it is filtered out).
``protocol_for`` gives the h11 protocol class that aborts every connection while the sim is
"unreachable".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.sim._server import RecordedRequest
from bot.sim.kube.discovery import discovery_document
from bot.sim.kube.errors import DEFAULT_MESSAGES, ApiError, not_found, path_not_found
from bot.sim.kube.patch import BUILTIN_PATCH_TYPES
from bot.sim.kube.resources import RESOURCE_TYPES, ResourceType
from bot.sim.kube.selectors import Filter

if TYPE_CHECKING:
    from bot.sim.kube.sim import KubeSim

__all__ = [
    "DroppedWatch",
    "HeldAnswers",
    "InjectedFailures",
    "KubeApi",
    "parse_resource_path",
    "protocol_for",
]


class DroppedWatch(Exception):
    """Raised inside a watch stream to make uvicorn cut the connection mid-stream."""


class _QuietDroppedWatch(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen:
            if isinstance(exc, DroppedWatch):
                return False
            seen.add(id(exc))
            if isinstance(exc, BaseExceptionGroup) and any(
                isinstance(e, DroppedWatch) for e in exc.exceptions
            ):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


logging.getLogger("uvicorn.error").addFilter(_QuietDroppedWatch())


@dataclasses.dataclass
class _Failure:
    remaining: int
    status: int
    path_contains: str


class InjectedFailures:
    """The ``fail_next`` rules: the next ``n`` requests whose path contains a string fail."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Failure] = []

    def add(self, n: int, status: int, path_contains: str) -> None:
        with self._lock:
            self._rules.append(_Failure(n, status, path_contains))

    def take(self, path: str) -> int | None:
        """The status a request to ``path`` must fail with (using up one), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.path_contains in path:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule.status
        return None


@dataclasses.dataclass
class _Hold:
    remaining: int
    method: str
    path_contains: str


class HeldAnswers:
    """The ``hold_answers`` rules: the next ``n`` requests of a method whose path contains a
    string are applied, then their answers wait until ``release`` (or the caller leaves).

    ``held`` counts the answers waiting now, ``lost`` those whose caller went away while
    they waited (the change was made; the caller never learnt it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Hold] = []
        self._released = threading.Event()
        self.held = 0
        self.lost = 0

    def add(self, n: int, method: str, path_contains: str) -> None:
        with self._lock:
            self._rules.append(_Hold(n, method.upper(), path_contains))
            self._released.clear()

    def release(self) -> None:
        """Let every held answer go, and the rules not used up yet lapse."""
        with self._lock:
            self._rules.clear()
            self._released.set()

    def take(self, method: str, path: str) -> bool:
        """Whether the answer to this request must be held (using up one)."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.method == method and rule.path_contains in path:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return True
        return False

    async def wait(self, request: Request) -> bool:
        """Hold until released; False when the caller went away first (then counted lost)."""
        with self._lock:
            self.held += 1
        try:
            while not self._released.is_set():
                if await request.is_disconnected():
                    with self._lock:
                        self.lost += 1
                    return False
                await asyncio.sleep(0.02)
            return True
        finally:
            with self._lock:
                self.held -= 1


_RESOURCE_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)


def parse_resource_path(
    path: str,
) -> tuple[ResourceType, str | None, str | None, str | None] | None:
    """(type, namespace, name, subresource) of a resource URL; None when it names none."""
    m = _RESOURCE_PATH.match(path)
    if not m:
        return None
    rt = RESOURCE_TYPES.get(m.group("plural"))
    if rt is None or rt.group != m.group("group") or rt.version != m.group("version"):
        return None
    return rt, m.group("ns"), m.group("name"), m.group("sub")


def forbidden(
    rt: ResourceType, verb: str, ns: str | None, name: str | None, sub: str | None = None
) -> ApiError:
    """The 403 RBAC's authorizer answers, with its message and details."""
    resource = f"{rt.plural}/{sub}" if sub else rt.plural
    target = f'{rt.group_resource} "{name}"' if name else rt.group_resource
    message = (
        f'{target} is forbidden: User "system:serviceaccount:rollbot:rollbot" '
        f'cannot {verb} resource "{resource}" in API group "{rt.group}"'
        + (f' in the namespace "{ns}"' if ns else " at the cluster scope")
    )
    details: dict[str, Any] = {"group": rt.group, "kind": rt.plural}
    if name:
        details["name"] = name
    return ApiError(403, message, details=details)


def _recorded_headers(request: Request) -> dict[str, str]:
    """The request's headers, lower-cased; an Authorization header keeps only its scheme."""
    headers = dict(request.headers)
    if "authorization" in headers:
        headers["authorization"] = headers["authorization"].partition(" ")[0]
    return headers


def _recorded_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


class KubeApi:
    """The Starlette app of a :class:`KubeSim` (``.app``).

    ``record`` receives each request's record as it arrives (its ``status`` is filled in once
    answered; ``response`` holds the ``Status`` body of a refusal); ``failures`` are the
    sim's ``fail_next`` rules, ``holds`` its ``hold_answers`` rules.
    """

    def __init__(
        self,
        sim: KubeSim,
        *,
        record: Callable[[RecordedRequest], None],
        failures: InjectedFailures,
        holds: HeldAnswers | None = None,
    ) -> None:
        self.sim = sim
        self._record = record
        self._failures = failures
        self._holds = holds or HeldAnswers()
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        content_type = request.headers.get("content-type")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        path = request.url.path
        query = dict(request.query_params)
        recorded = RecordedRequest(
            method=request.method,
            path=path,
            query=list(request.query_params.multi_items()),
            headers=_recorded_headers(request),
            body=_recorded_body(raw),
            raw=raw,
            at=time.time(),
        )
        self._record(recorded)
        try:
            self._maybe_fail(request.method, path)
            response = await self._route(request, path, query, body, raw, content_type)
        except ApiError as exc:
            recorded.status = exc.code
            recorded.response = exc.status()
            recorded.response_headers = dict(exc.headers)
            return JSONResponse(exc.status(), status_code=exc.code, headers=exc.headers)
        recorded.status = response.status_code
        if self._holds.take(request.method, path):
            # Applied already (a watch saw it); only the answer waits, or is lost.
            await self._holds.wait(request)
        return response

    def _maybe_fail(self, method: str, path: str) -> None:
        code = self._failures.take(path)
        if code is None:
            return
        message = DEFAULT_MESSAGES.get(code, f"simulated failure ({code})")
        details: dict[str, Any] | None = None
        headers: dict[str, str] = {}
        if code == 403:
            parsed = parse_resource_path(path)
            verb = {
                "GET": "get",
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete",
            }.get(method, method.lower())
            if parsed:
                rt, ns, name, sub = parsed
                raise forbidden(rt, verb, ns, name, sub)
            else:
                message = (
                    'forbidden: User "system:serviceaccount:rollbot:rollbot" cannot '
                    f'{verb} path "{path}"'
                )
        if code == 429:  # API Priority and Fairness answers 429 with Retry-After
            headers["Retry-After"] = "1"
            details = {"retryAfterSeconds": 1}
        raise ApiError(code, message, details=details, headers=headers)

    def _authorised(self, request: Request) -> None:
        if not self.sim.require_auth:
            return
        if request.headers.get("authorization") != f"Bearer {self.sim.token}":
            raise ApiError(401, "Unauthorized")

    async def _route(
        self,
        request: Request,
        path: str,
        query: dict[str, str],
        body: Any,
        raw: bytes,
        content_type: str | None,
    ) -> Response:
        sim = self.sim
        method = request.method
        if method == "GET":
            doc = discovery_document(
                path,
                server_address=f"{sim.host}:{sim.port}",
                has_status_subresource=sim.has_status_subresource,
            )
            if doc is not None:
                return JSONResponse(doc)
        parsed = parse_resource_path(path)
        if parsed is None:
            raise path_not_found()
        self._authorised(request)
        rt, ns, name, sub = parsed
        if sub == "status" and not sim.has_status_subresource(rt.plural):
            raise path_not_found()
        if sub not in (None, "status"):
            raise path_not_found()
        if name is None:
            if method == "GET":
                watch = query.get("watch", "").lower() in ("true", "1")
                if ns is None and rt.plural in sim.namespaced_only:
                    raise forbidden(rt, "watch" if watch else "list", None, None)
                if watch:
                    return await self._watch(rt, ns, query, request.headers.get("user-agent", ""))
                return JSONResponse(self._list_body(rt, ns, query))
            if method == "POST" and ns is not None:
                if not isinstance(body, dict):
                    raise ApiError(400, "the body of the request could not be decoded")
                created = sim.create_object(rt, ns, body, keep_status=False)
                return JSONResponse(created, status_code=201)
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if ns is None:
            raise path_not_found()
        if method == "GET":
            obj = sim.get(rt.plural, ns, name)
            if obj is None:
                raise not_found(rt, name)
            return JSONResponse(obj)
        if method == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "the body of the request could not be decoded")
            return JSONResponse(
                sim.update_object(rt, ns, name, body, subresource=sub, require_rv=True)
            )
        if method == "PATCH":
            ctype = (content_type or "").split(";")[0].strip().lower()
            if raw and body is None and ctype in BUILTIN_PATCH_TYPES:
                raise ApiError(400, "invalid JSON in patch body")
            return JSONResponse(sim.patch_object(rt, ns, name, body, ctype, sub))
        if method == "DELETE" and sub is None:
            deleted = sim.delete_object(rt, ns, name)
            if rt.custom:
                return JSONResponse(deleted)
            return JSONResponse(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": deleted["metadata"]["uid"],
                    },
                }
            )
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _list_body(self, rt: ResourceType, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        flt = Filter(ns, query.get("labelSelector", ""), query.get("fieldSelector", ""))
        items, rv = self.sim.list_objects(rt, flt)
        for item in items:  # list items carry no apiVersion/kind on the wire for built-ins
            if not rt.custom:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {
            "apiVersion": rt.api_version,
            "kind": rt.list_kind,
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    async def _watch(
        self, rt: ResourceType, ns: str | None, query: dict[str, str], agent: str = ""
    ) -> Response:
        sim = self.sim
        flt = Filter(ns, query.get("labelSelector", ""), query.get("fieldSelector", ""))
        bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        rv_param = query.get("resourceVersion", "")
        loop = asyncio.get_running_loop()
        initial, watcher = sim.watch(rt, flt, rv_param, loop)

        async def stream() -> AsyncIterator[bytes]:
            for ev in initial:
                yield (json.dumps(ev) + "\n").encode()
            if watcher is None:
                return
            deadline = loop.time() + timeout if timeout is not None else None
            next_bookmark = loop.time() + sim.bookmark_interval
            try:
                while True:
                    watcher.wakeup.clear()
                    batch, current_rv = sim.watch_batch(watcher)
                    for pending in batch:
                        line = {"type": pending.type, "object": pending.obj}
                        yield (json.dumps(line) + "\n").encode()
                        if sim.deliveries is not None:
                            rv = str(pending.obj.get("metadata", {}).get("resourceVersion"))
                            sim.deliveries.append((agent, rt.plural, rv, time.time()))
                    if watcher.dropped:
                        raise DroppedWatch()
                    if watcher.closing:
                        return
                    now = loop.time()
                    if deadline is not None and now >= deadline:
                        return
                    if bookmarks and now >= next_bookmark and not batch:
                        yield (
                            json.dumps(
                                {
                                    "type": "BOOKMARK",
                                    "object": {
                                        "kind": rt.kind,
                                        "apiVersion": rt.api_version,
                                        "metadata": {"resourceVersion": str(current_rv)},
                                    },
                                }
                            )
                            + "\n"
                        ).encode()
                        next_bookmark = now + sim.bookmark_interval
                    wait = (next_bookmark - now) if bookmarks else 3600.0
                    if deadline is not None:
                        wait = min(wait, deadline - now)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(watcher.wakeup.wait(), max(wait, 0.0))
            finally:
                sim.end_watch(watcher)

        return StreamingResponse(stream(), media_type="application/json")


def protocol_for(sim: KubeSim) -> type[H11Protocol]:
    """The h11 protocol class for ``sim``'s server: it aborts connections while unreachable."""

    class _SimProtocol(H11Protocol):
        """Closes connections without answering while the sim is "unreachable"."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if sim.unreachable:
                transport.abort()

        def data_received(self, data: bytes) -> None:
            if sim.unreachable:
                self.transport.abort()
                return
            super().data_received(data)

    return _SimProtocol
