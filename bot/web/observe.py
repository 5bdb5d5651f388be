"""What every HTTP request gets before anything else sees it: an id that every log line
written while it is served carries.

`ObservedRequests` (ASGI middleware, the outermost of rollbot's own), per HTTP request:

- **Request id.** The caller's ``X-Request-Id`` when it is a short safe token (`SAFE_ID`:
  letters, digits, ``.``, ``_``, ``-``; at most 64), so a proxy's id ties its lines to
  rollbot's; anything else (absent, too long, other characters: it would be written into
  every line) is replaced by a new random id. It is bound as the log context's
  ``request_id`` (`bot.runtime.logs`) for the whole request, uvicorn's access line
  included, and sent back as ``X-Request-Id``.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.runtime import logs

__all__ = ["HEADER", "SAFE_ID", "ObservedRequests", "request_id"]

HEADER = "x-request-id"
#: What an incoming request id may be to be kept.
SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(scope: Scope) -> str:
    """The request's id: its ``X-Request-Id`` if `SAFE_ID`, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            given = bytes(value).decode("latin-1")
            if SAFE_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class ObservedRequests:
    """See the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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

        with logs.bound(request_id=rid):
            await self.app(scope, receive, send_with_id)
