"""Servers for the ack-latency benchmark, each in its own process.

    python -m tests.bench.servers world REQUESTS.json  # the simulated world, no bot
    rollbot serve --config <world's rollbot.yaml>      # rollbot, exactly as in production
    python -m tests.bench.servers bare                 # a bare Bolt AsyncApp that only acks

`world` prints `CONFIG <path>`, then reads the bot's URL on stdin, waits for the bot's card
and writes the signed requests the benchmark will send (slash commands and clicks on the
real card), built by its Slack sim so every `response_url` points at that sim and the
benchmark never reaches outside the machine; it prints `READY` and runs until stdin closes.
`bare` prints `READY <url>`. Each runs in its own process, so neither the sims nor the load
generator share rollbot's interpreter.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.harness import CHANNEL_ID, ONCALL, OUTSIDER, SIGNING_SECRET, SimWorld
from tests.plugins.slack import bolt_on_uvicorn

N = 200


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


def _requests(world: SimWorld, card: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    sender = world.sender
    button = world.button(card, "rollout_abort")
    assert button is not None
    out: dict[str, list[dict[str, Any]]] = {"commands": [], "clicks": []}
    for i in range(N + 20):
        user = ONCALL if i % 2 else OUTSIDER
        req = sender.slash_command(user[0], user[1], "payment-router status", channel_id=CHANNEL_ID)
        out["commands"].append({"body": req.body, "headers": req.headers})
        req = sender.click(
            ONCALL[0],
            "rollout_abort",
            button["value"],
            message=card,
            channel_id=CHANNEL_ID,
            block_id=button["block_id"],
            user_name=ONCALL[1],
        )
        out["clicks"].append({"body": req.body, "headers": req.headers})
    return out


async def serve_world(path: str) -> None:
    async with SimWorld(speed=600, slack_rate_limits=False, start_bot=False) as world:
        print(f"CONFIG {world.config_path}", flush=True)
        loop = asyncio.get_running_loop()
        world.attach_bot((await loop.run_in_executor(None, sys.stdin.readline)).strip())
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=60,
            what="the card",
        )
        with open(path, "w") as f:
            json.dump(_requests(world, card), f)
        print("READY", flush=True)
        await _until_stdin_closes()


async def serve_bare() -> None:
    app = AsyncApp(
        signing_secret=SIGNING_SECRET,
        client=AsyncWebClient(token="xoxb-bare", base_url="http://127.0.0.1:9/"),
        request_verification_enabled=True,
    )
    # The bare app must not call auth.test on an unreachable URL: authorize statically.
    app._async_middleware_list = [
        m for m in app._async_middleware_list if "Authorization" not in type(m).__name__
    ]

    @app.command("/rollback")
    async def command(ack: Any) -> None:
        await ack()

    @app.action(re.compile(".*"))
    async def action(ack: Any) -> None:
        await ack()

    async with bolt_on_uvicorn(app) as url:
        print(f"READY {url.removesuffix('/slack/events')}", flush=True)
        await _until_stdin_closes()


if __name__ == "__main__":
    if sys.argv[1] == "world":
        asyncio.run(serve_world(sys.argv[2]))
    else:
        asyncio.run(serve_bare())
