"""`rollbot serve` as its own process over a SimWorld's config (restart and failover tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from bot.sim.harness import SimWorld

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(world: SimWorld, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`python -m bot.cli serve --config <the world's config>` on 127.0.0.1:`port`, with
    the world's secrets in its environment, its output appended to `log`."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--config",
            str(world.config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, **world.bot_env},
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
