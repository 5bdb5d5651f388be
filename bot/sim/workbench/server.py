"""Serving the workbench: a loopback socket on the port asked for, uvicorn in this loop.

:func:`bind` takes the port first (so ``rollbot demo`` can refuse a taken one before it
starts anything, naming the option that picks another); :func:`serve_workbench` runs the
app in the world's event loop and yields its URL until the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import AsyncIterator

import uvicorn

from bot.sim.workbench.state import Workbench

__all__ = ["PortInUseError", "bind", "serve_workbench"]


class PortInUseError(OSError):
    """The workbench's port is taken; the message says which option picks another."""


def bind(port: int, *, option: str = "--ui-port") -> socket.socket:
    """A loopback socket on `port` (0: any free), or PortInUseError naming `option`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener still refuses
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} is in use: pass {option} N") from None
        raise
    return sock


@contextlib.asynccontextmanager
async def serve_workbench(
    workbench: Workbench, *, port: int = 0, sock: socket.socket | None = None
) -> AsyncIterator[str]:
    """Serve the workbench on loopback in this event loop (the world's); yield its URL."""
    sock = sock or bind(port)
    server = uvicorn.Server(uvicorn.Config(workbench.app(), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise TimeoutError("the workbench did not start within 10 s")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=5)
        sock.close()
