"""Helpers every test tier shares, each defined once here.

* `FakeClock`: a monotonic clock that moves only when the test says so (caches, TTLs, the
  Argo controller sim's analysis timing);
* `eventually` / `eventually_sync`: poll a condition, plain or async, until it holds, with
  a deadline, and return what it returned. A test waits for something to happen with one of
  these, never with a fixed sleep; a test that checks that something did NOT happen waits
  for positive evidence that the moment has passed (a later effect in the same ordered
  queue, the request answered after its handler ran, a clock past the job's time), then
  asserts;
* `free_port` / `on_a_free_port`: a loopback port for a process that must be told its port
  (a subprocess given ``--port``, a peer's config naming our URL), and a bounded retry for
  the race that comes with it: another process may bind the port between the probe and the
  bind. Whatever can bind port 0 itself, or take an already-bound socket, should do that
  instead (no race at all);
* `serving` / `Catcher`: an ASGI app of the test's own on uvicorn in the test's loop, and a
  server that records every hit (an attacker's URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

Describe = str | Callable[[], str]


class FakeClock:
    """A monotonic clock that moves only when told: ``clock.advance(s)`` or ``clock.now += s``."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def _timed_out(timeout: float, what: Describe, last: object) -> AssertionError:
    said = what() if callable(what) else what
    return AssertionError(f"not within {timeout:g} s: {said} (last: {last!r:.300})")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    what: Describe = "the condition",
    interval: float = 0.02,
) -> T:
    """Call `predicate` (plain or async) every `interval` seconds until it returns something
    truthy, and return that. After `timeout` seconds, AssertionError naming `what` (a
    string, or a callable read only then, e.g. a log tail) and the last value. An exception
    raised by `predicate` ends the wait at once (say, "the process exited")."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, value)
        await asyncio.sleep(interval)


def eventually_sync(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    what: Describe = "the condition",
    interval: float = 0.02,
) -> T:
    """`eventually` for code without an event loop (threads, sync fixtures, sync tests)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, value)
        time.sleep(interval)


def free_port() -> int:
    """A loopback TCP port nothing listened on a moment ago (see `on_a_free_port`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bound_socket() -> socket.socket:
    """A loopback TCP socket bound to a port the kernel picked, not yet listening: its
    port is ours until it is closed, so it can be named in a config before the server that
    will listen on it starts (uvicorn's ``serve(sockets=[sock])``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def on_a_free_port(
    start: Callable[[int], T],
    *,
    taken: Callable[[BaseException], bool],
    tries: int = 3,
) -> T:
    """`start(port)` on a port free a moment ago; when it fails because another process
    bound that port in between (`taken(error)`), again on another one, at most `tries`
    times. Any other failure is raised at once. `start` cleans up after itself."""
    for attempt in range(1, tries + 1):
        try:
            return start(free_port())
        except Exception as exc:
            if attempt == tries or not taken(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """`app` (ASGI) on uvicorn in this event loop, on a loopback socket bound before the
    server starts (the kernel picks the port: nothing can take it in between); yields the
    base URL, stops the server on exit. The one way a test serves an app of its own (the
    sims serve themselves from a thread: `bot.sim._server.ThreadedServer`)."""
    import uvicorn

    sock = bound_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done(), what="uvicorn started")
        if task.done():
            task.result()  # it stopped before it started: its error
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class Catcher:
    """An HTTP server on loopback that records every request it gets: the URL an attacker
    puts in a body (a ``response_url``), to see whether rollbot ever calls it.

        async with Catcher() as catcher:
            ... catcher.url ... catcher.hits == ["POST /x"]
    """

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.url = ""
        self._serving: contextlib.AbstractAsyncContextManager[str] | None = None

    async def _hit(self, request: Any) -> Any:
        from starlette.responses import Response

        self.hits.append(f"{request.method} {request.url.path}")
        return Response("ok")

    async def __aenter__(self) -> Catcher:
        from starlette.applications import Starlette
        from starlette.routing import Route

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        app = Starlette(routes=[Route("/{path:path}", self._hit, methods=methods)])
        self._serving = serving(app)
        self.url = await self._serving.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._serving is not None
        await self._serving.__aexit__(*exc)
