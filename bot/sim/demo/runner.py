"""`rollbot demo`: the simulated world shown in the terminal, and in the browser.

:func:`run_demo` starts a :class:`SimWorld` (with the LaunchDarkly, PagerDuty and Jira sims,
payment-router's GitOps repository with the GitHub sim and Argo CD, so that its card offers
Tier 3 run by rollbot, and the workbench page, unless ``ui`` is off), prints every Slack
message as text through :class:`SlackPrinter` as it is posted or edited, clicks Abort when
asked (Enter or ``--auto-abort``) and stops cleanly on SIGINT/SIGTERM or after ``duration``
seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from typing import Any, TextIO

from bot.blocks.terminal import render_text
from bot.sim import workbench
from bot.sim import world as sim_world
from bot.sim.demo.scenario import CHECKOUT_ALERT, DEFAULT_UI_PORT, DEMO_FLAGS, flag_settings
from bot.sim.git import git_http_available
from bot.sim.harness import CHANNEL_ID, LEAD, ONCALL, USERGROUP, SimWorld
from bot.sim.launchdarkly import LaunchDarklySim

__all__ = ["SlackPrinter", "run_demo"]


class SlackPrinter:
    """Prints messages the Slack sim received, once each, and again when edited."""

    def __init__(self, world: SimWorld, out: TextIO) -> None:
        self.world = world
        self.out = out
        self.seen: dict[str, str] = {}

    def poll(self) -> None:
        for message in self.world.slack.messages(CHANNEL_ID):
            ts = message.get("ts", "")
            blocks = message.get("blocks") or []
            body = render_text(blocks) if blocks else message.get("text", "")
            if self.seen.get(ts) == body:
                continue
            edited = ts in self.seen
            self.seen[ts] = body
            thread = message.get("thread_ts") not in (None, ts)
            label = "thread reply" if thread else ("card updated" if edited else "new message")
            prefix = "    │ " if thread else "│ "
            print(f"\n┌─ #payments-deploys · {label} · ts {ts}", file=self.out)
            for line in body.splitlines() or [""]:
                print(prefix + line, file=self.out)
        self.out.flush()


async def _stdin_line() -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, sys.stdin.readline)


async def run_demo(
    *,
    speed: float = 60.0,
    port: int = 0,
    auto_abort: bool = False,
    duration: float | None = None,
    out: TextIO = sys.stdout,
    ui: bool = True,
    ui_port: int = DEFAULT_UI_PORT,
) -> int:
    """The demo: the terminal printout and, with `ui`, the workbench page on `ui_port`.

    Returns 2 (with a message) when a port is taken; SIGINT/SIGTERM stop it cleanly."""
    ui_sock = None
    try:
        if port:
            workbench.bind(port, option="--port").close()
        if ui:
            ui_sock = workbench.bind(ui_port, option="--ui-port")
    except workbench.PortInUseError as err:
        print(f"rollbot demo: {err}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with contextlib.AsyncExitStack() as stack:
            options: dict[str, Any] = {}
            flag_sources: list[workbench.FlagSource] = []
            if ui:
                ld = stack.enter_context(LaunchDarklySim())
                settings, env = flag_settings(ld)
                options = {
                    "pagerduty": True,
                    "jira": True,
                    "checkout": True,
                    "settings": settings,
                    "env": env,
                    # Tier 3 run by rollbot: a real repository served by git itself (its
                    # `git http-backend`); without git the card keeps Record Tier 3 revert….
                    "gitops": "github" if git_http_available() else None,
                }
                flag_sources.append(
                    workbench.FlagSource(
                        "LaunchDarkly", DEMO_FLAGS, lambda key: ld.is_on("default", key)
                    )
                )
            world = await stack.enter_async_context(SimWorld(speed=speed, port=port, **options))
            if ui:
                # @payments-lead owns the services but is not on call: acting as them, the
                # circuit button is refused with "Break glass…" (a reason, loud, audited).
                world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
            url = None
            if ui_sock is not None:
                bench = workbench.Workbench(world, flags=flag_sources, alerts=[CHECKOUT_ALERT])
                url = await stack.enter_async_context(
                    workbench.serve_workbench(bench, sock=ui_sock)
                )
                ui_sock = None
            await _run_terminal(world, speed, auto_abort, duration, out, stop, url)
    finally:
        if ui_sock is not None:
            ui_sock.close()
        for sig in handled:
            loop.remove_signal_handler(sig)
    return 0


async def _run_terminal(
    world: SimWorld,
    speed: float,
    auto_abort: bool,
    duration: float | None,
    out: TextIO,
    stop: asyncio.Event,
    url: str | None,
) -> None:
    print(
        f"rollbot demo: bot at {world.url} · Kubernetes sim at {world.kube.url} · "
        f"Slack sim at {world.slack.url} · clock ×{speed:g}",
        file=out,
    )
    print(
        "payment-router: canary 1.13.0 (revision 42) over stable 1.12.4 (revision 41), "
        "steps 10 → 25 → 50 → 100 %",
        file=out,
    )
    if world.checkout:
        print(
            "checkout: revision 17 (2.4.0) fully rolled out; its new tax engine is behind "
            f"the circuit-breaker flag {sim_world.CHECKOUT_FLAGS['circuit']} (fire its SLO "
            "alert from the Scenarios panel)",
            file=out,
        )
    if world.gitops is None and url is not None:
        print(
            "payment-router's Tier 3: no git (with git http-backend) on this machine, so "
            "rollbot records a revert made by hand (Record Tier 3 revert…)",
            file=out,
        )
    elif world.gitops is not None:
        print(
            f"payment-router's desired state: {world.git.repo_url(sim_world.GITOPS_PROJECT)} "
            f"(git over smart HTTP) · GitHub sim at {world.code_host.url} · Argo CD syncing "
            "it: the card's Start Tier 3 revert… opens a pull request a second person approves",
            file=out,
        )
    if url is not None:
        print(f"open {url}", file=out)
    out.flush()
    printer = SlackPrinter(world, out)
    started = time.monotonic()
    clicked = False
    interactive = sys.stdin is not None and sys.stdin.isatty() and not auto_abort and url is None
    enter: asyncio.Task[str] | None = None
    try:
        while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
            printer.poll()
            card = world.card()
            abort = card is not None and world.button(card, "rollout_abort") is not None
            if abort and not clicked:
                if auto_abort:
                    clicked = True
                    print(f"\n» clicking Abort (Tier 1) as @{ONCALL[1]}", file=out)
                    await world.click(card, "rollout_abort")  # type: ignore[arg-type]
                elif interactive and enter is None:
                    print(
                        f"\n» press Enter to click Abort (Tier 1) as @{ONCALL[1]} (Ctrl-C to quit)",
                        file=out,
                    )
                    enter = asyncio.create_task(_stdin_line())
            if enter is not None and enter.done() and not clicked and card is not None:
                clicked = True
                await world.click(card, "rollout_abort")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
    finally:
        if enter is not None:
            enter.cancel()
        printer.poll()
        if stop.is_set():
            print("\nrollbot demo: stopping", file=out)
