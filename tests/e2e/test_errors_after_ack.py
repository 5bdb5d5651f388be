"""A listener that fails after its ack still acks (bot.slack.errors.after_ack), over HTTP and
Socket Mode, in a SimWorld (the real bot, signed requests, the Slack sim).

slack-bolt's asyncio runner, when a listener raised after `ack()`, set the ack back to None
before answering Slack unless its 10 ms poll had seen it first: a failure told quickly
lost the ack (HTTP: 404 after 3 s, "didn't call ack()"; Socket Mode: no ack), and Slack
showed the person an error. Told slowly, the ack survived, so each request here is sent
`TIMES` times: before `after_ack`, most of them lost their ack.

Aspects under test, over HTTP and over Socket Mode:
- a click whose button value rollbot did not make, on every button listener that reads one
  (Abort, the circuit's open and close, "Break glass…", "Record Tier 3 revert…"): acked
  (HTTP 200; the envelope acked) within Slack's 3 s, the clicker told once through the
  click's response_url that the payload is not rollbot's, and nothing run (no Kubernetes
  write, no modal asked for, no audit entry);
- a click whose modal Slack refuses to open (its trigger id expired: `expired_trigger_id`),
  for "Record Tier 3 revert…" and "Break glass…": acked within 3 s, the clicker told once
  what Slack said, no modal open, no flag flipped, nothing audited.

"Told once" is checked once every listener run Bolt started has returned (nothing left to
tell a second time). The other kinds of listener have nothing left to fail after their ack:
slash commands and view submissions answer in the ack what they refuse and only queue the
rest (their queued failures: tests/integration/slack/test_release_listeners.py), and Bolt
acks an event before its listener runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.blocks import replies, tiers
from bot.sim.harness import CHANNEL_ID, ONCALL, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim

pytestmark = pytest.mark.timeout(120)

TIMES = 5  # each failing request, sent again: see the module
SLACK_DEADLINE = 3.0  # seconds Slack waits for the ack
NOT_OURS = "This button's payload is not one rollbot made."
FLAG = "payments.new-router.circuit-open"
MODES = ["http", "socket"]


@pytest.fixture(params=MODES)
async def world_ld(
    request: pytest.FixtureRequest, tmp_path: Any
) -> AsyncIterator[tuple[SimWorld, LaunchDarklySim]]:
    """A world whose circuit flag lives in LaunchDarkly (the sim), so the circuit buttons
    are on the card and "Break glass…" gets as far as views.open."""
    with LaunchDarklySim() as ld:
        ld.add_flag("default", FLAG, on=False)
        settings = {"flags": {"provider": "launchdarkly", "url": ld.url, "project": "default"}}
        async with SimWorld(
            speed=600,
            workdir=tmp_path,
            settings=settings,
            env={"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN},
            slack_mode=request.param,
        ) as world:
            yield world, ld


async def _card(world: SimWorld) -> dict[str, Any]:
    card: dict[str, Any] = await world.wait_for(
        lambda: (
            (c := world.card())
            and world.button(c, tiers.REVERT_OPEN_ACTION_ID)
            and world.button(c, tiers.CIRCUIT_ACTION_ID)
            and c
        ),
        timeout=60,
        what="the card with its Tier 2 and Tier 3 buttons",
    )
    return card


async def _click_acked(world: SimWorld, card: dict[str, Any], action_id: str, value: str) -> str:
    """Click `action_id` carrying `value` on `card` as ONCALL; assert Slack got the ack in
    time; the click's response_url id in the Slack sim."""
    request = world.sender.click(
        ONCALL[0], action_id, value, message=card, channel_id=CHANNEL_ID, user_name=ONCALL[1]
    )
    url = world.sender.last_response_url
    assert url is not None
    started = time.monotonic()
    answer = await request.send()
    took = time.monotonic() - started
    assert answer.status_code == 200, (action_id, answer.status_code, answer.text[:200])
    if world.socket_mode:
        (envelope,) = [
            e for e in world.slack.socket.envelopes if e.envelope_id == request.envelope_id
        ]
        assert envelope.ack_seconds is not None and not envelope.late, action_id
    else:
        assert took < SLACK_DEADLINE, (action_id, took)
    return url.rsplit("/", 1)[1]


def _listener_runs() -> list[asyncio.Task[Any]]:
    """Bolt's listener runs not yet returned (its asyncio runner starts each as a task of
    `run_ack_function_asynchronously`; the bot runs in this event loop)."""
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__name__", "") == "run_ack_function_asynchronously"
    ]


async def _told_once(world: SimWorld, rids: list[str], words: str) -> None:
    """Each click (`rids`, its response_url) was told `words` once, ephemeral, and nothing
    more, once every listener run has returned."""

    def told() -> dict[str, list[dict[str, Any]]]:
        return {rid: [r.body for r in world.slack.responses if r.id == rid] for rid in rids}

    await world.wait_for(
        lambda: all(told().values()), timeout=20, what=f"every click told {words!r}"
    )
    await world.wait_for(lambda: not _listener_runs(), timeout=20, what="the listeners done")
    for rid, bodies in told().items():
        assert len(bodies) == 1, (rid, bodies)
        (body,) = bodies
        assert words in json.dumps(body), body
        assert body["response_type"] == "ephemeral" and body["replace_original"] is False


async def _nothing_run(world: SimWorld, ld: LaunchDarklySim) -> None:
    assert [r for r in world.kube.requests if r.method != "GET"] == []
    assert world.slack.open_views(ONCALL[0]) == []
    assert await world.rollbot.store.audit_entries() == []
    assert not ld.is_on("default", FLAG)


async def test_a_button_value_rollbot_did_not_make_is_acked_and_told(
    world_ld: tuple[SimWorld, LaunchDarklySim],
) -> None:
    world, ld = world_ld
    card = await _card(world)
    rids = [
        await _click_acked(world, card, action_id, "not-rollbots")
        for action_id in (
            "rollout_abort",
            tiers.CIRCUIT_ACTION_ID,
            tiers.CIRCUIT_CLOSE_ACTION_ID,
            replies.BREAK_GLASS_ACTION_ID,
            tiers.REVERT_OPEN_ACTION_ID,
        )
        for _ in range(TIMES)
    ]
    await _told_once(world, rids, NOT_OURS)
    assert world.slack.calls_to("views.open") == []
    await _nothing_run(world, ld)


async def test_a_modal_slack_refuses_to_open_is_acked_and_told(
    world_ld: tuple[SimWorld, LaunchDarklySim],
) -> None:
    world, ld = world_ld
    card = await _card(world)
    revert = world.button(card, tiers.REVERT_OPEN_ACTION_ID)
    circuit = world.button(card, tiers.CIRCUIT_ACTION_ID)
    assert revert is not None and circuit is not None
    break_glass = replies.break_glass_value(
        value=circuit["value"], channel=CHANNEL_ID, message_ts=card["ts"]
    )
    world.slack.trigger_ttl = 0.0  # every trigger id has expired when the bot uses it
    rids = [
        await _click_acked(world, card, action_id, value)
        for action_id, value in (
            (tiers.REVERT_OPEN_ACTION_ID, revert["value"]),
            (replies.BREAK_GLASS_ACTION_ID, break_glass),
        )
        for _ in range(TIMES)
    ]
    await _told_once(world, rids, "expired_trigger_id")
    refused = world.slack.calls_to("views.open")
    assert len(refused) == 2 * TIMES
    assert {c.response["error"] for c in refused} == {"expired_trigger_id"}
    await _nothing_run(world, ld)
