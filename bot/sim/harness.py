"""A whole simulated world with the real bot in it, for the demo, drills, e2e tests and benches.

    async with SimWorld(speed=60) as world:
        await world.wait_for_card()
        await world.sender.click(...).send()

It starts, on loopback: the Kubernetes API sim with the Argo Rollouts controller sim (on an
accelerated clock), the Slack Web API sim, and rollbot itself, built by `bot.wiring.build` from
a real settings file and served by uvicorn exactly as `rollbot serve` does. The bot reaches
the sims through its real clients (a kubeconfig, Slack's `api_url`); nothing in the bot
knows it is in a simulation.

How Slack's requests reach the bot (`slack_mode`): "http" (the signing secret; the sender
POSTs signed requests to `/slack/events`), "socket" (the app-level token only: the bot's
leader connects to the Slack sim's Socket Mode server, and the sender delivers envelopes
there) or "both" (both credentials, the sender over the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from bot.settings import load_settings
from bot.sim import world as sim_world
from bot.sim.argo import ArgoController
from bot.sim.argo.cd import ArgoCDSim
from bot.sim.argo.cd import application as argocd_application
from bot.sim.git import GitHttpServer
from bot.sim.github import DEFAULT_TOKEN as GITHUB_TOKEN
from bot.sim.github import GitHubSim
from bot.sim.gitlab import DEFAULT_TOKEN as GITLAB_TOKEN
from bot.sim.gitlab import GitLabSim
from bot.sim.jira import JiraSim
from bot.sim.kube import KubeSim
from bot.sim.pagerduty import DEFAULT_TOKEN as PD_API_TOKEN
from bot.sim.pagerduty import PagerDutySim
from bot.sim.slack import SlackSender, SlackSim
from bot.web.app import create_web_app
from bot.wiring import Rollbot, build

SIGNING_SECRET = "demo-signing-secret-not-for-production"
BOT_TOKEN = "xoxb-demo-0000-rollbot"
APP_TOKEN = "xapp-1-A0ROLLBOT-0000-demo-not-for-production"
SLACK_MODES = ("http", "socket", "both")
ALERTMANAGER_TOKEN = "demo-alertmanager-token-not-for-production"
CHANNEL_ID = "C0PAYDEPLOY"
CHANNEL = "#payments-deploys"
# The demo's people, named for what they are. The on-call engineer is on call in PagerDuty
# (SimWorld(pagerduty=True), and the drills that page) and a member of the owners group;
# the outsider is neither; payments' lead owns the services (their releases' Jira assignee)
# but is not on call, and is in the owners group where a scenario says so.
ONCALL = ("U0ONCALL", "oncall-engineer")
OUTSIDER = ("U0OUTSIDER", "outsider")
LEAD = ("U0LEAD", "payments-lead")
LEAD_EMAIL = "payments-lead@example.com"
RUNBOOK = Path(__file__).resolve().parents[2] / "runbooks" / "payment-router.md"
# PagerDuty (SimWorld(pagerduty=True)): the on-call engineer is the same person as in Slack.
PD_ONCALL = "PONCALL1"
PD_STRANGER = "PCONTRCT"  # a PagerDuty user with no Slack account
PD_ROLLBOT = "PROLLBOT"
PD_FROM = "rollbot@example.com"
PD_POLICY = "PESC123"
PD_SERVICE = "PSVC123"
PD_ROUTING_KEY = "R0UTINGKEYPAYMENTROUTER00000000"
PD_CHECKOUT_SERVICE = "PSVC456"
PD_CHECKOUT_ROUTING_KEY = "R0UTINGKEYCHECKOUT0000000000000"
PD_WEBHOOK_SECRET = "demo-pagerduty-webhook-secret-not-for-production"
PD_WORKFLOW_SECRET = "demo-pagerduty-workflow-secret-not-for-production"
PD_LINK_SECRET = "demo-runbook-link-secret-not-for-production"
PD_WORKFLOWS = ("Rollback Tier 1: abort", "Tier 2: open circuit", "Tier 2: close circuit")
USERGROUP = "S0PAYMENTS"
USERGROUP_HANDLE = "payments-owners"  # the services' owners group (not an on-call rota)


@dataclass(frozen=True)
class WorldSecrets:
    """The secrets a SimWorld shares between the bot's environment and the sims that check
    them. The defaults are the demo's constants; `SimWorld(secrets=WorldSecrets(...))` with
    values of its own also makes the Slack sim accept only `slack_bot_token` (the PagerDuty
    sim always accepts only its token), so a test can tell that each value reaches the bot
    and that none leaks (tests/security/test_secrets_never_leak.py)."""

    slack_bot_token: str = BOT_TOKEN
    slack_signing_secret: str = SIGNING_SECRET
    slack_app_token: str = APP_TOKEN
    alertmanager_token: str = ALERTMANAGER_TOKEN
    pd_api_token: str = PD_API_TOKEN
    pd_webhook_secret: str = PD_WEBHOOK_SECRET
    pd_workflow_secret: str = PD_WORKFLOW_SECRET
    link_secret: str = PD_LINK_SECRET
    pd_routing_key: str = PD_ROUTING_KEY
    pd_checkout_routing_key: str = PD_CHECKOUT_ROUTING_KEY


class AcceleratedClock:
    """Simulated seconds run `speed` times faster than real ones."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._t0 = time.monotonic()

    def __call__(self) -> float:
        return self._t0 + (time.monotonic() - self._t0) * self.speed


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, recursively for mappings."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


