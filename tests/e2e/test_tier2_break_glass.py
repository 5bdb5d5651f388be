"""Tier 2 break-glass from the card, through a modal (Slack, LaunchDarkly and PagerDuty sims).

ONCALL is in the owners group but PagerDuty has someone else on call, so the circuit is
theirs only through break-glass.

Aspects under test:
- the owner's click on "Open circuit breaker (Tier 2)" is refused, to them alone, with a
  danger "Break glass…" button (`circuit_break_glass`) carrying the card's button value and
  message; nothing is flipped;
- that button opens the `circuit_break_glass` modal for the person who clicked (views.open
  within the trigger's 3 s), naming the flag and asking for a reason;
- a reason under 10 characters keeps the modal open with an error under
  `break_glass_reason`; the flag stays off and nothing is audited as succeeded;
- a good reason closes the modal and flips the flag exactly as `/rollback … circuit open
  break-glass REASON`: read back on, a succeeded `circuit-open` audit entry carrying the
  reason, the loud top-level notice naming the owners group in the channel, the result
  told to the submitter alone (chat.postEphemeral in the card's channel);
- Slack retrying the same submission (same view id and hash) flips once;
- once the flip is done, the refusal is rewritten through the response_url of the
  "Break glass…" click (carried in the modal's private_metadata), `replace_original`, as
  one line saying break glass was used, when and how it ended, with no button left; a
  too-short reason and Slack's retry rewrite nothing; a flip that fails (the flag gone
  from the provider) retires the button too, saying what failed;
- someone outside the owners group is refused without the button.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from bot.sim.harness import CHANNEL_ID, ONCALL, OUTSIDER, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim
from bot.sim.pagerduty import PagerDutySim
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)
FLAG = "payments.new-router.circuit-open"
PAGED = ("U0PAGED", "paged-engineer")  # on call in PagerDuty, not in the owners group
REASON = "paged engineer unreachable for 10 min, 5xx at 40 %"


@pytest.fixture
async def world_pd(tmp_path):
    with LaunchDarklySim() as ld, PagerDutySim() as pd:
        ld.add_flag("default", FLAG, on=False)
        pd.add_user("PUSER1", "Paged Engineer", "paged@example.com")
        pd.add_escalation_policy("PESC123", "Payments")
        pd.set_oncall("PESC123", ["PUSER1"])
        settings = {
            "flags": {"provider": "launchdarkly", "url": ld.url, "project": "default"},
            "pagerduty": {"api_url": pd.url, "ca_file": pd.ca_file},
            "services": {
                "payment-router": {
                    "pagerduty": {"service_id": "PSVC123", "escalation_policy_id": "PESC123"}
                }
            },
        }
        env = {"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN, "ROLLBOT_PAGERDUTY__API_TOKEN": pd.token}
        async with SimWorld(speed=600, workdir=tmp_path, settings=settings, env=env) as world:
            world.slack.add_user(
                PAGED[0], PAGED[1], real_name="Paged Engineer", email="paged@example.com"
            )
            yield world, ld


async def _entries(world: SimWorld) -> list[Any]:
    records = await world.rollbot.store.audit_entries()
    return [r.entry for r in records if r.entry.action == "circuit-open"]


async def _wait_entries(world: SimWorld, result: str, n: int = 1) -> list[Any]:
    async def found() -> list[Any] | None:
        entries = [e for e in await _entries(world) if e.result == result]
        return entries if len(entries) >= n else None

    return await eventually(
        found, timeout=30, interval=0.05, what=f"{n} {result} circuit-open entries"
    )


async def _refused_click(world: SimWorld, user: tuple[str, str]) -> dict[str, Any]:
    """Click the card's circuit button as `user`; the refusal they were told."""
    card = await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "circuit_open") and c,
        timeout=60,
        what="the card with the Tier 2 button",
    )
    before = len(world.slack.responses)
    response = await world.click(card, "circuit_open", user=user)
    assert response.status_code == 200
    found = await world.wait_for(
        lambda: next(
            (r.body for r in world.slack.responses[before:] if "may not" in r.body.get("text", "")),
            None,
        ),
        timeout=20,
        what="the refusal",
    )
    assert isinstance(found, dict)
    return found


