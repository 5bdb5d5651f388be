"""The HTTP server's own defences: a deadline on request headers and a cap on connections
that have not yet sent them.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but only once a
first response was sent, and any byte received disarms that timer; it has no deadline on
request headers at all. A client that opens a connection and sends nothing, or trickles a
header byte every few seconds (slowloris), holds a socket and a protocol object for ever:
600 such connections were still held after 30 s. So rollbot runs uvicorn's own h11
protocol with two additions (`guarded_h11`):

- **Header deadline.** From the moment a connection opens, or finishes a response, the next
  request's headers (and, when the response went out before the body was read, the rest of
  that body) must arrive within `header_timeout` seconds, or the connection is closed.
  Slowly trickled bytes do not extend it.
- **Waiting connections are capped.** Beyond `max_waiting` connections waiting for their
  headers, each new one closes the longest-waiting connections that are idle: waiting for
  at least `grace` seconds, with nothing unread in their socket (FIONREAD). An attacker's
  idle sockets are evicted by new clients instead of locking them out. Both conditions
  matter: uvicorn accepts a whole batch of connections (up to its backlog) in one pass of
  the event loop, before it has read any of them, and under a flood the loop lags; a burst
  of real requests, each already complete in its socket, then looks like idle sockets, and
  evicting by age alone dropped them (the flood bench lost 2-22 % of valid requests, and 200
  concurrent real commands failed).

The body's deadline and size are `bot.web.guard`'s; the total number of connections is
uvicorn's `limit_concurrency` (a 503 beyond it).

`serve_beside` runs the internal listener (`/metrics` and the probes, on
`server.internal_port`) beside the public server, as a follower: its port is bound before
the public server starts (taken: the process exits with uvicorn's start-up failure status,
3, saying so, as for the public port),
it leaves the signals to the public server, and it stops once the public server has
stopped (a SIGTERM, a lost leader lease), so the probes answer during the public server's
graceful shutdown.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import logging
import termios
from collections.abc import Iterator

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


def guarded_h11(
    *, header_timeout: float, max_waiting: int, grace: float | None = None
) -> type[H11Protocol]:
    """An h11 protocol class for `uvicorn.Config(http=…)`; each server gets its own class,
    since the set of waiting connections is shared by that server's connections. `grace`:
    how long a connection waits before it may be evicted (default: a fifth of the header
    deadline, at most 1 s)."""
    spared = min(1.0, header_timeout / 5) if grace is None else grace
    # Insertion order is the order they started waiting: the longest waiting first.
    waiting: dict[GuardedH11, float] = {}

    class GuardedH11(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        # The request cycle that was over when the deadline was armed: a new request's
        # headers are complete when uvicorn has made another cycle.
        _armed_after: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_headers(after=None)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._request_started()

        def on_response_complete(self) -> None:
            # Armed whatever h11 thinks of the client: when the answer went out before the
            # body was read (a 401 first), the rest of that body and the next request's
            # headers are both due by the deadline; bytes trickled meanwhile disarm
            # nothing (uvicorn's keep-alive timer, which any byte cancels, is no bound).
            finished = self.cycle
            super().on_response_complete()
            self._await_headers(after=finished)
            self._request_started()  # a pipelined request may have started at once

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _request_started(self) -> None:
            if self in waiting and self.cycle is not None and self.cycle is not self._armed_after:
                self._stop_waiting()  # a new request's headers are complete: it is under way

        def _await_headers(self, *, after: object) -> None:
            if self.transport.is_closing():
                return
            self._stop_waiting()
            self._armed_after = after
            now = self.loop.time()
            waiting[self] = now
            self._header_timer = self.loop.call_later(header_timeout, self._drop, "timeout")
            if len(waiting) > max_waiting:
                self._evict(now)

        def _evict(self, now: float) -> None:
            """Close the longest-waiting idle connections until the cap holds, sparing the
            young (a burst being accepted) and those with bytes waiting to be read (a
            request the event loop has not got to yet: under load it lags)."""
            for other, since in list(waiting.items()):
                if len(waiting) <= max_waiting or now - since < spared:
                    return
                if other is not self and not _has_unread_bytes(other.transport):
                    other._drop("evicted")

        def _stop_waiting(self) -> None:
            waiting.pop(self, None)
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _drop(self, why: str) -> None:
            self._stop_waiting()
            if not self.transport.is_closing():
                log.debug("closing a connection waiting for request headers (%s)", why)
                self.transport.close()

    return GuardedH11


def _has_unread_bytes(transport: asyncio.Transport) -> bool:
    """True when the socket holds received bytes the server has not read yet (FIONREAD);
    True too when that cannot be told, so a connection is never evicted on a guess."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    pending = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, pending, True)
    except (OSError, ValueError):
        return True
    return pending[0] > 0


class _Follower(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM and SIGINT to another one (the public server,
    which installs its handlers in the same process) and stops when told to."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_beside(public: uvicorn.Server, internal: uvicorn.Config | None) -> None:
    """Run `public` until it stops; with `internal`, a second listener beside it (see the
    module's docstring) that is stopped once `public` has stopped."""
    if internal is None:
        await public.serve()
        return
    sock = internal.bind_socket()  # a port already taken: logged, exit 3 (uvicorn's way)
    follower = _Follower(internal)
    task = asyncio.create_task(follower.serve(sockets=[sock]), name="rollbot-internal-listener")
    try:
        await public.serve()
    finally:
        follower.should_exit = True
        await task
        sock.close()
