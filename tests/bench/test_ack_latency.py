"""Benchmark: how fast rollbot acknowledges Slack, against a bare Bolt app.

Measures, in one run, the ack latency (p50 / p99 / max) of 200 concurrent signed slash
commands (`/rollback payment-router status`) and 200 concurrent clicks on the card's Abort
button (one executes, 199 are duplicates) against rollbot, side by side with a bare Bolt
`AsyncApp` on the same Starlette/uvicorn stack that only acks. rollbot runs as `rollbot
serve` in its own process, the simulated world (Kubernetes, Argo, Slack) in another, the
bare app in a third; the load comes from this one. Target: rollbot's p99 within 1.2x the bare app's.
Run with `make bench`; prints figures and ratios, asserts only that every request was acked.
Records `ack_latency.{commands,clicks}.{p50,p99,max}_ms` (the bare app's as the baseline; the
p99's target is 1.2x the bare app's p99 of the same run) and the SIGTERM drain; draws the
latency distributions (docs/bench/ack_latency_commands.png, ack_latency_clicks.png).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.sim.harness import BOT_TOKEN, SIGNING_SECRET
from tests.bench import charts
from tests.bench.results import record
from tests.e2e.serving import start_serving

BOT_ENV = {"ROLLBOT_SLACK__BOT_TOKEN": BOT_TOKEN}

ROOT = Path(__file__).resolve().parents[2]
TARGET = 1.2
ROUNDS = 3  # bursts of 200 per server and kind; percentiles over all 600 samples


def start(*args: str, until: str = "READY") -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.servers", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, read_until(proc, until)


def read_until(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{proc.args} did not print {prefix}")


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


async def burst(url: str, requests: list[dict]) -> list[float]:
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(req: dict) -> float:
            t0 = time.perf_counter()
            response = await client.post(
                f"{url}/slack/events", content=req["body"].encode(), headers=req["headers"]
            )
            elapsed = time.perf_counter() - t0
            assert response.status_code == 200, response.text
            return elapsed

        return list(await asyncio.gather(*(one(r) for r in requests)))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


@pytest.mark.timeout(600)
def test_ack_latency_vs_bare_bolt(tmp_path):
    requests_file = tmp_path / "requests.json"
    world, config = start("world", str(requests_file), until="CONFIG ")
    # `rollbot serve`, exactly as in production, configured by the world's settings file.
    env = {**BOT_ENV, "ROLLBOT_SLACK__SIGNING_SECRET": SIGNING_SECRET}
    bot = start_serving(config, env, tmp_path / "rollbot.log")
    bot_url = bot.url
    assert world.stdin is not None
    world.stdin.write(bot_url + "\n")
    world.stdin.flush()
    read_until(world, "READY")
    bare, bare_url = start("bare", until="READY ")
    try:
        reqs = json.loads(requests_file.read_text())
        rows = []
        distributions: dict[str, dict[str, list[float]]] = {}
        servers = [("bare bolt", bare_url), ("rollbot", bot_url)]
        for kind in ("commands", "clicks"):
            warm, measured = reqs[kind][:20], reqs[kind][20:]
            samples: dict[str, list[float]] = {name: [] for name, _ in servers}
            for _name, url in servers:
                asyncio.run(burst(url, warm))
            # Rounds alternate which server goes first, so neither gains from going second.
            for round_ in range(ROUNDS):
                for name, url in servers if round_ % 2 == 0 else servers[::-1]:
                    samples[name] += asyncio.run(burst(url, measured))
            figures = {
                name: (pct(lat, 50), pct(lat, 99), max(lat) * 1000, statistics.mean(lat) * 1000)
                for name, lat in samples.items()
            }
            rows.append((kind, figures))
            distributions[kind] = samples
    finally:
        # SIGTERM: rollbot drains the work it acked (up to its drain deadline) and exits.
        t_term = time.monotonic()
        bot.proc.terminate()
        try:
            bot.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            bot.proc.kill()
        drain = time.monotonic() - t_term
        stop(world)
        stop(bare)

    print(
        f"\nack latency · {ROUNDS} bursts of 200 concurrent signed requests per server · "
        "loopback · one process per server"
    )
    print(f"{'requests':<10}{'server':<11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'mean ms':>9}")
    for kind, figures in rows:
        for name, (p50, p99, mx, mean) in figures.items():
            print(f"{kind:<10}{name:<11}{p50:9.1f}{p99:9.1f}{mx:9.1f}{mean:9.1f}")
        ratio = figures["rollbot"][1] / figures["bare bolt"][1]
        verdict = "within" if ratio <= TARGET else "OVER"
        print(f"{'':<10}p99 ratio rollbot / bare = {ratio:.2f}x ({verdict} the {TARGET}x target)")
    print(f"after SIGTERM rollbot finished its acked backlog and exited in {drain:.1f} s")

    for kind, figures in rows:
        ours, bare = figures["rollbot"], figures["bare bolt"]
        target = round(TARGET * bare[1], 1)
        record(
            f"ack_latency.{kind}.p99_ms",
            round(ours[1], 1),
            "ms",
            target=target,
            baseline=round(bare[1], 1),
            met=ours[1] <= TARGET * bare[1],
        )
        record(f"ack_latency.{kind}.p50_ms", round(ours[0], 1), "ms", baseline=round(bare[0], 1))
        record(f"ack_latency.{kind}.max_ms", round(ours[2], 1), "ms", baseline=round(bare[2], 1))
        charts.cdf(
            f"ack_latency_{kind}",
            f"Ack latency, {ROUNDS} bursts of 200 concurrent {kind}",
            {
                "rollbot": [t * 1000 for t in distributions[kind]["rollbot"]],
                "baseline: bare Bolt AsyncApp": [
                    t * 1000 for t in distributions[kind]["bare bolt"]
                ],
            },
            "ms",
        )
    record("ack_latency.sigterm_drain_s", round(drain, 2), "s")