def _reason(text: str) -> dict[str, dict[str, str]]:
    return {"break_glass_reason": {"reason": text}}


async def _open_modal(world: SimWorld, refusal: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Click the refusal's "Break glass…" as ONCALL: (the modal opened, the click's
    response_url id in the Slack sim)."""
    button = world.button(refusal, "circuit_break_glass")
    assert button is not None
    clicked = await world.sender.click(
        ONCALL[0],
        "circuit_break_glass",
        button["value"],
        message=refusal,
        channel_id=CHANNEL_ID,
        block_id=button["block_id"],
        user_name=ONCALL[1],
    ).send()
    assert clicked.status_code == 200
    url = world.sender.last_response_url
    assert url is not None
    views = await world.wait_for(
        lambda: world.slack.open_views(ONCALL[0]), timeout=20, what="the break-glass modal"
    )
    view = dict(views[-1])
    assert json.loads(view["private_metadata"])["u"] == url
    return view, url.rsplit("/", 1)[1]


def _posted_to(world: SimWorld, rid: str) -> list[dict[str, Any]]:
    """The bodies rollbot POSTed to the response_url `rid`."""
    return [r.body for r in world.slack.responses if r.id == rid]


def _assert_retired(body: dict[str, Any]) -> str:
    """The refusal's rewrite: replaces it, ephemeral, one line, no button; its text."""
    assert body["replace_original"] is True and body["response_type"] == "ephemeral"
    assert [b["type"] for b in body["blocks"]] == ["section"]
    assert "circuit_break_glass" not in json.dumps(body) and "button" not in json.dumps(body)
    text = body["text"]
    assert body["blocks"][0]["text"]["text"] == text
    assert re.search(r"Break glass used by you at \d\d:\d\d:\d\d UTC: ", text), text
    return str(text)


