"""What every sim shares: an ASGI app served on loopback from a thread of its own, and the
record of one request as a sim received it.

Each sim (Slack, PagerDuty, Jira, Kubernetes, LaunchDarkly, Unleash) is an ASGI app. A test
talks to it through the real client over real HTTP, so the sim must be a real server: one
thread, one event loop, one listening socket bound before the thread starts (the port is
known at once, and a stopped sim can be started again on the same port).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn

__all__ = ["RecordedRequest", "ServedSim", "ThreadedServer"]


@dataclass(slots=True)
class RecordedRequest:
    """One request as a sim received it (refused ones too), and what it answered.

    No secrets: a sim that records an Authorization header keeps only its scheme.
    """

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)  # in order, repeats kept
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: Any = None  # parsed JSON; the text when it is not JSON; None when empty
    raw: bytes = b""
    at: float = 0.0  # time.time() on arrival
    status: int = 0
    user: str | None = None  # who authenticated, where the sim knows
    response_headers: dict[str, str] = field(default_factory=dict)
    response: Any = None

    def params(self, name: str) -> list[str]:
        """Every value of a query parameter, in order (`include[]=a&include[]=b`)."""
        return [v for k, v in self.query if k == name]

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.params(name)
        return values[0] if values else default

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


class ThreadedServer:
    """Serve `app` on `host:port` (0 picks a free port) from a daemon thread.

    `config` goes to `uvicorn.Config` as it is (TLS files, a protocol class, timeouts);
    logging is quiet and lifespan off unless `config` says otherwise.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "sim",
        **config: Any,
    ) -> None:
        self._app = app
        self.host = host
        self.name = name
        self._config = {"log_level": "warning", "access_log": False, "lifespan": "off", **config}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self.port = int(self._sock.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._config.get("ssl_certfile") else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, timeout: float = 10.0) -> None:
        server = uvicorn.Server(uvicorn.Config(self._app, **self._config))
        self._server = server

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop
            try:
                loop.run_until_complete(server.serve(sockets=[self._sock]))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} on {self.url} did not start")
            time.sleep(0.005)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop serving and close the socket. Idle keep-alive connections are not waited for."""
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._sock.close()
        self._server = None
        self._thread = None


class ServedSim:
    """The lifecycle every sim served by a `ThreadedServer` (in `self._server`) shares:
    `url`, `start` (returns the sim), `stop` (only when started, and again after), and use
    as a context manager."""

    _server: ThreadedServer
    _started: bool = False

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> Self:
        self._server.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.stop()
        self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
