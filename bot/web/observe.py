"""What every HTTP request gets before anything else sees it: an id that every log line
written while it is served carries, and its duration in /metrics by route.

`ObservedRequests` (ASGI middleware, the outermost of rollbot's own), per HTTP request:

- **Request id.** The caller's ``X-Request-Id`` when it is a short safe token
  (`bot.runtime.logs.SAFE_ID`: letters, digits, ``.``, ``_``, ``-``; at most 64), so a
  proxy's id ties its lines to rollbot's; anything else (absent, too long, other
  characters: it would be written into every line) is replaced by a new random id. It is
  bound as the log context's ``request_id`` (`bot.runtime.logs`) for the whole request,
  uvicorn's access line included, and sent back as ``X-Request-Id``.
- **Duration by route.** From the moment the request reaches the app to the end of its
  answer, observed in ``rollbot_http_request_duration_seconds{route}`` (`Metrics`). The
  label is the path template of the route that takes the request (``/runbooks/{service}``:
  never the path itself, which holds tokens and whatever a caller types), or
  ``unmatched`` for a path no route has, so no request can add a series.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.runtime import logs
from bot.runtime.metrics import Metrics

__all__ = ["HEADER", "UNMATCHED", "ObservedRequests", "request_id", "route_of"]

HEADER = "x-request-id"


def request_id(scope: Scope) -> str:
    """The request's id: its ``X-Request-Id`` if a short safe token
    (`bot.runtime.logs.SAFE_ID`), else a new one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            return logs.request_id(bytes(value).decode("latin-1"))
    return logs.request_id()


#: The route label of a request no route takes.
UNMATCHED = "unmatched"


def route_of(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route that takes the request (the first that matches
    fully, else the first whose path matches with another method: a 405), or
    `UNMATCHED`."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        if match is Match.FULL:
            return path
        if match is Match.PARTIAL and partial is None:
            partial = path
    return partial or UNMATCHED


class ObservedRequests:
    """See the module docstring. `routes`: the app's routes, to label the durations with;
    without `metrics`, nothing is timed."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics | None = None, routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (HEADER.encode(), rid.encode())]}
            await send(message)

        timer = None
        if self.metrics is not None:
            timer = self.metrics.http_request_seconds.labels(route_of(self.routes, scope))
        started = time.perf_counter()
        try:
            with logs.bound(request_id=rid):
                await self.app(scope, receive, send_with_id)
        finally:
            if timer is not None:
                timer.observe(time.perf_counter() - started)
