"""An alert storm's world and stream, for the storm and signal-to-card benchmarks (issue 17).

The world: `services` healthy Rollouts (stable revision 7, fully rolled out, each like the
demo's checkout) spread over `teams` namespaces, one Slack channel per team, in a Kubernetes
sim with the Argo controller sim and a Slack sim with Slack's documented rate limits on
(`bot.sim.slack.SlackSim`: chat.postMessage 1 per second per channel with short bursts,
chat.update 50 a minute). The catalog is generated here, as the SimWorld's `extra_services`.

The stream: `Dispatcher` groups alerts the way Alertmanager's dispatcher does (route
`group_by: [alertname, service]`): the first alert of a group is sent after `group_wait`,
then the group is sent again every `group_interval` while it changed, each notification
carrying every alert of the group (firing ones; Alertmanager resends what still fires).

    python -m tests.bench.storm world SERVICES TEAMS

starts the world without the bot, prints ``CONFIG <path>`` and ``SLACK <url>``, reads the
bot's URL on stdin, prints ``READY``, and on stdin closing writes the Slack sim's calls
and the channels' messages as JSON to each path given on a line (see `serve`). `World`
runs it from a benchmark.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.sim import world as sim_world
from bot.sim.alerts import ZERO_TIME
from bot.sim.argo import ArgoController
from bot.sim.harness import ALERTMANAGER_TOKEN, BOT_TOKEN, SIGNING_SECRET, SimWorld
from bot.sim.kube import KubeSim

ROOT = Path(__file__).resolve().parents[2]
REVISION = 7
ALERT_NAMES = ("HighErrorRate", "HighLatencyP99", "PodNotReady", "SaturationHigh")


def service_name(i: int) -> str:
    return f"svc-{i:02d}"


def team_of(i: int, teams: int) -> int:
    return i % teams


def channel_id(team: int) -> str:
    return f"C0TEAM{team:03d}"


def channel_name(team: int) -> str:
    return f"#team-{team:03d}-deploys"


def namespace(team: int) -> str:
    return f"team-{team:03d}"


def catalog(services: int, teams: int) -> dict[str, dict[str, Any]]:
    """The generated catalog entries (SimWorld's `extra_services`)."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(services):
        team = team_of(i, teams)
        name = service_name(i)
        out[name] = {
            "namespace": namespace(team),
            "rollout": name,
            "channel": channel_name(team),
        }
    return out


def seed(kube: KubeSim, argo: ArgoController, services: int, teams: int) -> None:
    """Each service's Rollout: stable revision `REVISION`, fully rolled out."""
    for i in range(services):
        name, ns = service_name(i), namespace(team_of(i, teams))
        rollout = _renamed(sim_world.payment_router_rollout(ns, sim_world.STABLE_IMAGE), name)
        rollout["metadata"]["labels"]["team"] = ns
        kube.create(rollout)
        argo.adopt_as_stable(ns, name, revision=REVISION)
    argo.reconcile()


def _renamed(value: Any, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, new) for v in value]
    return value.replace(sim_world.ROLLOUT, new) if isinstance(value, str) else value


def add_channels(world: SimWorld, teams: int) -> None:
    for team in range(teams):
        world.slack.add_channel(channel_id(team), channel_name(team).lstrip("#"))


# ── the alerts ───────────────────────────────────────────────────────────────


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert(service: str, name: str, instance: int, *, starts_at: datetime) -> dict[str, Any]:
    """One firing alert as Alertmanager 0.25 puts it in a webhook."""
    labels = {
        "alertname": name,
        "service": service,
        "severity": "page",
        "instance": f"{service}-{instance:04d}",
    }
    fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{name} on {service} pod {instance}"},
        "startsAt": _ts(starts_at),
        "endsAt": ZERO_TIME,
        "generatorURL": f"http://prometheus.local/graph?g0.expr={name}",
        "fingerprint": fingerprint,
    }