async def test_break_glass_from_the_card_through_the_modal(world_pd) -> None:
    world, ld = world_pd
    refusal = await _refused_click(world, ONCALL)
    assert refusal["response_type"] == "ephemeral"
    assert "break-glass" in refusal["text"] and "<@U0PAGED>" in refusal["text"]
    button = world.button(refusal, "circuit_break_glass")
    assert button is not None and button["style"] == "danger"
    assert button["text"]["text"] == "Break glass…"
    card = world.card()
    assert card is not None
    value = json.loads(button["value"])
    assert {**value, "c": None, "ts": None} == {
        **json.loads(world.button(card, "circuit_open")["value"]),  # type: ignore[index]
        "c": None,
        "ts": None,
    }
    assert value["c"] == CHANNEL_ID and value["ts"] == card["ts"]
    assert not ld.is_on("default", FLAG)

    # The button opens the modal for the person who clicked it.
    view, rid = await _open_modal(world, refusal)
    assert view["callback_id"] == "circuit_break_glass"
    assert view["title"]["text"] == "Break glass"
    assert FLAG in json.dumps(view["blocks"]) and "<!subteam^S0PAYMENTS>" in json.dumps(view)
    metadata = json.loads(view["private_metadata"])
    assert metadata["s"] == "payment-router" and metadata["c"] == CHANNEL_ID
    assert metadata["ts"] == card["ts"]
    assert world.slack.open_views(PAGED[0]) == []

    # Too short a reason: the modal stays open with the error; nothing flipped.
    short = await world.sender.view_submission(
        ONCALL[0], view, _reason("   urgent "), user_name=ONCALL[1]
    ).send()
    assert short.status_code == 200
    assert "at least 10" in world.slack.view_errors(view["id"])["break_glass_reason"]
    assert [v["id"] for v in world.slack.open_views(ONCALL[0])] == [view["id"]]
    assert not ld.is_on("default", FLAG)
    assert [e.result for e in await _entries(world)] == ["refused"]  # the first click only
    assert _posted_to(world, rid) == []  # answered in the submission's response: no job ran

    # A good reason: closed at once, flipped on the work queue, loud and audited.
    good = await world.sender.view_submission(
        ONCALL[0], view, _reason(REASON), user_name=ONCALL[1]
    ).send()
    assert good.status_code == 200
    assert world.slack.open_views(ONCALL[0]) == []
    assert world.slack.view_errors(view["id"]) == {}
    (entry,) = await _wait_entries(world, "succeeded")
    assert ld.is_on("default", FLAG)
    assert entry.actor.startswith("slack:U0ONCALL:")
    assert entry.detail["break_glass"] == REASON
    assert "break-glass" in entry.detail["authorised"]
    loud = await world.wait_for(
        lambda: [
            m
            for m in world.slack.messages(CHANNEL_ID)
            if "BREAK-GLASS" in (m.get("text") or "") and m.get("thread_ts") in (None, m["ts"])
        ],
        timeout=20,
        what="the loud break-glass notice",
    )
    assert "<!subteam^S0PAYMENTS>" in loud[0]["text"] and "5xx at 40 %" in loud[0]["text"]
    told = await world.wait_for(
        lambda: [m for m in world.slack.ephemerals if "Opened the circuit" in m["text"]],
        timeout=20,
        what="the result told to the submitter",
    )
    assert told[0]["channel"] == CHANNEL_ID and told[0]["user"] == ONCALL[0]

    # The refusal is rewritten through the "Break glass…" click's response_url: no button.
    (retired,) = await world.wait_for(
        lambda: _posted_to(world, rid), timeout=20, what="the refusal rewritten"
    )
    text = _assert_retired(retired)
    assert text.endswith(": circuit opened, verified — see the card's thread."), text

    # Slack retries the same submission (after the first was told, the flag's epoch bumped):
    # no second flip.
    retry = await world.sender.view_submission(
        ONCALL[0], view, _reason(REASON), user_name=ONCALL[1], retry_num=1
    ).send()
    assert retry.status_code == 200
    await _wait_entries(world, "duplicate")
    assert len([e for e in await _entries(world) if e.result == "succeeded"]) == 1
    patches = [r for r in ld.requests if r.method == "PATCH"]
    assert len(patches) == 1
    # Every job the retry queued has run: the refusal was rewritten once.
    await asyncio.wait_for(world.rollbot.work.join(), timeout=30)
    assert _posted_to(world, rid) == [retired]


async def test_a_failed_break_glass_flip_retires_the_button_too(world_pd) -> None:
    world, ld = world_pd
    refusal = await _refused_click(world, ONCALL)
    view, rid = await _open_modal(world, refusal)
    ld.remove_flag("default", FLAG)  # the provider no longer has it: the flip cannot run
    good = await world.sender.view_submission(
        ONCALL[0], view, _reason(REASON), user_name=ONCALL[1]
    ).send()
    assert good.status_code == 200
    (retired,) = await world.wait_for(
        lambda: _posted_to(world, rid), timeout=20, what="the refusal rewritten"
    )
    text = _assert_retired(retired)
    assert ": the circuit was not confirmed open: " in text and FLAG in text, text
    assert [e.result for e in await _entries(world)] == ["refused"]  # the first click only
    assert not [r for r in ld.requests if r.method == "PATCH"]


async def test_outsider_refusal_has_no_break_glass_button(world_pd) -> None:
    world, ld = world_pd
    refusal = await _refused_click(world, OUTSIDER)
    assert world.button(refusal, "circuit_break_glass") is None
    assert "circuit_break_glass" not in json.dumps(refusal)
    assert not ld.is_on("default", FLAG)
