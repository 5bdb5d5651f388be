"""`rollbot serve` as its own process over a SimWorld's config (restart and failover tests,
the slow-client and access-log checks, the ack-latency benchmark).

`rollbot serve` must be told its port (``--port``; 0 means "the configured one"), so the
port is probed first and bound by the child a moment later, and another process can take it
in between. `start` therefore waits until the child answers ``/healthz``, and when it exited
saying "address already in use", starts it again on another port, at most three times
(`tests.helpers.on_a_free_port`). With ``internal=True`` it also gets an internal port
(``--internal-port``, /metrics and the probes), probed likewise, and waits on its
``/healthz``; a SimWorld's config has none (``server.internal_port: null``).

`Replica` is one such process among several on one database (failover, the fault suite):
its name, URL, log, `/readyz` and `/metrics`; `stopping(replicas)` stops every one started
in a block, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.sim.harness import SimWorld
from tests.helpers import eventually, eventually_sync, free_port, on_a_free_port

ROOT = Path(__file__).resolve().parents[2]


def serve(
    world: SimWorld, port: int, log: Path, *, log_format: str | None = None
) -> subprocess.Popen[bytes]:
    """`python -m bot.cli serve --config <the world's config>` on 127.0.0.1:`port`, with
    the world's secrets in its environment, its output appended to `log` (in `log_format`,
    when given: ``--log-format``). Not waited for: for a port that must be known before the
    world's config is written."""
    return _popen(world.config_path, world.bot_env, port, log, log_format=log_format)


def _popen(
    config: Path | str,
    env: Mapping[str, str],
    port: int,
    log: Path,
    internal_port: int | None = None,
    *,
    log_format: str | None = None,
) -> subprocess.Popen[bytes]:
    internal = ["--internal-port", str(internal_port)] if internal_port is not None else []
    if log_format is not None:
        internal += ["--log-format", log_format]
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
            *internal,
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
    """A started `rollbot serve`: its process, URL and port, the log it appends to, and the
    URL of its internal listener when it has one."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path
    internal_url: str | None = None

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
    config: Path | str,
    env: Mapping[str, str],
    log: Path,
    *,
    timeout: float = 60,
    internal: bool = False,
) -> Served:
    """`rollbot serve` on a free port (and, with `internal`, its internal listener on
    another), returned once ``/healthz`` answers 200 (blocking: from async code,
    ``await asyncio.to_thread(start_serving, …)``, or `start`)."""

    def attempt(port: int) -> Served:
        offset = log.stat().st_size if log.exists() else 0
        internal_port = free_port() if internal else None
        served = Served(
            _popen(config, env, port, log, internal_port),
            f"http://127.0.0.1:{port}",
            port,
            log,
            f"http://127.0.0.1:{internal_port}" if internal_port is not None else None,
        )
        probed = served.internal_url or served.url

        def written() -> str:
            with log.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")

        def healthy() -> bool:
            if served.proc.poll() is not None:
                output = written()
                raise Exited(f"rollbot serve exited ({served.proc.returncode}):\n{output}", output)
            try:
                return client.get(f"{probed}/healthz").status_code == 200
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


async def leading(url: str) -> bool:
    """Whether the `rollbot serve` at `url` is Ready and leads (its `/readyz` says both: a
    standby is Ready too, and runs no loop); False while it does not answer."""
    async with httpx.AsyncClient(timeout=3) as client:
        try:
            response = await client.get(f"{url}/readyz")
        except httpx.TransportError:
            return False
    return response.status_code == 200 and response.json().get("leader") is True


class Replica:
    """One `rollbot serve` process, its URL and its log."""

    def __init__(self, name: str, served: Served) -> None:
        self.name = name
        self.port = served.port
        self.url = served.url
        self.log = served.log
        self.proc = served.proc

    @classmethod
    async def start(cls, world: SimWorld, name: str, tmp_path: Path) -> Replica:
        """Started and answering /healthz (alive; ready or standby)."""
        return cls(name, await start(world, tmp_path / f"{name}.log"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self) -> str:
        return f"--- {self.name} log ---\n" + self.log.read_text()[-3000:]

    def stop(self) -> None:
        """Never leave a process running: SIGTERM, then SIGKILL."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(f"{self.url}{path}")

    async def wait_status(self, path: str, status: int, *, timeout: float = 30) -> httpx.Response:
        """Poll `path` until it answers `status`; fail at once if the process exits."""
        last: str = "no answer"

        async def answered() -> httpx.Response | None:
            nonlocal last
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.proc.returncode}) waiting for {path} "
                    f"{status}:\n{self.tail()}"
                )
            try:
                response = await self.get(path)
            except httpx.TransportError as err:
                last = repr(err)
                return None
            if response.status_code == status:
                return response
            last = f"{response.status_code} {response.text[:300]}"
            return None

        return await eventually(
            answered,
            timeout=timeout,
            interval=0.05,
            what=lambda: f"{self.name}: {path} {status} (last: {last})\n{self.tail()}",
        )

    async def metric(self, name: str) -> list[str]:
        """The sample lines of `name` in this replica's /metrics."""
        response = await self.get("/metrics")
        assert response.status_code == 200
        return [line for line in response.text.splitlines() if line.startswith(name)]

    async def wait_leading(self, *, timeout: float = 30) -> None:
        """Until this replica is Ready and leads; fail at once if the process exits."""

        async def leads() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            return await leading(self.url)

        await eventually(leads, timeout=timeout, interval=0.05, what=f"{self.name} leading")

    async def leader_gauge(self) -> float:
        response = await self.get("/metrics")
        assert response.status_code == 200
        for line in response.text.splitlines():
            if line.startswith("rollbot_leader "):
                return float(line.split()[1])
        raise AssertionError(f"no rollbot_leader in {self.name}'s /metrics")


@contextlib.contextmanager
def stopping(replicas: list[Replica]) -> Iterator[None]:
    """Stop every replica started in the block (appended to `replicas`), whatever happens."""
    try:
        yield
    finally:
        for replica in replicas:
            replica.stop()