def body(group: tuple[str, str], alerts: list[dict[str, Any]]) -> bytes:
    """A version-4 webhook body for the group (alertname, service)."""
    name, service = group
    labels = {"alertname": name, "service": service}
    return json.dumps(
        {
            "receiver": "rollbot",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": labels,
            "commonLabels": {**labels, "severity": "page"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.local:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}", service="{service}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


def storm(services: int, per_service: int) -> Iterator[tuple[str, str, int]]:
    """(service, alertname, instance) of every alert, interleaved across the services."""
    for k in range(per_service):
        for i in range(services):
            yield service_name(i), ALERT_NAMES[k % len(ALERT_NAMES)], k


@dataclass
class _Group:
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    due: float | None = None  # when it is sent next (None: nothing new)
    sent_once: bool = False
    last_sent: float = 0.0


class Dispatcher:
    """Alertmanager's grouping: `add` an alert at time `now`; `due(now)` gives the bodies
    to send now (each group's whole current alert set)."""

    def __init__(self, *, group_wait: float, group_interval: float) -> None:
        self.group_wait, self.group_interval = group_wait, group_interval
        self._groups: dict[tuple[str, str], _Group] = {}

    def add(self, service: str, name: str, raw: dict[str, Any], now: float) -> None:
        group = self._groups.setdefault((name, service), _Group())
        group.alerts[raw["fingerprint"]] = raw
        if group.due is None:
            group.due = (
                group.last_sent + self.group_interval if group.sent_once else now + self.group_wait
            )
            group.due = max(group.due, now)

    def due(self, now: float) -> list[tuple[tuple[str, str], bytes, int]]:
        """(group, body, alerts in it) for each group due at `now`."""
        out = []
        for key, group in self._groups.items():
            if group.due is not None and group.due <= now:
                out.append((key, body(key, list(group.alerts.values())), len(group.alerts)))
                group.due, group.sent_once, group.last_sent = None, True, now
        return out

    def next_due(self) -> float | None:
        dues = [g.due for g in self._groups.values() if g.due is not None]
        return min(dues) if dues else None


# ── the world process ────────────────────────────────────────────────────────

BOT_ENV = {
    "ROLLBOT_SLACK__BOT_TOKEN": BOT_TOKEN,
    "ROLLBOT_SLACK__SIGNING_SECRET": SIGNING_SECRET,
    "ROLLBOT_ALERTMANAGER__BEARER_TOKEN": ALERTMANAGER_TOKEN,
}
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "Alertmanager/0.25.0",
    "Authorization": f"Bearer {ALERTMANAGER_TOKEN}",
}


class World:
    """`python -m tests.bench.storm world`: the sims, in their own process."""

    def __init__(self, *, services: int, teams: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.storm", "world", str(services), str(teams)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.config = self.read_until("CONFIG ")
        # rollbot's SQLite file, as the world's config names it (sqlite:///PATH).
        url = json.loads(Path(self.config).read_text())["database"]["url"]
        self.database = Path(url.removeprefix("sqlite:///"))

    def read_until(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"the world exited before printing {prefix}")

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def dump(self, path: Path) -> dict[str, Any]:
        self.tell(str(path))
        self.read_until("DUMPED")
        return dict(json.loads(path.read_text()))

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def serve(services: int, teams: int) -> None:
    """The world without the bot, for `rollbot serve` in its own process. Protocol on
    stdin/stdout: prints CONFIG and SLACK; reads the bot's URL; prints READY; then reads
    one path per line and writes the sim's record there (`dump`), printing DUMPED, until
    stdin closes."""
    async with SimWorld(
        speed=1,
        start_bot=False,
        extra_services=catalog(services, teams),
        analysis_at_25="Successful",
    ) as world:
        add_channels(world, teams)
        seed(world.kube, world.argo, services, teams)
        print(f"CONFIG {world.config_path}", flush=True)
        loop = asyncio.get_running_loop()
        world.attach_bot((await loop.run_in_executor(None, sys.stdin.readline)).strip())
        print("READY", flush=True)
        while path := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            with open(path, "w") as f:
                json.dump(dump(world, teams), f)
            print("DUMPED", flush=True)


_FIRING = re.compile(r"Firing alerts\*? \(([\d,]+)\)")
_SERVICE = re.compile(r"(svc-\d+) revision \d+")


def dump(world: SimWorld, teams: int) -> dict[str, Any]:
    """What the Slack sim received (method, channel, arrival, status, thread, text) and
    the channels' messages as they are now."""
    calls = []
    for c in world.slack.calls:
        b = c.body if isinstance(c.body, dict) else {}
        blocks = b.get("blocks")
        shown = _FIRING.search(blocks if isinstance(blocks, str) else json.dumps(blocks or []))
        service = _SERVICE.search(str(b.get("text") or ""))
        calls.append(
            {
                "method": c.path.removeprefix("/api/"),
                "channel": b.get("channel"),
                "at": c.at,
                "status": c.status,
                "thread_ts": b.get("thread_ts"),
                "service": service.group(1) if service else None,
                "firing": int(shown.group(1).replace(",", "")) if shown else None,
            }
        )
    messages = {
        channel_id(t): [
            {"ts": m.get("ts"), "thread_ts": m.get("thread_ts"), "text": m.get("text")}
            for m in world.slack.messages(channel_id(t))
        ]
        for t in range(teams)
    }
    return {"calls": calls, "messages": messages}


if __name__ == "__main__":
    if sys.argv[1] == "world":
        asyncio.run(serve(int(sys.argv[2]), int(sys.argv[3])))
