"""`rollbot serve` with an internal port: /metrics and the probes apart from the public
endpoints, as the Kubernetes manifests run it (deploy/kubernetes: the kubelet and
Prometheus on port `internal`, the Ingress on port `http`).

Real `rollbot serve` processes over a SimWorld's config (tests/e2e/serving.py), given
`--internal-port`.

Aspects under test:
- the internal port answers `/healthz` 200, `/readyz` 200 with `ready` and `leader`, and
  `/metrics` in Prometheus's text format with rollbot's series; the public port answers
  404 for all three;
- the public endpoints stay on the public port only: `/slack/events` (an unsigned request
  is refused 401 there, 404 on the internal port), `/webhooks/alertmanager`, `/runbooks`;
- both listeners write uvicorn's access log;
- SIGTERM stops both listeners after a graceful shutdown (uvicorn then re-raises the
  signal, so the status is that of a SIGTERM);
- an internal port equal to the public one is refused before anything starts (exit 2), and
  one already taken by another process ends the start (status 3, uvicorn's start-up
  failure, saying the address is in use) instead of serving without probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.sim.harness import SimWorld
from tests.e2e.serving import ROOT, start_serving
from tests.helpers import bound_socket

pytestmark = pytest.mark.timeout(120)


async def test_metrics_and_probes_answer_on_the_internal_port_only(tmp_path: Path) -> None:
    async with SimWorld(speed=60, workdir=tmp_path, start_bot=False) as world:
        served = await asyncio.to_thread(
            start_serving, world.config_path, world.bot_env, tmp_path / "serve.log", internal=True
        )
        try:
            assert served.internal_url is not None
            async with httpx.AsyncClient(timeout=5) as client:
                internal, public = served.internal_url, served.url

                health = await client.get(f"{internal}/healthz")
                assert (health.status_code, health.json()) == (200, {"status": "ok"})
                ready = await client.get(f"{internal}/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["ready"] is True and "leader" in ready.json()
                scrape = await client.get(f"{internal}/metrics")
                assert scrape.status_code == 200
                assert scrape.headers["content-type"].startswith("text/plain")
                assert "# TYPE rollbot_leader gauge" in scrape.text
                assert "rollbot_http_requests_total" in scrape.text

                for path in ("/metrics", "/healthz", "/readyz"):
                    assert (await client.get(f"{public}{path}")).status_code == 404, path

                # The public endpoints are routed on the public port, and only there.
                unsigned = await client.post(f"{public}/slack/events", content=b"command=/x")
                assert unsigned.status_code == 401
                assert (await client.post(f"{internal}/slack/events")).status_code == 404
                alert = await client.post(f"{public}/webhooks/alertmanager", json={})
                assert alert.status_code == 401  # no bearer token
                assert (await client.post(f"{internal}/webhooks/alertmanager")).status_code == 404
                assert (await client.get(f"{public}/runbooks")).status_code == 200
                assert (await client.get(f"{internal}/runbooks")).status_code == 404
        finally:
            code = served.stop()
        log = served.log.read_text()
        assert code in (0, -signal.SIGTERM), log[-3000:]
        assert "Application shutdown complete." in log
        async with httpx.AsyncClient(timeout=2) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"{served.internal_url}/healthz")
        assert '"GET /runbooks HTTP/1.1" 200' in log, log[-3000:]  # the public listener
        assert '"GET /metrics HTTP/1.1" 200' in log  # the internal one
        assert '"GET /metrics HTTP/1.1" 404' in log  # asked on the public one


def _serve(world: SimWorld, *ports: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--config", str(world.config_path), *ports],
        cwd=ROOT,
        env={**world.bot_env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def test_an_internal_port_that_cannot_be_had_stops_the_start(tmp_path: Path) -> None:
    async with SimWorld(speed=60, workdir=tmp_path, start_bot=False) as world:
        with contextlib.closing(bound_socket()) as taken:
            taken.listen()
            port = str(taken.getsockname()[1])
            same = await asyncio.to_thread(
                _serve, world, "--host", "127.0.0.1", "--port", port, "--internal-port", port
            )
            assert same.returncode == 2, same.stderr
            assert f"the internal port ({port}) is the public one" in same.stderr

            with contextlib.closing(socket.socket()) as probe:
                probe.bind(("127.0.0.1", 0))
                public = str(probe.getsockname()[1])
            clash = await asyncio.to_thread(
                _serve, world, "--host", "127.0.0.1", "--port", public, "--internal-port", port
            )
        assert clash.returncode == 3, clash.stderr  # uvicorn's STARTUP_FAILURE
        assert "address already in use" in clash.stderr.lower(), clash.stderr
