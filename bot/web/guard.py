"""What every request meets before a route sees it: a body limit enforced while reading, a
deadline on each body chunk, and no traceback in any answer.

`RequestGuard` (ASGI middleware, outermost of rollbot's own), per HTTP request:

1. ``Content-Length`` over the path's limit → **413** at once: not a byte of the body is read.
2. A body that grows past the limit while it is read (chunked, or a ``Content-Length`` that
   lies) → **413** at the chunk that crosses it; nothing past the limit is ever buffered.
3. A body not complete within `body_timeout` seconds of the request's start → **408**: a
   client that trickles its body holds a task for that long, not for ever.
4. An exception that escapes the app → **500** ``{"error": …, "id": …}``: the id is logged
   with the traceback, and the traceback never reaches the response.

The limits come from the senders' real maxima (`LIMITS`, documented in SECURITY.md). The
header-read deadline and the cap on idle connections live in the server's protocol
(`bot.web.server`), since no ASGI middleware sees a request before its headers are complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB

#: Body limits by path prefix (the longest matching prefix wins), from each sender's maxima:
#: - Slack: an interaction carries its message (≤ 50 blocks) or its modal (≤ 100 blocks), at
#:   most 3,000 characters per text and per input, form-encoded (up to ×3): under 2 MiB.
#: - Alertmanager: one group's alerts in one body, about 1 KiB an alert; 8 MiB is thousands.
#: - PagerDuty: a v3 event is a few KiB; the largest field, a note, is at most 25,000
#:   characters; workflow bodies are written by the workflow's author and are small.
#: - Runbook pages: a form with a CSRF token, an action and a reason.
#: - Anything else (health, readiness, metrics: GET only) reads no body.
LIMITS: Mapping[str, int] = {
    "/slack/": 2 * MIB,
    "/webhooks/alertmanager": 8 * MIB,
    "/webhooks/pagerduty": 1 * MIB,
    "/runbooks/": 64 * KIB,
}
DEFAULT_LIMIT = 64 * KIB
BODY_TIMEOUT = 10.0


class _TooLarge(BaseException):
    """BaseException, like `asyncio.CancelledError`: a route's own `except Exception` (the
    runbook pages have one, to show an error page) must not turn it into a 500."""


class _TooSlow(BaseException):
    """See `_TooLarge`."""


def limit_for(
    path: str, limits: Mapping[str, int] = LIMITS, default: int = DEFAULT_LIMIT
) -> tuple[str, int]:
    """(the prefix that matched, or "other"; its body limit). The longest prefix wins. The
    prefix, not the path, labels the metrics: a caller cannot invent label values."""
    best = max((p for p in limits if path.startswith(p)), key=len, default=None)
    return ("other", default) if best is None else (best, limits[best])


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _answer(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class RequestGuard:
    """See the module docstring. `on_refused(prefix, status)` counts the refusals (metrics)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Mapping[str, int] = LIMITS,
        default_limit: int = DEFAULT_LIMIT,
        body_timeout: float = BODY_TIMEOUT,
        on_refused: Callable[[str, int], None] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.default_limit = default_limit
        self.body_timeout = body_timeout
        self.on_refused = on_refused

    def _refused(self, path: str, status: int) -> None:
        if self.on_refused is not None:
            self.on_refused(path, status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, limit = limit_for(scope["path"], self.limits, self.default_limit)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            self._refused(path, 413)
            await _answer(send, 413, {"error": f"body over {limit} bytes"})
            return

        received = 0
        started = False
        complete = False
        deadline = asyncio.get_running_loop().time() + self.body_timeout

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body: a wait for the disconnect, unbounded
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _TooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
                complete = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            self._refused(path, 413)
            if not started:
                await _answer(send, 413, {"error": f"body over {limit} bytes"})
        except _TooSlow:
            self._refused(path, 408)
            if not started:
                await _answer(send, 408, {"error": "request body not received in time"})
        except Exception:  # boundary: the answer must never carry a traceback
            error_id = secrets.token_hex(4)
            log.exception("unexpected error %s answering %s %s", error_id, scope["method"], path)
            self._refused(path, 500)
            if not started:
                await _answer(
                    send,
                    500,
                    {"error": "internal error; quote the id to rollbot's owners", "id": error_id},
                )