_TEXT_SERVICE = re.compile(r"(?:^|· )([a-z0-9][a-z0-9.-]*) revision \d+:")


def _card_service(message: dict[str, Any]) -> str | None:
    """The service a card is about: the name after the header's status emoji."""
    for block in message.get("blocks") or []:
        if block.get("type") == "header":
            words = str((block.get("text") or {}).get("text", "")).split()
            return words[1] if len(words) > 1 else None
    found = _TEXT_SERVICE.search(str(message.get("text") or ""))
    return found.group(1) if found else None


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class SimWorld:
    def __init__(
        self,
        *,
        speed: float = 60.0,
        port: int = 0,
        analysis_at_25: str = "Inconclusive",
        workdir: Path | None = None,
        slack_rate_limits: bool = True,
        database_url: str | None = None,
        verify_timeout: float = 15.0,
        extra_services: dict[str, dict[str, Any]] | None = None,
        start_bot: bool = True,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        jira: bool | dict[str, Any] = False,
        clock: Any = None,
        pagerduty: bool = False,
        checkout: bool = False,
        secrets: WorldSecrets | None = None,
        sock: socket.socket | None = None,
        slack_mode: str = "http",
        gitops: str | None = None,
    ) -> None:
        """`jira`: start a JiraSim (True, or its keyword arguments) and point the bot at
        it; `clock`: the bot's `bot.runtime.scheduler.Clock` (e.g. a ScaledClock for due dates);
        `checkout`: the second service too (`bot.sim.world.seed_checkout`: fully rolled
        out, its circuit-breaker flag `CHECKOUT_FLAGS["circuit"]`, the same channel and
        owners, its own PagerDuty service on the same escalation policy); `secrets`: the
        values given to the bot and its sims (`WorldSecrets`; the demo's by default); `sock`:
        a TCP socket already bound (not listening) for the bot to serve on, instead of
        `port`: its port can be named elsewhere (say, in an Alertmanager's webhook URL)
        before the world starts, with no window for another process to take it. The world
        closes it. `slack_mode`: "http", "socket" or "both" (see the module). `gitops`:
        "github" or "gitlab": rollbot runs Tier 3 for payment-router (`_start_gitops`): a
        real GitOps repository served over smart HTTP, the code host's sim over it, and Argo
        CD syncing the Rollout from it (the release itself is a commit Argo CD synced)."""
        if gitops not in (None, "github", "gitlab"):
            raise ValueError(f"gitops must be None, 'github' or 'gitlab', not {gitops!r}")
        self.gitops = gitops
        if slack_mode not in SLACK_MODES:
            raise ValueError(f"slack_mode must be one of {SLACK_MODES}, not {slack_mode!r}")
        self.slack_mode = slack_mode
        self._sock = sock
        self.checkout = checkout
        self.secrets = secrets or WorldSecrets()
        self._pin_slack_token = secrets is not None
        self.jira_options: dict[str, Any] | None = (
            None if jira is False else ({} if jira is True else dict(jira))
        )
        self.bot_clock = clock
        self.pagerduty = pagerduty
        self.extra_env = env or {}
        self.start_bot = start_bot
        self.settings_overrides = settings or {}
        self.extra_services = extra_services or {}
        self.speed = speed
        self.port = port
        self.analysis_at_25 = analysis_at_25
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.workdir = workdir
        self.slack_rate_limits = slack_rate_limits
        self.database_url = database_url
        self.verify_timeout = verify_timeout
        self.kube: KubeSim
        self.argo: ArgoController
        self.slack: SlackSim
        self.rollbot: Rollbot
        self.sender: SlackSender
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()

    def _start_gitops(self) -> dict[str, Any]:
        """The GitOps world (`gitops`): the repository `GITOPS_PROJECT` with the stable
        release, the Rollout seeded from it and an Argo CD Application (automated sync)
        over it; then the release commit of 1.13.0, synced by Argo CD: revision 42 starts
        with the commit's sha on its pod template. Argo CD keeps polling (`argocd`);
        returns the service's `gitops` settings."""
        assert self.workdir is not None
        token = GITHUB_TOKEN if self.gitops == "github" else GITLAB_TOKEN
        self.git = GitHttpServer(self.workdir / "git", token=token).start()
        self._stack.callback(self.git.stop)
        project = sim_world.GITOPS_PROJECT
        repo = self.git.create_repo(
            project,
            sim_world.gitops_files(sim_world.STABLE_IMAGE),
            message="Release payment-router 1.12.4",
        )
        self.gitops_repo = repo
        url = self.git.repo_url(project)
        stable = repo.head("main")
        assert stable is not None
        sim_world.seed_payment_router(
            self.kube,
            self.argo,
            start_canary=False,
            release_shas={sim_world.STABLE_IMAGE: stable},
        )
        self.argocd = ArgoCDSim(self.kube, {url: repo})
        self.kube.create(
            argocd_application(
                sim_world.ROLLOUT,
                repo_url=url,
                path=sim_world.GITOPS_PATH,
                dest_namespace=sim_world.NAMESPACE,
                auto=True,
            )
        )
        self.argocd.step()  # synced to the stable release: nothing changes
        self.release_sha = repo.commit_files(
            "main",
            sim_world.gitops_files(sim_world.CANARY_IMAGE),
            "Release payment-router 1.13.0",
        )
        self.argocd.step()  # the release: revision 42 starts
        self.argo.reconcile()
        self.argocd.run_in_thread(interval=0.05)
        self._stack.callback(self.argocd.stop)
        if self.gitops == "github":
            self.code_host: Any = GitHubSim(repos={project: repo}, token=token).start()
            self.extra_env.setdefault("ROLLBOT_GITOPS__GITHUB_TOKEN", token)
        else:
            self.code_host = GitLabSim(projects={project: repo}, token=token).start()
            self.extra_env.setdefault("ROLLBOT_GITOPS__GITLAB_TOKEN", token)
        self._stack.callback(self.code_host.stop)
        return {
            "repo": url,
            "path": sim_world.GITOPS_PATH,
            "provider": self.gitops,
            "api_url": self.code_host.url,
            "application": {"namespace": "argocd", "name": sim_world.ROLLOUT},
        }

    async def __aenter__(self) -> SimWorld:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        if self._sock is not None:
            self._stack.callback(self._sock.close)
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rollbot-sim-")
            self._stack.callback(self._tmp.cleanup)
            self.workdir = Path(self._tmp.name)
        self.kube = KubeSim().start()
        self._stack.callback(self.kube.stop)
        self.slack = SlackSim(
            rate_limits=self.slack_rate_limits,
            token=self.secrets.slack_bot_token if self._pin_slack_token else None,
            app_token=self.secrets.slack_app_token,
        ).start()
        self._stack.callback(self.slack.stop)
        self.slack.add_channel(CHANNEL_ID, CHANNEL.lstrip("#"))
        self.slack.add_user(
            ONCALL[0], ONCALL[1], real_name="On-call Engineer", email="oncall@example.com"
        )
        self.slack.add_user(
            OUTSIDER[0], OUTSIDER[1], real_name="Someone Else", email="outsider@example.com"
        )
        self.slack.add_user(LEAD[0], LEAD[1], real_name="Payments Lead", email=LEAD_EMAIL)
        self.slack.add_usergroup(USERGROUP, USERGROUP_HANDLE, [ONCALL[0]])
        pd_settings: dict[str, Any] = {}
        pd_service: dict[str, Any] = {}
        if self.pagerduty:
            self.pd = PagerDutySim(token=self.secrets.pd_api_token).start()
            self._stack.callback(self.pd.stop)
            self.pd.add_user(PD_ONCALL, "On-call Engineer", "oncall@example.com")
            self.pd.add_user(PD_STRANGER, "Contractor", "contractor@elsewhere.example")
            self.pd.add_user(PD_ROLLBOT, "rollbot", PD_FROM)
            self.pd.add_escalation_policy(PD_POLICY, "Payments")
            self.pd.set_oncall(PD_POLICY, [PD_ONCALL])
            self.pd.add_service(
                PD_SERVICE,
                "payment-router",
                description="Runbook: runbooks/payment-router.md",
                escalation_policy_id=PD_POLICY,
            )
            self.pd.add_integration(self.secrets.pd_routing_key, PD_SERVICE)
            if self.checkout:
                self.pd.add_service(PD_CHECKOUT_SERVICE, "checkout", escalation_policy_id=PD_POLICY)
                self.pd.add_integration(self.secrets.pd_checkout_routing_key, PD_CHECKOUT_SERVICE)
                self.extra_env.setdefault(
                    "ROLLBOT_SERVICES__CHECKOUT__PAGERDUTY__ROUTING_KEY",
                    self.secrets.pd_checkout_routing_key,
                )
            pd_settings = {
                "api_url": self.pd.url,
                "events_url": self.pd.url,
                "ca_file": self.pd.ca_file,
                "from_email": PD_FROM,
            }
            pd_service = {"service_id": PD_SERVICE, "escalation_policy_id": PD_POLICY}
            self.extra_env.setdefault("ROLLBOT_PAGERDUTY__API_TOKEN", self.pd.token)
            self.extra_env.setdefault(
                "ROLLBOT_PAGERDUTY__WEBHOOK_SECRET", self.secrets.pd_webhook_secret
            )
            self.extra_env.setdefault(
                "ROLLBOT_PAGERDUTY__WORKFLOW_SECRET", self.secrets.pd_workflow_secret
            )
            # Signed runbook links for the responder who acknowledges (a Slack DM to them).
            self.extra_env.setdefault("ROLLBOT_SERVER__LINK_SECRET", self.secrets.link_secret)
            self.extra_env.setdefault(
                "ROLLBOT_SERVICES__PAYMENT_ROUTER__PAGERDUTY__ROUTING_KEY",
                self.secrets.pd_routing_key,
            )
        jira_settings: dict[str, Any] = {}
        if self.jira_options is not None:
            self.jira = JiraSim(**self.jira_options).start()
            self._stack.callback(self.jira.stop)
            self.jira.add_user(LEAD_EMAIL, "Payments Lead")
            jira_settings = {"url": self.jira.url, "email": self.jira.email}
            self.extra_env.setdefault("ROLLBOT_JIRA__API_TOKEN", self.jira.api_token)

        self.clock = AcceleratedClock(self.speed)
        self.argo = ArgoController(self.kube, clock=self.clock)
        # The case study's incident: at 25 % the p95 latency crosses its SLO. Inconclusive
        # pauses the canary for a human (the playbook's Tier 1); Failed makes the controller
        # abort by itself; Successful lets it go on to 100 %.
        self.argo.script_analysis(
            "payments",
            "payment-router",
            step_index=sim_world.analysis_step_after_weight(25),
            outcome=self.analysis_at_25,
            message='Metric "latency-p95" assessed Inconclusive due to inconclusive (1) > '
            "inconclusiveLimit (0): p95 400 ms"
            if self.analysis_at_25 == "Inconclusive"
            else "",
        )
        gitops_service: dict[str, Any] = {}
        if self.gitops is not None:
            gitops_service = self._start_gitops()
        else:
            sim_world.seed_payment_router(self.kube, self.argo)
        services: dict[str, Any] = {}
        if self.checkout:
            sim_world.seed_checkout(self.kube, self.argo)
            services[sim_world.CHECKOUT] = {
                "namespace": sim_world.CHECKOUT_NAMESPACE,
                "rollout": sim_world.CHECKOUT,
                "channel": CHANNEL,
                "owners": {"slack_usergroup": USERGROUP, "jira_assignee": LEAD_EMAIL},
                "jira": {"project": "CHK"},
                **(
                    {
                        "pagerduty": {
                            "service_id": PD_CHECKOUT_SERVICE,
                            "escalation_policy_id": PD_POLICY,
                        }
                    }
                    if self.pagerduty
                    else {}
                ),
                "flags": dict(sim_world.CHECKOUT_FLAGS),
            }
        kubeconfig = self.kube.write_kubeconfig(self.workdir / "kubeconfig")

        # The bot's socket first, so that its public URL (runbook links in PagerDuty
        # events, signed links) is known to the settings it starts with.
        sock: socket.socket | None = None
        # /metrics and the probes on the bot's one port (its tests read them there), and no
        # second listener for `rollbot serve` over this config to bind.
        server_section: dict[str, Any] = {"internal_port": None}
        if self.start_bot:
            sock = self._sock or (_free_socket() if self.port == 0 else None)
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", self.port))
            self._stack.callback(sock.close)
            port = sock.getsockname()[1]
            server_section["public_url"] = f"http://127.0.0.1:{port}"
        config = self.workdir / "rollbot.yaml"
        config.write_text(
            json.dumps(
                _merge(
                    {
                        "slack": {"api_url": self.slack.api_url},
                        "kubernetes": {
                            "kubeconfig": str(kubeconfig),
                            "verify_timeout_seconds": self.verify_timeout,
                        },
                        "database": {
                            "url": self.database_url or f"sqlite:///{self.workdir / 'rollbot.db'}"
                        },
                        # The quiet period runs on the world's clock, like the Argo
                        # controller's: 300 simulated seconds (at least one real second).
                        "incidents": {"quiet_period_seconds": max(1, round(300 / self.speed))},
                        "server": server_section,
                        **({"jira": jira_settings} if jira_settings else {}),
                        **({"pagerduty": pd_settings} if pd_settings else {}),
                        "services": {
                            "payment-router": {
                                "namespace": "payments",
                                "rollout": "payment-router",
                                "channel": CHANNEL,
                                "owners": {
                                    "slack_usergroup": USERGROUP,
                                    "jira_assignee": LEAD_EMAIL,
                                },
                                "jira": {"project": "PAY"},
                                **({"pagerduty": pd_service} if pd_service else {}),
                                "runbook": str(RUNBOOK),
                                "flags": {
                                    "release": "payments.new-router.enabled",
                                    "circuit": "payments.new-router.circuit-open",
                                },
                                **({"gitops": gitops_service} if gitops_service else {}),
                            },
                            **services,
                            **self.extra_services,
                        },
                    },
                    self.settings_overrides,
                )
            )
        )
        self.config_path = config
        slack_env = {"ROLLBOT_SLACK__BOT_TOKEN": self.secrets.slack_bot_token}
        if self.slack_mode in ("http", "both"):
            slack_env["ROLLBOT_SLACK__SIGNING_SECRET"] = self.secrets.slack_signing_secret
        if self.slack_mode in ("socket", "both"):
            slack_env["ROLLBOT_SLACK__APP_TOKEN"] = self.secrets.slack_app_token
        self.bot_env = {
            **slack_env,
            "ROLLBOT_ALERTMANAGER__BEARER_TOKEN": self.secrets.alertmanager_token,
            **self.extra_env,
        }
        if not self.start_bot:
            # The bot runs elsewhere (e.g. `rollbot serve --config …` in its own process);
            # call attach_bot(url) once it listens.
            self.argo.run_in_thread(interval=0.02)
            self._stack.callback(self.argo.stop)
            return
        settings = load_settings(config, environ=self.bot_env)
        self.settings = settings
        self.rollbot = await build(settings, clock=self.bot_clock)
        assert sock is not None
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(
            uvicorn.Config(create_web_app(self.rollbot), log_level="warning", lifespan="on")
        )
        server = self._server

        def step_down() -> None:
            server.should_exit = True

        self.rollbot.on_leadership_lost = step_down
        self._serve_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        self._stack.push_async_callback(self._stop_server)
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()
            if time.monotonic() > deadline:
                raise TimeoutError("rollbot did not start within 10 s")
            await asyncio.sleep(0.02)
        self.attach_bot(self.url)
        if self.socket_mode:
            # The bot leads from its start, so it connects: its first envelope has a link.
            await self.wait_for(
                lambda: self.slack.socket.open_connections,
                timeout=10,
                what="the bot's Socket Mode connection",
            )
        self.argo.run_in_thread(interval=0.02)
        self._stack.callback(self.argo.stop)

    @property
    def socket_mode(self) -> bool:
        """Whether the bot gets Slack's requests over Socket Mode (the sender delivers there)."""
        return self.slack_mode in ("socket", "both")

    def attach_bot(self, url: str) -> None:
        """Point the signed-request sender at a bot listening at `url` (and PagerDuty's
        webhooks and the "Rollback" Incident Workflows at it, when PagerDuty runs). In
        Socket Mode the sender delivers through the Slack sim's socket whatever `url`."""
        self.url = url
        self.sender = SlackSender(
            f"{url}/slack/events",
            self.secrets.slack_signing_secret,
            sim=self.slack,
            socket_mode=self.socket_mode,
        )
        if self.pagerduty:
            hook = f"{url}/webhooks/pagerduty"
            self.pd_subscription = self.pd.subscribe(hook, self.secrets.pd_webhook_secret)
            bearer = {"Authorization": f"Bearer {self.secrets.pd_workflow_secret}"}
            for name in PD_WORKFLOWS:
                self.pd.add_workflow(name, hook, headers=bearer)

    async def _stop_server(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._serve_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._serve_task, timeout=10)

    # -- observing ---------------------------------------------------------------------

    def card(self, service: str = sim_world.ROLLOUT) -> dict[str, Any] | None:
        """`service`'s rollout card in the channel: the top-level message whose header
        (or, without blocks, whose text) starts with the service's name."""
        for message in self.slack.messages(CHANNEL_ID):
            if message.get("thread_ts") not in (None, message.get("ts")):
                continue
            if _card_service(message) == service:
                return message
        return None

    async def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_for_card(self, *, timeout: float = 60.0) -> dict[str, Any]:
        card = await self.wait_for(self.card, timeout=timeout, what="the rollout card")
        assert isinstance(card, dict)
        return card

    @staticmethod
    def button(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
        for block in message.get("blocks") or []:
            for element in block.get("elements") or []:
                if element.get("action_id") == action_id:
                    found: dict[str, Any] = element | {"block_id": block.get("block_id")}
                    return found
        return None

    async def click(
        self, message: dict[str, Any], action_id: str, *, user: tuple[str, str] = ONCALL, **kw: Any
    ) -> Any:
        button = self.button(message, action_id)
        if button is None:
            raise LookupError(f"no {action_id} button on the card")
        return await self.sender.click(
            user[0],
            action_id,
            button["value"],
            message=message,
            channel_id=CHANNEL_ID,
            block_id=button["block_id"],
            user_name=user[1],
            **kw,
        ).send()
