"""The command line and the HTTP surface, as a user and an operator meet them.

Aspects under test:
- `make demo ARGS="…"` passes ARGS to `rollbot demo` (and `make drill DRILL=… ARGS=…`);
- `rollbot drill tier1-abort`, `slo-alert`, `tier2-circuit`, `checkout-circuit`,
  `release-cleanup`, `pagerduty-workflow` and `tier3-revert` exit 0
  and print a PASS line with their timeline; an unknown drill is refused listing the known ones;
- `rollbot --version` prints the installed distribution's version, which setuptools-scm
  derives from git for this checkout (the commit in its local part, or the tag's own);
- `rollbot drill --help` lists every drill with what it proves, one line each, from the
  table the drills are registered in (`bot.sim.demo.DRILLS`);
- a drill's times and total count from the command's start (start-up included);
- `rollbot demo` and `rollbot drill` print the story, not the libraries' INFO lines (httpx,
  alembic, …): only their warnings and errors, and rollbot's own lines; `serve` keeps INFO;
- `rollbot demo --auto-abort --duration N` shows the card and the verified abort as text;
- `rollbot serve` with a bad configuration (no config file, a kubeconfig that does not
  exist, given or from KUBECONFIG, no Slack secrets) exits 2 naming every problem and
  writes nothing in the working directory (no rollbot.db); advisory problems are marked in
  `rollbot check-config`;
- `rollbot check-config` lists every problem with its key path and exits 1, and exits 0
  on a good file;
- `rollbot audit verify|export` on the database a real abort wrote;
- `/healthz`, `/readyz`, `/metrics` (actions counted by action and result);
- the watch survives a compaction (410) and dropped streams at the app level: a Rollout
  aborted from outside rollbot (as `kubectl argo rollouts abort` would) still updates the card.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.sim.harness import BOT_TOKEN, SIGNING_SECRET, SimWorld
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "ROLLBOT_SLACK__BOT_TOKEN": BOT_TOKEN,
    "ROLLBOT_SLACK__SIGNING_SECRET": SIGNING_SECRET,
}


def rollbot(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        # This checkout's bot, whatever the working directory (a git worktree's venv may
        # have another checkout installed).
        env={**(env or ENV), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(150)
@pytest.mark.parametrize("scenario", ["tier1-abort", "slo-alert"])
def test_drills_exit_zero(scenario):
    done = rollbot("drill", scenario, "--speed", "600")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"drill {scenario}: PASS" in done.stdout
    assert "abort verified in" in done.stdout
    assert "audit entry 1: succeeded" in done.stdout


@pytest.mark.timeout(150)
def test_drill_tier2_circuit_exits_zero():
    done = rollbot("drill", "tier2-circuit", "--speed", "600")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "drill tier2-circuit: PASS" in out
    assert "(owner, not on call) refused" in out
    assert "(on call) opened the circuit, read back on" in out
    assert "SDKs are served the flag on after" in out


@pytest.mark.timeout(150)
def test_drill_checkout_circuit_exits_zero():
    done = rollbot("drill", "checkout-circuit", "--speed", "600")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "drill checkout-circuit: PASS" in out
    assert "Tier 1 unavailable (fully promoted), Tier 2 recommended" in out
    assert "opened checkout.new-tax-engine.circuit-open: on in LaunchDarkly" in out
    assert "circuit-open succeeded (read back)" in out
    # the alert still fires: acknowledged by the verified flip, not resolved (issue 14)
    assert "PagerDuty incident acknowledged (verified mitigation; alert firing)" in out
    assert "resolved" not in out


@pytest.mark.timeout(150)
def test_drill_release_cleanup_exits_zero():
    done = rollbot("drill", "release-cleanup", "--speed", "600")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "drill release-cleanup: PASS" in out
    assert "tickets filed: PAY-1 due" in out and "(provisional)" in out
    assert "due dates moved to the real ones" in out


@pytest.mark.timeout(150)
def test_drill_pagerduty_workflow_exits_zero():
    done = rollbot("drill", "pagerduty-workflow", "--speed", "600")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "drill pagerduty-workflow: PASS" in out
    assert "workflow 'Rollback Tier 1: abort' by the on-call user: HTTP 202" in out
    assert "note on the incident: rollbot: abort by On-call Engineer" in out
    assert "PagerDuty incident acknowledged by the verified abort" in out
    assert "PagerDuty incident resolved with the card's" in out
    assert out.index("acknowledged by the verified abort") < out.index("incident resolved")


@pytest.mark.timeout(150)
def test_drill_tier3_revert_exits_zero():
    done = rollbot("drill", "tier3-revert", "--speed", "600")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "drill tier3-revert: PASS" in out
    steps = [
        "started Tier 3: revert of",
        "diff shown, nothing pushed",
        "pull request #1 opened from rollbot/revert/payment-router-r42-",
        "(the requester) refused approving their own revert",
        "(an owner) approved",
        "names the incident, requester and approver",
        "Argo CD synced",
        "Rollout revision 43 on registry.example.com/payment-router:1.12.4",
        "card says Tier 3 done, verified",
        "chain verified",
    ]
    at = [out.index(step) for step in steps]  # each step, in this order
    assert at == sorted(at), out


def test_unknown_drill_is_refused():
    done = rollbot("drill", "nope")
    assert done.returncode == 2
    assert "tier1-abort" in done.stderr and "tier2-circuit" in done.stderr
    assert "checkout-circuit" in done.stderr


def test_version_is_the_installed_distributions():
    from importlib import metadata

    done = rollbot("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"rollbot {metadata.version('rollbot')}\n"


def test_version_comes_from_git():
    """What setuptools-scm makes of this checkout (as `pip install`, `make image` and the
    image's build do): on a tag vX.Y.Z exactly X.Y.Z, elsewhere a dev release naming the
    commit. No static version is left in pyproject.toml."""
    scm = pytest.importorskip("setuptools_scm")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    got = scm.get_version(root=str(ROOT))
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    tag = subprocess.run(
        [*git, "describe", "--tags", "--exact-match", "--match", "v*"],
        capture_output=True,
        text=True,
    )
    clean = subprocess.run([*git, "diff", "--quiet", "HEAD"]).returncode == 0
    if tag.returncode == 0 and clean:
        assert got == tag.stdout.strip().removeprefix("v")
    else:
        dev = re.fullmatch(r"\d+(\.\d+)*\.dev\d+\+g([0-9a-f]{7,})(\.d\d{8})?", got)
        assert dev, got
        assert head.stdout.startswith(dev.group(2))


#: A log line at INFO from a logger that is not rollbot's (httpx, alembic, apscheduler, …).
LIBRARY_INFO = re.compile(r"^\S+ \S+ INFO (?!bot[.:])(\S+):", re.MULTILINE)


@pytest.mark.timeout(150)
def test_demo_shows_card_and_verified_abort():
    done = rollbot("demo", "--auto-abort", "--duration", "20", "--speed", "300", "--ui-port", "0")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "[ Abort (Tier 1) ]" in out
    assert "clicking Abort (Tier 1) as @oncall-engineer" in out
    assert "Aborted by <@U0ONCALL>" in out and "verified in" in out
    assert "[ Retry ]" in out
    # The story, not the libraries' INFO lines (issue 14: 63 httpx and 7 alembic before).
    assert LIBRARY_INFO.findall(done.stderr) == [], done.stderr
    assert "HTTP Request:" not in done.stderr


def test_make_demo_and_drill_pass_args_to_rollbot():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def recipe(*args: str) -> list[str]:
        # -n: print the commands; -o venv: as if the venv were up to date.
        done = subprocess.run(
            ["make", "-n", "-o", "venv", *args], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return next(line.split()[1:] for line in done.stdout.splitlines() if "rollbot" in line)

    assert recipe("demo", "ARGS=--ui-port 0") == ["demo", "--ui-port", "0"]
    assert recipe("demo") == ["demo"]
    assert recipe("drill") == ["drill", "tier1-abort"]
    assert recipe("drill", "DRILL=slo-alert", "ARGS=--speed 600") == [
        "drill",
        "slo-alert",
        "--speed",
        "600",
    ]


def test_story_commands_show_library_warnings_not_their_info():
    """`configure_logging` as `main` calls it, in a process of its own."""
    script = """
import logging, sys
from bot.cli import configure_logging
configure_logging(sys.argv[1])
logging.getLogger("httpx").info("library-info")
logging.getLogger("alembic.runtime.migration").info("library-info")
logging.getLogger("httpx").warning("library-warning")
logging.getLogger("alembic.runtime.migration").error("library-error")
logging.getLogger("bot.sim.demo").info("rollbot-info")
logging.getLogger("bot.wiring.rollbot").warning("rollbot-warning")
"""

    def logged(command: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, command], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    for command in ("demo", "drill"):
        err = logged(command)
        assert "library-info" not in err, err
        for line in ("library-warning", "library-error", "rollbot-info", "rollbot-warning"):
            assert line in err, (command, err)
    err = logged("serve")  # an operator's process keeps every INFO line
    assert err.count("library-info") == 2 and "rollbot-info" in err, err


def _rollbot_in(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`rollbot ARGS` in `cwd`, with only PATH, HOME (no ~/.kube/config there) and `env`."""
    return rollbot(*args, env={"PATH": os.environ["PATH"], "HOME": str(cwd), **env}, cwd=cwd)


SECRETS = {"ROLLBOT_SLACK__BOT_TOKEN": BOT_TOKEN, "ROLLBOT_SLACK__SIGNING_SECRET": SIGNING_SECRET}


def test_audit_verify_on_no_database_says_so_and_creates_nothing(tmp_path):
    """After a restore, `rollbot audit verify` pointed at the wrong place must not pass or
    crash: it exits 2 naming what is missing, and leaves no empty database behind."""
    missing = tmp_path / "restored" / "rollbot.db"
    env = {**SECRETS, "ROLLBOT_DATABASE__URL": f"sqlite:///{missing}"}
    for op in ("verify", "export"):
        done = _rollbot_in(tmp_path, "audit", op, **env)
        assert done.returncode == 2, done.stderr
        assert f"rollbot: no rollbot database at {missing}: the file does not exist" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
    assert not missing.parent.exists()
    # An empty file (a restore that copied nothing): no rollbot tables, and none made.
    missing.parent.mkdir()
    missing.touch()
    done = _rollbot_in(tmp_path, "audit", "verify", **env)
    assert done.returncode == 2, done.stderr
    assert "it has no rollbot tables" in done.stderr and "Traceback" not in done.stderr
    with contextlib.closing(sqlite3.connect(missing)) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
    assert "alembic.runtime.plugins" not in done.stderr


def test_serve_with_a_bad_config_exits_2_naming_it_and_writes_nothing(tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    # No configuration at all (and no Slack secrets): every problem named, nothing written.
    done = _rollbot_in(here, "serve")
    assert done.returncode == 2, done.stderr
    assert "rollbot serve: not started, nothing written: 3 configuration problem(s):" in done.stderr
    assert "slack.bot_token: required to serve" in done.stderr
    assert "(config file): none found" in done.stderr
    assert list(here.iterdir()) == []

    # A kubeconfig that does not exist: named, with the path.
    config = tmp_path / "rollbot.yaml"
    missing = tmp_path / "nowhere" / "kubeconfig"
    config.write_text(
        f"kubernetes: {{kubeconfig: {missing}}}\n"
        "services:\n  payment-router:\n    namespace: payments\n    rollout: payment-router\n"
        '    channel: "#payments-deploys"\n'
    )
    done = _rollbot_in(here, "serve", "--config", str(config), **SECRETS)
    assert done.returncode == 2, done.stderr
    assert f"kubernetes.kubeconfig: file not found: {missing}" in done.stderr
    assert "1 configuration problem(s)" in done.stderr
    assert list(here.iterdir()) == []

    # The same through KUBECONFIG.
    config.write_text("\n".join(config.read_text().splitlines()[1:]) + "\n")
    done = _rollbot_in(here, "serve", "--config", str(config), KUBECONFIG=str(missing), **SECRETS)
    assert done.returncode == 2, done.stderr
    assert f"kubernetes.kubeconfig: file not found: {missing} (from KUBECONFIG)" in done.stderr
    assert list(here.iterdir()) == []

    # No kubeconfig anywhere and not in a cluster: the Kubernetes client says so, before
    # the database is opened.
    done = _rollbot_in(here, "serve", "--config", str(config), **SECRETS)
    assert done.returncode == 2, done.stderr
    assert "No usable Kubernetes configuration" in done.stderr
    assert list(here.iterdir()) == []
    assert BOT_TOKEN not in done.stdout + done.stderr


def test_check_config_reports_every_problem(tmp_path):
    bad = tmp_path / "rollbot.yaml"
    bad.write_text(
        "services:\n"
        "  payment-router:\n"
        "    namespace: payments\n"
        "    channel: payments-deploys\n"
        "    slo: {error_rate: 7}\n"
        "slack:\n"
        "  bot_token: xoxb-in-the-yaml\n"
    )
    done = rollbot(
        "check-config", "--config", str(bad), env={"PATH": os.environ["PATH"]}, cwd=tmp_path
    )
    assert done.returncode == 1
    err = done.stderr
    assert err.endswith("6 problem(s) found; 6 stop `rollbot serve`.\n"), err
    for path in (
        "services.payment-router.rollout",
        "services.payment-router.channel",
        "services.payment-router.slo.error_rate",
        "slack.bot_token",
    ):
        assert path in err, err
    assert "xoxb-in-the-yaml" not in err  # a secret is never echoed

    good = tmp_path / "good.yaml"
    good.write_text(
        "services:\n  payment-router:\n    namespace: payments\n    rollout: payment-router\n"
        '    channel: "#payments-deploys"\n'
    )
    ok = rollbot("check-config", "--config", str(good), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout

    # What `rollbot serve` would start without (a feature off) is marked so.
    degraded = tmp_path / "degraded.yaml"
    degraded.write_text(
        good.read_text() + "    runbook: runbooks/nowhere.md\n"
        "    flags: {circuit: payments.new-router.circuit-open}\n"
    )
    done = rollbot("check-config", "--config", str(degraded), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[-1] == "2 problem(s) found; 0 stop `rollbot serve`.", done.stderr
    assert lines[0].startswith("services.payment-router.runbook: file not found")
    assert lines[1].startswith("services.payment-router.flags.circuit: names the circuit")
    assert all(line.endswith(" [serve starts anyway]") for line in lines[:2]), done.stderr


async def test_endpoints_metrics_audit_cli_and_watch_survival(tmp_path):
    async with (
        SimWorld(speed=600, workdir=tmp_path) as world,
        httpx.AsyncClient(base_url=world.url) as http,
    ):
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True

        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=40,
            what="the card",
        )
        # Compaction and dropped streams while the canary is paused...
        world.kube.compact()
        world.kube.drop_watches()
        # ...then someone aborts with kubectl, not through rollbot.
        world.kube.patch(
            "rollouts",
            "payments",
            "payment-router",
            {"status": {"abort": True}},
            subresource="status",
        )
        await world.wait_for(
            lambda: world.button(world.card() or {}, "rollout_retry") is not None,
            timeout=30,
            what="the card to show the outside abort",
        )
        assert world.card()["ts"] == card["ts"]  # updated in place, not reposted

        await world.sender.slash_command(
            "U0ONCALL", "oncall-engineer", "payment-router retry"
        ).send()
        await world.wait_for(
            lambda: any("Retried" in r.body.get("text", "") for r in world.slack.responses),
            timeout=20,
            what="the retry",
        )
        # The reply goes once the action is settled; its count follows the card's update.
        counted = 'rollbot_actions_total{action="retry",result="succeeded"} 1.0'

        async def scraped() -> str | None:
            text = (await http.get("/metrics")).text
            return text if counted in text else None

        metrics = await eventually(scraped, timeout=10, what="the retry counted")
        assert "rollbot_watch_events_total" in metrics

    config = str(tmp_path / "rollbot.yaml")
    verify = rollbot("audit", "verify", "--config", config)
    assert verify.returncode == 0, verify.stderr
    assert "hash chain verified" in verify.stdout
    export = rollbot("audit", "export", "--config", config)
    lines = [json.loads(line) for line in export.stdout.splitlines()]
    assert [e["action"] for e in lines] == ["retry"]
    assert lines[0]["result"] == "succeeded"
    assert lines[0]["prev_hash"] == "0" * 64


def test_drill_help_lists_every_drill_with_what_it_proves():
    from bot.sim.demo import DRILLS

    done = rollbot("drill", "--help")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name, spec in DRILLS.items():
        line = [line for line in lines if line.split()[:1] == [name]]
        assert len(line) == 1, done.stdout  # one line each
        assert line[0].split(None, 1)[1] == spec.proves
    assert len(DRILLS) == 7


@pytest.mark.timeout(150)
def test_drill_times_count_from_the_command_start():
    """Start-up is part of the total: a second and a half spent after `bot.cli` is imported
    (standing in for a slow start) shows in the first mark and in the total."""
    script = "import time, sys; from bot import cli; time.sleep(1.5); sys.exit(cli.main())"
    done = subprocess.run(
        [sys.executable, "-c", script, "drill", "tier1-abort", "--speed", "600"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    marks = [float(m) for m in re.findall(r"^\s+([\d.]+) s  ", done.stdout, re.MULTILINE)]
    total = float(re.search(r"PASS · .* · total ([\d.]+) s$", done.stdout, re.MULTILINE)[1])
    assert marks[0] >= 1.5, done.stdout  # "world up": after the start-up
    assert total >= marks[-1] >= 1.5, done.stdout
    assert LIBRARY_INFO.findall(done.stderr) == [], done.stderr


async def test_a_kubernetes_outage_is_a_metric_not_unreadiness(tmp_path):
    """Issue 15: an API-server blip must not take the only replica out of its Service. The
    watch failing is `rollbot_watch_healthy 0` (alerted on by the shipped rules), and
    /readyz stays 200 while the database answers at this rollbot's schema."""
    async with (
        SimWorld(speed=600, workdir=tmp_path) as world,
        httpx.AsyncClient(base_url=world.url) as http,
    ):
        await world.wait_for(world.card, timeout=40, what="the watch working (a card)")
        world.kube.set_unreachable(True)
        world.kube.drop_watches()
        try:

            async def watch_down() -> bool:
                metrics = (await http.get("/metrics")).text
                return "rollbot_watch_healthy 0.0" in metrics

            await eventually(watch_down, timeout=30, what="the watch reported unhealthy")
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"ready": True, "problems": [], "leader": True}
        finally:
            world.kube.set_unreachable(False)
