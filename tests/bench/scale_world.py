"""The simulated cluster of the scale bench (tests/bench/test_watch_scale.py), in its own
process, and the bare watch consumer it is compared with.

    python -m tests.bench.scale_world world NAMESPACES PER_NAMESPACE SIGNALS
    python -m tests.bench.scale_world consumer KUBECONFIG

`world` starts a SimWorld without rollbot (the bench starts `rollbot serve` on its config),
stops its Argo controller (it would reconcile every Rollout 50 times a second), turns the
Kubernetes sim's CRD validation off (the bench's writes are its own), and seeds
NAMESPACES x PER_NAMESPACE Rollouts when told, each Healthy and fully promoted with its
stable ReplicaSet (cloned from the checkout service the world seeds). The first Rollout of the
first SIGNALS namespaces is in the catalog with a Slack channel of its own (so Slack's
per-channel limit never queues one signal behind another); the rest is the cluster around
it. It prints `CONFIG <path>` and `READY <json>` (unseeded, so the bench can measure
rollbot on an empty cluster first), then answers one JSON command per stdin line with one
JSON line:

    {"op": "seed"}   seed the Rollouts (above); answers how many, and the seconds it took
    {"op": "churn", "rate": R, "seconds": S, "signals": K}
        status writes at R a second for S seconds, spread over the Rollouts not in the
        catalog (the load), and K signals spread evenly over them: a catalogued Rollout's
        update aborted (what makes rollbot post a card); answers the writes made, the
        achieved rate and each signal's {service, channel, at, rv}
    {"op": "delivered", "rvs": [...]}   when rollbot's Rollout watch was handed each of
                         those resourceVersions (written of the last churn)
    {"op": "requests"}   the API requests the sim has answered, by kind: lists, watches
    {"op": "cards"}      every chat.postMessage the Slack sim answered: channel, at, ok

`consumer` is the floor rollbot is compared with: one httpx list (resourceVersion=0) and
watch of Rollouts across the cluster, each line parsed as JSON and nothing else. It prints
`SYNCED <seconds>`, then `SEEN <namespace>/<name> <rv> <time>` for every aborted Rollout it
sees, and for each line on stdin `CPU {"events": n, "cpu_s": …}` (so far); it ends with
stdin.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.sim import world as sim_world
from bot.sim.harness import SimWorld

TEMPLATE = "checkout"


def service(i: int) -> str:
    return f"svc-{i:03d}"


def namespace(i: int) -> str:
    return f"team-{i:03d}"


def channel(i: int) -> tuple[str, str]:
    return f"C0BENCH{i:04d}", f"#bench-{i:03d}"


def _clone(template: dict[str, Any], name: str, ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = sim_world._renamed(template, TEMPLATE, name)
    meta = obj["metadata"]
    meta["namespace"] = ns
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
        meta.pop(key, None)
    return obj


async def serve_world(namespaces: int, per_namespace: int, signals: int) -> None:
    extra = {
        service(i): {"namespace": namespace(i), "rollout": "app-0", "channel": channel(i)[1]}
        for i in range(signals)
    }
    async with SimWorld(
        speed=60, start_bot=False, checkout=True, slack_rate_limits=True, extra_services=extra
    ) as world:
        world.argo.stop()
        kube = world.kube
        kube.validate = False
        for i in range(signals):
            world.slack.add_channel(*channel(i))
        print(f"CONFIG {world.config_path}", flush=True)
        ready = {"kubeconfig": str(world.workdir / "kubeconfig"), "env": world.bot_env}
        print(f"READY {json.dumps(ready)}", flush=True)
        await _commands(world, namespaces, per_namespace, signals)


def _seed(world: SimWorld, namespaces: int, per_namespace: int) -> list[tuple[str, str]]:
    kube = world.kube
    rollout = kube.get("rollouts", sim_world.CHECKOUT_NAMESPACE, TEMPLATE)
    (stable,) = kube.list("replicasets", sim_world.CHECKOUT_NAMESPACE)
    assert rollout is not None
    names: list[tuple[str, str]] = []
    for n in range(namespaces):
        for k in range(per_namespace):
            name, ns = f"app-{k}", namespace(n)
            kube.create(_clone(rollout, name, ns))
            kube.create(_clone(stable, name, ns))
            names.append((ns, name))
    return names


async def _commands(world: SimWorld, namespaces: int, per_namespace: int, signals: int) -> None:
    loop = asyncio.get_running_loop()
    kube = world.kube
    fired = 0
    writes = 0
    signal_keys = [(namespace(i), "app-0") for i in range(signals)]
    load: list[tuple[str, str]] = []
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = json.loads(line)
        op = command["op"]
        if op == "seed":
            started = time.monotonic()
            names = _seed(world, namespaces, per_namespace)
            load = [key for key in names if key not in set(signal_keys)]
            answer: dict[str, Any] = {
                "rollouts": len(names),
                "seed_s": round(time.monotonic() - started, 1),
            }
        elif op == "churn":
            kube.deliveries = []
            rate, seconds, count = command["rate"], command["seconds"], command["signals"]
            total = int(rate * seconds)
            every = max(total // max(count, 1), 1)
            signals: list[dict[str, Any]] = []
            started = time.monotonic()
            for i in range(total):
                due = started + i / rate
                if (pause := due - time.monotonic()) > 0:
                    await asyncio.sleep(pause)
                if count and i % every == every // 2 and len(signals) < count:
                    ns, name = signal_keys[fired % len(signal_keys)]
                    index = fired % len(signal_keys)
                    fired += 1
                    at = time.time()
                    obj = kube.patch(
                        "rollouts",
                        ns,
                        name,
                        {"status": {"abort": True, "abortedAt": _now()}},
                        subresource="status",
                    )
                    signals.append(
                        {
                            "service": service(index),
                            "channel": channel(index)[0],
                            "key": f"{ns}/{name}",
                            "at": at,
                            "rv": obj["metadata"]["resourceVersion"],
                        }
                    )
                    continue
                ns, name = load[writes % len(load)]
                writes += 1
                kube.patch(
                    "rollouts",
                    ns,
                    name,
                    {"status": {"readyReplicas": writes % 7, "availableReplicas": writes % 7}},
                    subresource="status",
                )
            elapsed = time.monotonic() - started
            answer = {
                "writes": total,
                "rate": round(total / elapsed, 1),
                "signals": signals,
            }
        elif op == "delivered":
            wanted = set(command["rvs"])
            answer = {
                rv: at
                for agent, plural, rv, at in list(kube.deliveries or [])
                if agent.startswith("rollbot") and plural == "rollouts" and rv in wanted
            }
        elif op == "requests":
            answer = {"lists": 0, "watches": 0, "other": 0}
            for request in kube.requests:
                if command.get("log"):
                    print(request.method, request.path, request.query, file=sys.stderr)
                if request.param("watch") == "true":
                    answer["watches"] += 1
                elif request.method == "GET" and request.path.endswith(
                    ("/rollouts", "/analysisruns", "/replicasets")
                ):
                    answer["lists"] += 1
                else:
                    answer["other"] += 1
        elif op == "cards":
            answer = {
                "posts": [
                    {"channel": c.body.get("channel"), "at": c.at, "ok": bool(c.response["ok"])}
                    for c in world.slack.calls_to("chat.postMessage")
                ]
            }
        else:
            answer = {"error": f"unknown op {op}"}
        print(json.dumps(answer), flush=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def consume(config: dict[str, Any]) -> None:
    server = config["clusters"][0]["cluster"]["server"]
    token = config["users"][0]["user"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    path = "/apis/argoproj.io/v1alpha1/rollouts"
    events = 0
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=None) as client:
        started = time.monotonic()
        listed = (await client.get(path, params={"resourceVersion": "0"})).json()
        print(f"SYNCED {time.monotonic() - started:.3f}", flush=True)
        rv = listed["metadata"]["resourceVersion"]

        async def watch() -> None:
            nonlocal events
            params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true"}
            async with client.stream("GET", path, params=params) as response:
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    if event["type"] == "BOOKMARK":
                        continue
                    events += 1
                    obj = event["object"]
                    if (obj.get("status") or {}).get("abort"):
                        meta = obj["metadata"]
                        print(
                            f"SEEN {meta['namespace']}/{meta['name']} "
                            f"{meta['resourceVersion']} {time.time():.6f}",
                            flush=True,
                        )

        task = asyncio.create_task(watch())
        while await loop.run_in_executor(None, sys.stdin.readline):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = usage.ru_utime + usage.ru_stime
            print(f"CPU {json.dumps({'events': events, 'cpu_s': cpu})}", flush=True)
        task.cancel()


if __name__ == "__main__":
    if sys.argv[1] == "world":
        asyncio.run(serve_world(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    else:
        asyncio.run(consume(yaml.safe_load(Path(sys.argv[2]).read_text())))
