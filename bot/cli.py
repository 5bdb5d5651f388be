"""`rollbot` command line.

rollbot serve [--config FILE] [--host H] [--port P] [--internal-port P] [--log-format text|json]
rollbot demo [--speed N] [--port P] [--ui-port P | --no-browser-ui] [--auto-abort] [--duration S]
rollbot drill SCENARIO [--speed N] [--timeout S]   (`rollbot drill --help` lists them)
rollbot check-config [--config FILE]
rollbot release start SERVICE VERSION [--owner EMAIL] [--config FILE]
rollbot release status SERVICE | list [--config FILE]
rollbot audit verify|export [--config FILE]
rollbot db upgrade [--config FILE]
rollbot runbook lint [PATHS…] [--config FILE]
rollbot --version   (the installed distribution's, which setuptools-scm takes from git)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.errors import RollbotError
from bot.runtime import log_redaction, logs
from bot.runtime.metrics import version

log = logging.getLogger("bot.cli")

#: When the command started (bot.cli is imported first): drills count their total from here.
STARTED = time.monotonic()


def _drill_help(drills: Mapping[str, Any]) -> str:
    """One line per drill, from the table the drills are registered in."""
    width = max(len(name) for name in drills)
    lines = [f"  {name:<{width}}  {spec.proves}" for name, spec in drills.items()]
    return "scenarios (what a PASS proves):\n" + "\n".join(lines)


def _parser(drills: Mapping[str, Any] | None = None) -> argparse.ArgumentParser:
    """The command line. `drills`: the drill table (`bot.sim.demo.DRILLS`), given only when
    the command is ``drill``: importing it starts the whole simulated world's code."""
    p = argparse.ArgumentParser(prog="rollbot", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="run the bot (HTTP + Slack + watch)")
    serve.add_argument("--config", default=None, help="settings YAML (default rollbot.yaml)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None, help="public port (server.port)")
    serve.add_argument(
        "--internal-port",
        type=int,
        default=None,
        help="port of /metrics, /healthz and /readyz (server.internal_port)",
    )
    serve.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=None,
        help="log lines as text or one JSON object each (server.log_format; default text)",
    )

    demo = sub.add_parser("demo", help="run rollbot locally against bot/sim")
    demo.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second (default 60)"
    )
    demo.add_argument("--port", type=int, default=0, help="bot HTTP port (default: any free)")
    demo.add_argument(
        "--auto-abort",
        action="store_true",
        help="click Abort as the on-call engineer as soon as the card appears",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    demo.add_argument(
        "--ui-port",
        type=int,
        default=8088,
        help="port of the workbench page on 127.0.0.1 (default 8088; 0: any free)",
    )
    demo.add_argument(
        "--no-browser-ui",
        dest="ui",
        action="store_false",
        help="terminal only: no workbench page (nor its PagerDuty, Jira and flag sims)",
    )

    drill = sub.add_parser(
        "drill",
        help="run a rollback scenario headless; exit 0 only if verified",
        description="Run a rollback scenario headless against bot/sim and print its timeline;\n"
        "exit 0 only when every check held. Times count from the command's start.",
        epilog=_drill_help(drills) if drills else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    drill.add_argument(
        "scenario",
        metavar="SCENARIO",
        choices=list(drills or ()) or None,
        help="one of the scenarios below",
    )
    drill.add_argument(
        "--speed", type=float, default=120.0, help="simulated seconds per real second (default 120)"
    )
    drill.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each step (default 60)"
    )

    check = sub.add_parser("check-config", help="report every configuration problem")
    check.add_argument("--config", default=None)

    release = sub.add_parser(
        "release", help="start a release (from CI) or show releases and their cleanup tickets"
    )
    rsub = release.add_subparsers(dest="op", required=True)
    start = rsub.add_parser("start", help="start SERVICE VERSION once; file its cleanup tickets")
    start.add_argument("service")
    start.add_argument("version")
    start.add_argument("--owner", default=None, help="Jira assignee (email); default: catalog")
    start.add_argument("--config", default=None)
    status = rsub.add_parser("status", help="a service's releases, tickets and due dates")
    status.add_argument("service")
    status.add_argument("--config", default=None)
    listing = rsub.add_parser("list", help="active releases")
    listing.add_argument("--config", default=None)

    audit = sub.add_parser("audit", help="verify or export the audit log")
    audit.add_argument("op", choices=("verify", "export"))
    audit.add_argument("--config", default=None)

    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("op", choices=("upgrade",))
    db.add_argument("--config", default=None)

    runbook = sub.add_parser("runbook", help="check the runbooks against the three-tier playbook")
    rbsub = runbook.add_subparsers(dest="op", required=True)
    lint = rbsub.add_parser(
        "lint", help="report every runbook problem as path:line: message; exit 1 if any"
    )
    lint.add_argument(
        "paths", nargs="*", default=["runbooks/"], help="runbook files or directories"
    )
    lint.add_argument(
        "--config", default=None, help="settings YAML: also compare with the service catalog"
    )
    return p


#: The commands whose terminal tells a story (the demo's messages, a drill's timeline):
#: there, the libraries' INFO lines (every httpx request, each alembic migration step) would
#: bury it, so only their warnings and errors show; rollbot's own loggers stay at INFO.
STORY_COMMANDS = frozenset({"demo", "drill"})


def configure_logging(command: str, fmt: logs.LogFormat = "text") -> None:
    """The process's logging for `command`, in `fmt` (bot.runtime.logs): INFO for
    everything (`serve` and the operators' commands), or, for the `STORY_COMMANDS`, INFO for
    rollbot (``bot.*``) and WARNING for the libraries. Either way no link token reaches a
    log line."""
    logs.configure(fmt, level=logging.INFO)
    # Alembic names each of its plugins at INFO whenever it loads: nothing an operator acts on.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if command in STORY_COMMANDS:
        # Set before any library logger is made: Bolt's copy the root's level when created.
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("bot").setLevel(logging.INFO)
    log_redaction.install()  # no link token in any log line, uvicorn's access log included


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    drills: Mapping[str, Any] | None = None
    if argv[:1] == ["drill"]:  # only then: the drills' table imports the simulated world
        from bot.sim.demo import DRILLS

        drills = DRILLS
    args = _parser(drills).parse_args(argv)
    configure_logging(args.cmd, getattr(args, "log_format", None) or "text")
    try:
        return (
            int(asyncio.run(_dispatch(args)) or 0)
            if args.cmd != "check-config"
            else _check_config(args.config)
        )
    except RollbotError as err:
        print(f"rollbot: {err.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _check_config(path: str | None) -> int:
    from bot.settings import check_config

    problems = check_config(path)
    for problem in problems:
        anyway = " [serve starts anyway]" if problem.advisory else ""
        print(f"{problem.key_path}: {problem.message}{anyway}", file=sys.stderr)
    if problems:
        stopping = sum(1 for p in problems if not p.advisory)
        print(
            f"{len(problems)} problem(s) found; {stopping} stop `rollbot serve`.", file=sys.stderr
        )
        return 1
    print("configuration OK")
    return 0


async def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "serve":
        return await _serve(args)
    if args.cmd == "demo":
        from bot.sim.demo import run_demo

        return await run_demo(
            speed=args.speed,
            port=args.port,
            auto_abort=args.auto_abort,
            duration=args.duration,
            ui=args.ui,
            ui_port=args.ui_port,
        )
    if args.cmd == "drill":
        from bot.sim.demo import run_drill

        return await run_drill(
            args.scenario, speed=args.speed, timeout=args.timeout, started=STARTED
        )
    if args.cmd == "audit":
        return await _audit(args)
    if args.cmd == "release":
        return await _release(args)
    if args.cmd == "runbook":
        return _runbook(args)
    if args.cmd == "db":
        from bot.settings import load_settings
        from bot.store import open_store

        store = await open_store(load_settings(args.config).database.url, migrate=True)
        await store.close()
        print("database at head")
        return 0
    raise AssertionError(args.cmd)


def _runbook(args: argparse.Namespace) -> int:
    """`rollbot runbook lint`: every problem as ``path:line: message``, then a summary."""
    from bot.runbooks import lint_paths
    from bot.settings import load_settings

    settings = load_settings(args.config) if args.config else None
    report = lint_paths(args.paths, settings=settings)
    for problem in report.problems:
        print(problem)
    print(report.summary(against=args.config))
    return 1 if report.problems else 0


async def _serve(args: argparse.Namespace) -> int:
    from bot.settings import check_config, load_settings

    # Every problem first, before anything is opened or written (SQLite's default
    # rollbot.db included) or even imported: those that stop serve are listed, exit 2.
    problems = check_config(args.config)
    stopping = [p for p in problems if not p.advisory]
    if stopping:
        print(
            f"rollbot serve: not started, nothing written: {len(stopping)} configuration "
            "problem(s):",
            file=sys.stderr,
        )
        for problem in stopping:
            print(f"  {problem.key_path}: {problem.message}", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    server_settings = settings.server
    if args.log_format is None:  # else set already, from the first line on
        logs.configure(server_settings.log_format)
    for problem in problems:
        log.warning("configuration: %s (serving anyway)", problem)

    import uvicorn

    from bot.web.app import create_internal_app, create_web_app
    from bot.web.refusals import quiet_refusals
    from bot.web.server import guarded_h11, serve_beside
    from bot.wiring import build

    host = args.host or server_settings.host
    port = args.port or server_settings.port
    internal_port = args.internal_port or server_settings.internal_port
    if internal_port == port:
        print(
            f"rollbot serve: not started: the internal port ({internal_port}) is the public "
            "one; give another, or set ROLLBOT_SERVER__INTERNAL_PORT empty to serve /metrics "
            "and the probes on the public port",
            file=sys.stderr,
        )
        return 2
    rollbot = await build(settings)
    timeout = server_settings.request_read_timeout_seconds

    def listener(app: Any, on_port: int, **options: Any) -> uvicorn.Config:
        return uvicorn.Config(
            app,
            host=host,
            port=on_port,
            log_level="info",
            # No logging config of uvicorn's own: its server and access lines go to the
            # root logger, in the process's format (bot.runtime.logs), redacted.
            log_config=None,
            http=guarded_h11(
                header_timeout=timeout, max_waiting=server_settings.max_waiting_connections
            ),
            limit_concurrency=server_settings.max_connections,
            timeout_keep_alive=5,
            **options,
        )

    config = listener(
        create_web_app(rollbot, body_timeout=timeout, with_internal=internal_port is None), port
    )
    internal = (
        listener(create_internal_app(rollbot, body_timeout=timeout), internal_port, lifespan="off")
        if internal_port is not None
        else None
    )
    quiet_refusals()  # refusals are counted and summarised, not logged one line each
    server = uvicorn.Server(config)
    lost: list[bool] = []

    def step_down() -> None:
        # Lost the leader lease: exit (non-zero), to come back as a standby.
        lost.append(True)
        server.should_exit = True

    rollbot.on_leadership_lost = step_down
    await serve_beside(server, internal)
    return 1 if lost else 0


async def _release(args: argparse.Namespace) -> int:
    """`rollbot release …` in this process: it writes the database and files the tickets
    itself; the running bot's scheduler picks the release up (reminders, retries)."""
    from bot.core.model import Actor
    from bot.settings import load_settings
    from bot.wiring import build_release_engine

    settings = load_settings(args.config)
    engine, close = await build_release_engine(settings)
    try:
        if args.op == "start":
            created, view = await engine.start(
                args.service, args.version, actor=Actor("ci", "CI", source="cli"), owner=args.owner
            )
            view = await engine.view(view.release)  # with the checklist
            if not created:
                r = view.release
                print(
                    f"{r.id} was already started {r.started_at:%Y-%m-%d %H:%M %Z} by "
                    f"{r.started_by or r.source} (phase {r.phase.value}); nothing done."
                )
            else:
                print(f"{view.release.id} started.")
            _print_view(view)
            failed = [t for t in view.tickets if t.state == "failed"]
            return 1 if failed else 0
        views = (
            await engine.status(args.service) if args.op == "status" else await engine.list_active()
        )
        for view in views:
            _print_view(view)
        if not views:
            print("no releases")
        return 0
    finally:
        await close()


def _print_view(view: object) -> None:
    from bot.core.model import ReleaseView

    assert isinstance(view, ReleaseView)
    r = view.release
    full = r.full_rollout_at.isoformat() if r.full_rollout_at else "not yet"
    print(f"{r.id}  phase {r.phase.value}  full rollout {full}")
    for t in view.tickets:
        due = t.due.isoformat() if t.due else "-"
        prov = " (provisional)" if t.provisional and t.due else ""
        where = t.key or t.state
        extra = f"  {t.error}" if t.error else ""
        print(f"  {where:<10} due {due}{prov}  {t.summary}{extra}")
    for item in view.checklist:
        mark = {True: "OK ", False: "NO ", None: "?? "}[item.ok]
        links = "".join(f", {label} {url}".rstrip() for label, url in item.links)
        print(f"  [{mark}] {item.name}: {item.evidence}{links}")


async def _audit(args: argparse.Namespace) -> int:
    from bot.settings import load_settings
    from bot.store import open_store

    store = await open_store(load_settings(args.config).database.url, migrate=False, existing=True)
    try:
        if args.op == "verify":
            result = await store.verify_audit()
            if result.ok:
                print(f"audit log intact: {result.count} entries, hash chain verified")
                return 0
            print(
                f"audit log BROKEN at seq {result.first_bad_seq}: {result.reason}", file=sys.stderr
            )
            return 1
        for record in await store.audit_entries():
            e = record.entry
            print(
                json.dumps(
                    {
                        "seq": record.seq,
                        "at": e.at.isoformat(),
                        "actor": e.actor,
                        "action": e.action,
                        "target": e.target,
                        "result": e.result,
                        "before": e.before,
                        "after": e.after,
                        "duration_ms": e.duration_ms,
                        "detail": e.detail,
                        "prev_hash": record.prev_hash,
                        "hash": record.hash,
                    },
                    sort_keys=True,
                )
            )
        return 0
    finally:
        await store.close()


if __name__ == "__main__":
    raise SystemExit(main())
