"""`rollbot serve` as its own process over a SimWorld's config (restart and failover tests,
the slow-client and access-log checks, the ack-latency benchmark).

`rollbot serve` must be told its port (``--port``; 0 means "the configured one"), so the
port is probed first and bound by the child a moment later, and another process can take it
in between. `start` therefore waits until the child answers ``/healthz``, and when it exited
saying "address already in use", starts it again on another port, at most three times
(`tests.helpers.on_a_free_port`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.sim.harness import SimWorld
from tests.helpers import eventually_sync, on_a_free_port

ROOT = Path(__file__).resolve().parents[2]


def serve(world: SimWorld, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`python -m bot.cli serve --config <the world's config>` on 127.0.0.1:`port`, with
    the world's secrets in its environment, its output appended to `log`. Not waited for:
    for a port that must be known before the world's config is written."""
    return _popen(world.config_path, world.bot_env, port, log)


def _popen(
    config: Path | str, env: Mapping[str, str], port: int, log: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


class Exited(AssertionError):
    """`rollbot serve` exited before it answered; `output` is what this start wrote."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


@dataclass
class Served:
    """A started `rollbot serve`: its process, URL and port, and the log it appends to."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=10)


def start_serving(
    config: Path | str, env: Mapping[str, str], log: Path, *, timeout: float = 60
) -> Served:
    """`rollbot serve` on a free port, returned once ``/healthz`` answers 200 (blocking:
    from async code, ``await asyncio.to_thread(start_serving, …)``, or `start`)."""

    def attempt(port: int) -> Served:
        offset = log.stat().st_size if log.exists() else 0
        served = Served(_popen(config, env, port, log), f"http://127.0.0.1:{port}", port, log)

        def written() -> str:
            with log.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")

        def healthy() -> bool:
            if served.proc.poll() is not None:
                output = written()
                raise Exited(f"rollbot serve exited ({served.proc.returncode}):\n{output}", output)
            try:
                return client.get(f"{served.url}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        try:
            with httpx.Client(timeout=2.0) as client:
                eventually_sync(
                    healthy,
                    timeout=timeout,
                    interval=0.05,
                    what=lambda: f"rollbot serve up:\n{written()[-3000:]}",
                )
        except BaseException:
            served.stop()
            raise
        return served

    return on_a_free_port(
        attempt,
        taken=lambda exc: isinstance(exc, Exited) and "address already in use" in exc.output,
    )


async def start(world: SimWorld, log: Path, *, timeout: float = 60) -> Served:
    """`start_serving` over the world's config and secrets."""
    return await asyncio.to_thread(
        start_serving, world.config_path, world.bot_env, log, timeout=timeout
    )
