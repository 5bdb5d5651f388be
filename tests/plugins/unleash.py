"""A real Unleash server for the tests (npm `unleash-server`, pinned in tests/peers/unleash).

- ``unleash_peer`` (session) → :class:`UnleashPeer`. Creates a fresh database on the session
  PostgreSQL (``postgres_server`` from tests/plugins/postgres.py), runs
  ``node tests/peers/unleash/server.js`` on a free loopback port with a random admin token
  (``INIT_ADMIN_API_TOKENS="*:*.<random>"``) and a random backend (client/SDK) token for
  ``default:production`` (``INIT_BACKEND_API_TOKENS``; ``INIT_CLIENT_API_TOKENS`` is its
  deprecated alias in unleash-server 7), and waits for ``GET /health`` → 200 (Unleash
  migrates its empty database at first start: ``START_TIMEOUT`` seconds). It then checks
  that the ``production`` environment exists, is enabled, and is on the ``default``
  project, turning it on through the admin API when it is not. At the end of the session
  the process gets SIGTERM (Unleash shuts down gracefully), then SIGKILL after
  ``STOP_TIMEOUT`` s, and its database is dropped. If pytest itself is killed, server.js
  sees its stdin (a pipe pytest holds) close and shuts down: no orphaned Unleash.

  ``UnleashPeer`` has ``.url`` (no trailing slash; SDKs take ``url + "/api"``),
  ``.admin_token``, ``.client_token``, ``.project`` ("default"), ``.environment``
  ("production"), ``.log_path``, and helpers over the admin API (synchronous, for test
  set-up and independent checks, never through the adapter under test):
  ``create_flag(key, *, type="kill-switch", enabled=False)`` (replacing a flag of that key
  left by an earlier test; adds a 100 % flexibleRollout strategy in the environment so that
  "enabled" means served as on to every SDK), ``flag_enabled(key) -> bool``,
  ``flag_exists(key) -> bool`` and ``delete_flag(key)`` (archive, then delete for good).

Without ``node`` (>= 20) or ``tests/peers/unleash/node_modules`` the requesting test skips,
or fails under ROLLBOT_REQUIRE_PEERS=1 (``require_peer``), saying how to install it.
``ROLLBOT_NODE_BIN`` points at another ``node``.

Nothing reaches the internet: server.js turns off the version check and telemetry; install
scripts (one of them is analytics) are not run (``npm ci --ignore-scripts``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import eventually_sync, on_a_free_port
from tests.plugins.peers import require_peer
from tests.plugins.postgres import PostgresServer

__all__ = ["UNLEASH_DIR", "UnleashPeer", "node_binary", "unleash_peer"]

UNLEASH_DIR = Path(__file__).resolve().parents[1] / "peers" / "unleash"
INSTALL_HINT = (
    f"install it with: npm ci --no-audit --no-fund --ignore-scripts --prefix {UNLEASH_DIR}"
)
MIN_NODE_MAJOR = 20

START_TIMEOUT = 90.0  # first start migrates an empty database (~3 s here; slow CI: more)
STOP_TIMEOUT = 15.0
ADMIN_TIMEOUT = 10.0


def node_binary() -> str | None:
    """`node` (>= 20), from ROLLBOT_NODE_BIN or PATH."""
    node = os.environ.get("ROLLBOT_NODE_BIN") or shutil.which("node")
    if not node or not os.access(node, os.X_OK):
        return None
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return node if match and int(match.group(1)) >= MIN_NODE_MAJOR else None


def _installed() -> bool:
    return (UNLEASH_DIR / "node_modules" / "unleash-server" / "package.json").is_file()


@dataclass
class UnleashPeer:
    url: str
    admin_token: str
    client_token: str
    project: str = "default"
    environment: str = "production"
    log_path: Path = field(default_factory=Path)

    # ── admin API helpers (test set-up and independent checks) ───────────────────────

    def _admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        with httpx.Client(timeout=ADMIN_TIMEOUT) as client:
            return client.request(
                method,
                self.url + path,
                json=json,
                headers={"Authorization": self.admin_token},
            )

    def _feature_path(self, key: str) -> str:
        return f"/api/admin/projects/{self.project}/features/{urllib.parse.quote(key, safe='')}"

    def create_flag(self, key: str, *, type: str = "kill-switch", enabled: bool = False) -> None:
        """A new flag `key` in the project with a 100 % flexibleRollout strategy in the
        environment, turned on there when `enabled`. A flag of that key is replaced."""
        self.delete_flag(key)
        created = self._admin(
            "POST",
            f"/api/admin/projects/{self.project}/features",
            {"name": key, "type": type, "description": "created by rollbot's tests"},
        )
        _check(created, f"create flag {key}")
        strategy = self._admin(
            "POST",
            f"{self._feature_path(key)}/environments/{self.environment}/strategies",
            {
                "name": "flexibleRollout",
                "constraints": [],
                "parameters": {"rollout": "100", "stickiness": "default", "groupId": key},
            },
        )
        _check(strategy, f"add a strategy to {key}")
        if enabled:
            flipped = self._admin(
                "POST", f"{self._feature_path(key)}/environments/{self.environment}/on"
            )
            _check(flipped, f"turn {key} on")

    def flag_exists(self, key: str) -> bool:
        """Whether `key` exists (not archived) in the project."""
        response = self._admin("GET", self._feature_path(key))
        if response.status_code == 404:
            return False
        _check(response, f"read flag {key}")
        return True

    def flag_enabled(self, key: str) -> bool:
        """Whether `key` is on in the environment, straight from the admin API."""
        response = self._admin("GET", self._feature_path(key))
        _check(response, f"read flag {key}")
        for env in response.json()["environments"]:
            if env["name"] == self.environment:
                return bool(env["enabled"])
        raise AssertionError(f"flag {key} has no environment {self.environment}")

    def delete_flag(self, key: str) -> None:
        """Archive `key`, then delete it from the archive; no error when it is absent."""
        archived = self._admin("DELETE", self._feature_path(key))
        if archived.status_code != 404:
            _check(archived, f"archive flag {key}")
        deleted = self._admin("DELETE", f"/api/admin/archive/{urllib.parse.quote(key, safe='')}")
        if deleted.status_code != 404:
            _check(deleted, f"delete flag {key}")

    def ensure_environment(self) -> None:
        """The environment exists, is enabled, and is on the project (a fresh Unleash 7 has
        `development` and `production` enabled on `default`; this keeps the tests honest if
        that changes)."""
        envs = self._admin("GET", "/api/admin/environments")
        _check(envs, "list environments")
        found = {e["name"]: e for e in envs.json()["environments"]}
        if self.environment not in found:
            _check(
                self._admin(
                    "POST",
                    "/api/admin/environments",
                    {"name": self.environment, "type": "production"},
                ),
                f"create environment {self.environment}",
            )
        elif not found[self.environment]["enabled"]:
            _check(
                self._admin("POST", f"/api/admin/environments/{self.environment}/on"),
                f"enable environment {self.environment}",
            )
        project = self._admin("GET", f"/api/admin/projects/{self.project}/overview")
        _check(project, f"read project {self.project}")
        on_project = {
            e["environment"] if isinstance(e, dict) else e
            for e in project.json().get("environments", [])
        }
        if self.environment not in on_project:
            _check(
                self._admin(
                    "POST",
                    f"/api/admin/projects/{self.project}/environments",
                    {"environment": self.environment},
                ),
                f"add environment {self.environment} to project {self.project}",
            )


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        raise AssertionError(
            f"Unleash admin API: {what}: HTTP {response.status_code} {response.text}"
        )


# ── the process ──────────────────────────────────────────────────────────────────────


class _EarlyExit(RuntimeError):
    pass


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start(
    node: str, database_url: str, admin_token: str, client_token: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start server.js on a free port (three tries: a probed port can be taken meanwhile)."""

    def start(port: int) -> tuple[subprocess.Popen[bytes], str, Path]:
        log_path = workdir / f"unleash-{port}.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "NODE_ENV": "production",
            "DATABASE_URL": database_url,
            "HTTP_PORT": str(port),
            "INIT_ADMIN_API_TOKENS": admin_token,
            "INIT_BACKEND_API_TOKENS": client_token,
            "LOG_LEVEL": "warn",
            "EXIT_ON_STDIN_CLOSE": "1",  # our end of stdin closes when pytest dies
        }
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [node, str(UNLEASH_DIR / "server.js")],
                cwd=UNLEASH_DIR,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(proc, url, log_path)
        except BaseException:
            _stop(proc)  # reaps it and closes our end of its stdin
            raise
        return proc, url, log_path

    return on_a_free_port(
        start, taken=lambda exc: isinstance(exc, _EarlyExit) and "EADDRINUSE" in str(exc)
    )


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    def healthy() -> bool:
        if proc.poll() is not None:
            raise _EarlyExit(
                f"unleash-server exited with {proc.returncode} before /health was "
                f"200:\n{_log_tail(log_path)}"
            )
        with contextlib.suppress(httpx.TransportError):
            return client.get(f"{url}/health").status_code == 200
        return False

    with httpx.Client(timeout=2.0) as client:
        eventually_sync(
            healthy,
            timeout=START_TIMEOUT,
            interval=0.2,
            what=lambda: f"unleash-server healthy:\n{_log_tail(log_path)}",
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def unleash_peer(request: pytest.FixtureRequest) -> Iterator[UnleashPeer]:
    node = node_binary()
    require_peer("unleash", node is not None, f"node >= {MIN_NODE_MAJOR} not found")
    require_peer("unleash", _installed(), f"unleash-server is not installed; {INSTALL_HINT}")
    assert node is not None
    # Only now: no PostgreSQL is started for a test that skips for want of Unleash.
    postgres_server: PostgresServer = request.getfixturevalue("postgres_server")
    database = f"unleash_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(database)
    database_url = f"postgres://postgres@127.0.0.1:{postgres_server.port}/{database}"
    admin_token = f"*:*.{secrets.token_hex(24)}"
    client_token = f"default:production.{secrets.token_hex(24)}"
    workdir = Path(tempfile.mkdtemp(prefix="rollbot-unleash-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, url, log_path = _start(node, database_url, admin_token, client_token, workdir)
        peer = UnleashPeer(
            url=url, admin_token=admin_token, client_token=client_token, log_path=log_path
        )
        peer.ensure_environment()
        yield peer
    finally:
        if proc is not None:
            _stop(proc)
        postgres_server.drop_database(database)
        shutil.rmtree(workdir, ignore_errors=True)
