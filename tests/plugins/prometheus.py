"""Real Prometheus 2.42 and Alertmanager 0.25 for the tests, and the metrics app they scrape.

Fixtures (all function scope; every process is terminated and every temp dir removed at
teardown, even when the test fails):

- ``metrics_app`` → a started :class:`bot.sim.metrics_app.MetricsApp` on a loopback port.
- ``prometheus_peer`` → a factory
  ``(*, scrape: MetricsApp | str | Sequence[str], rule_files: Sequence[Path] = (),
  alertmanager: AlertmanagerPeer | str | None = None, job_name: str = "payment-router")
  -> PrometheusPeer``. It runs ``/usr/bin/prometheus`` with a temp ``--storage.tsdb.path``,
  ``--web.listen-address=127.0.0.1:PORT`` (a free port), ``--web.enable-lifecycle``, and a
  config scraping the targets under ``job_name`` every 1 s, evaluating the rule files every
  1 s, and sending alerts to the Alertmanager when one is given. Returns once ``/-/ready``
  answers 200. ``PrometheusPeer`` has ``.url``, ``.query(expr) -> list[dict]`` (the instant
  vector's ``result``), ``.alerts() -> list[dict]`` and ``.wait_for(predicate, timeout)``.
- ``alertmanager_peer`` → a factory
  ``(*, webhook_url: str, token: str) -> AlertmanagerPeer``. It runs
  ``/usr/bin/prometheus-alertmanager`` with ``--cluster.listen-address=`` (no gossip), a free
  loopback ``--web.listen-address``, a temp ``--storage.path``, and a config that routes
  everything to ``webhook_url`` with ``authorization: {type: Bearer, credentials: token}``,
  ``send_resolved: true``, ``group_by: [service, alertname]``, ``group_wait``/``group_interval``
  1 s, ``repeat_interval`` 1 h and ``resolve_timeout`` 10 s. ``.url`` once ``/-/ready`` is 200.
  ``(*, config: dict)`` runs it with that whole config instead (another receiver, say
  ``slack_configs``); :func:`alertmanager_route` is the route above, for such a config.
- ``rules_for_test`` → ``(path: Path) -> Path``: a time-shortened copy of a deploy rules file
  (see :func:`shorten_rules`), written to a temp dir removed at teardown.

Without a binary the test skips (fails under ROLLBOT_REQUIRE_PEERS=1): ``require_peer``.
Binaries can be pointed elsewhere with ``ROLLBOT_PROMETHEUS_BIN`` / ``ROLLBOT_ALERTMANAGER_BIN``.

What the test rewrite of rules changes (:func:`shorten_rules`), and nothing else:

1. every ``for: <duration>`` becomes ``for: 3s`` (``TEST_FOR``);
2. the range selector ``[1m]`` (the gate windows, as in the AnalysisTemplate) becomes
   ``[10s]`` (``TEST_WINDOWS``), so a healed canary stops breaching ~10 s after ``heal()``
   instead of 60 s. With a 1 s scrape interval that is still ~10 samples per rate().

The error-budget windows (5m, 30m, 1h, 2h, 6h, 1d, 3d) are left as written: on a Prometheus a
few seconds old, ``rate(x[3d])`` covers exactly the samples there are, as does ``rate(x[5m])``,
so the burn-rate ratios and alerts behave as deployed. They do not resolve within a test,
which no test expects. Expressions, thresholds, labels and annotations are otherwise
byte-for-byte the deploy file's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.sim.metrics_app import MetricsApp
from tests.helpers import eventually_sync, on_a_free_port
from tests.plugins.peers import require_peer

__all__ = [
    "TEST_FOR",
    "TEST_WINDOWS",
    "AlertmanagerPeer",
    "PrometheusPeer",
    "alertmanager_binary",
    "alertmanager_peer",
    "alertmanager_route",
    "amtool_binary",
    "metrics_app",
    "prometheus_binary",
    "prometheus_peer",
    "promtool_binary",
    "rules_for_test",
    "shorten_rules",
]

TEST_FOR = "3s"
TEST_WINDOWS: dict[str, str] = {"1m": "10s"}

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def _binary(env: str, *candidates: str) -> str | None:
    override = os.environ.get(env)
    if override:
        return override if os.access(override, os.X_OK) else None
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
        if os.path.isabs(name) and os.access(name, os.X_OK):
            return name
    return None


def prometheus_binary() -> str | None:
    return _binary("ROLLBOT_PROMETHEUS_BIN", "/usr/bin/prometheus", "prometheus")


def alertmanager_binary() -> str | None:
    return _binary(
        "ROLLBOT_ALERTMANAGER_BIN",
        "/usr/bin/prometheus-alertmanager",
        "prometheus-alertmanager",
        "alertmanager",
    )


def promtool_binary() -> str | None:
    return _binary("ROLLBOT_PROMTOOL_BIN", "/usr/bin/promtool", "promtool")


def amtool_binary() -> str | None:
    return _binary("ROLLBOT_AMTOOL_BIN", "/usr/bin/amtool", "amtool")


# -- the rules rewrite -----------------------------------------------------------------------

_FOR_RE = re.compile(r"^(?P<indent>\s*(?:-\s+)?)for:\s*\S+\s*$", re.MULTILINE)


def shorten_rules(text: str, *, for_: str = TEST_FOR, windows: dict[str, str] | None = None) -> str:
    """The rules file ``text`` with every ``for:`` set to ``for_`` and the range windows in
    ``windows`` (default :data:`TEST_WINDOWS`) replaced; nothing else is touched."""
    windows = TEST_WINDOWS if windows is None else windows
    out = _FOR_RE.sub(lambda m: f"{m.group('indent')}for: {for_}", text)
    for long, short in windows.items():
        out = out.replace(f"[{long}]", f"[{short}]")
    return out


# -- process plumbing ------------------------------------------------------------------------


@dataclass
class _Process:
    name: str
    argv: list[str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"{self.name}.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, url: str, timeout: float = READY_TIMEOUT) -> None:
        proc = self.proc
        assert proc is not None

        def ready() -> bool:
            if proc.poll() is not None:
                raise _EarlyExit(
                    f"{self.name} exited with {proc.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                return client.get(f"{url}/-/ready").status_code == 200
            return False

        with httpx.Client(timeout=2.0) as client:
            eventually_sync(
                ready,
                timeout=timeout,
                interval=0.1,
                what=lambda: f"{self.name} ready:\n{self.log_tail()}",
            )

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)


class _EarlyExit(RuntimeError):
    pass


def _start_on_free_port(
    make: Callable[[int], _Process], ready_url: Callable[[int], str], attempts: int = 3
) -> tuple[_Process, int]:
    """Start a server on a free port; a port taken between probe and bind is retried."""

    def start(port: int) -> tuple[_Process, int]:
        process = make(port)
        process.start()
        try:
            process.wait_ready(ready_url(port))
        except BaseException:
            process.stop()
            raise
        return process, port

    return on_a_free_port(
        start,
        taken=lambda exc: isinstance(exc, _EarlyExit) and "address already in use" in str(exc),
        tries=attempts,
    )


# -- peers -----------------------------------------------------------------------------------


@dataclass
class AlertmanagerPeer:
    url: str
    config_path: Path
    process: _Process

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5.0)
        response.raise_for_status()
        return list(response.json())

    def log_tail(self) -> str:
        return self.process.log_tail()


@dataclass
class PrometheusPeer:
    url: str
    config_path: Path
    process: _Process

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The ``result`` of an instant query (``/api/v1/query``)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5.0)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), as ``/api/v1/alerts`` lists them."""
        response = httpx.get(f"{self.url}/api/v1/alerts", timeout=5.0)
        response.raise_for_status()
        return list(response.json()["data"]["alerts"])

    def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition"
    ) -> Any:
        """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
        return eventually_sync(
            predicate,
            timeout=timeout,
            interval=0.25,
            what=lambda: f"{what}; prometheus log:\n{self.process.log_tail()}",
        )

    def log_tail(self) -> str:
        return self.process.log_tail()


def _prometheus_config(
    *,
    job_name: str,
    targets: Sequence[str],
    rule_files: Sequence[Path],
    alertmanager: str | None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job_name, "static_configs": [{"targets": list(targets)}]},
        ],
    }
    if alertmanager is not None:
        scheme, _, hostport = alertmanager.partition("://")
        config["alerting"] = {
            "alertmanagers": [
                {
                    "scheme": scheme or "http",
                    "api_version": "v2",
                    "static_configs": [{"targets": [hostport.rstrip("/")]}],
                }
            ]
        }
    return config


def alertmanager_route(receiver: str) -> dict[str, Any]:
    """The tests' Alertmanager route, everything to `receiver`: one notification per
    service and alert name, 1 s after its first alert, then every 1 s while it changes."""
    return {
        "receiver": receiver,
        "group_by": ["service", "alertname"],
        "group_wait": "1s",
        "group_interval": "1s",
        "repeat_interval": "1h",
    }


def _alertmanager_config(*, webhook_url: str, token: str) -> dict[str, Any]:
    return {
        "global": {"resolve_timeout": "10s"},
        "route": alertmanager_route("rollbot"),
        "receivers": [
            {
                "name": "rollbot",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def metrics_app() -> Iterator[MetricsApp]:
    app = MetricsApp().start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def rules_for_test() -> Iterator[Callable[[Path], Path]]:
    workdir = Path(tempfile.mkdtemp(prefix="rollbot-rules-"))

    def rewrite(path: Path) -> Path:
        path = Path(path)
        out = workdir / path.name
        out.write_text(shorten_rules(path.read_text()))
        return out

    try:
        yield rewrite
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def alertmanager_peer() -> Iterator[Callable[..., AlertmanagerPeer]]:
    binary = alertmanager_binary()
    started: list[_Process] = []
    workdirs: list[Path] = []

    def start(
        *,
        webhook_url: str | None = None,
        token: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> AlertmanagerPeer:
        require_peer("alertmanager", binary is not None, "prometheus-alertmanager not found")
        assert binary is not None
        if config is None:
            assert webhook_url is not None and token is not None, "a webhook and its token"
            config = _alertmanager_config(webhook_url=webhook_url, token=token)
        workdir = Path(tempfile.mkdtemp(prefix="rollbot-alertmanager-"))
        workdirs.append(workdir)
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config))

        def make(port: int) -> _Process:
            storage = workdir / f"data-{port}"
            storage.mkdir()
            process = _Process(
                "alertmanager",
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.path={storage}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--web.external-url=http://127.0.0.1:{port}",
                    "--cluster.listen-address=",
                    "--log.level=debug",
                ],
                workdir,
            )
            started.append(process)
            return process

        process, port = _start_on_free_port(make, lambda port: f"http://127.0.0.1:{port}")
        return AlertmanagerPeer(f"http://127.0.0.1:{port}", config_path, process)

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def prometheus_peer() -> Iterator[Callable[..., PrometheusPeer]]:
    binary = prometheus_binary()
    started: list[_Process] = []
    workdirs: list[Path] = []

    def start(
        *,
        scrape: MetricsApp | str | Sequence[str],
        rule_files: Sequence[Path] = (),
        alertmanager: AlertmanagerPeer | str | None = None,
        job_name: str = "payment-router",
    ) -> PrometheusPeer:
        require_peer("prometheus", binary is not None, "prometheus not found")
        assert binary is not None
        if isinstance(scrape, MetricsApp):
            targets: list[str] = [scrape.target]
        elif isinstance(scrape, str):
            targets = [scrape]
        else:
            targets = list(scrape)
        am_url = alertmanager.url if isinstance(alertmanager, AlertmanagerPeer) else alertmanager
        workdir = Path(tempfile.mkdtemp(prefix="rollbot-prometheus-"))
        workdirs.append(workdir)
        rules_dir = workdir / "rules"
        rules_dir.mkdir()
        copied = []
        for i, rule_file in enumerate(rule_files):
            copy = rules_dir / f"{i:02d}-{Path(rule_file).name}"
            shutil.copyfile(rule_file, copy)
            copied.append(copy)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(
            yaml.safe_dump(
                _prometheus_config(
                    job_name=job_name, targets=targets, rule_files=copied, alertmanager=am_url
                ),
                sort_keys=False,
            )
        )

        def make(port: int) -> _Process:
            storage = workdir / f"data-{port}"
            process = _Process(
                "prometheus",
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={storage}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.enable-lifecycle",
                    "--log.level=info",
                ],
                workdir,
            )
            started.append(process)
            return process

        process, port = _start_on_free_port(make, lambda port: f"http://127.0.0.1:{port}")
        return PrometheusPeer(f"http://127.0.0.1:{port}", config_path, process)

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
