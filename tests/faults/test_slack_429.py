"""Fault 3: Slack answers 429 to half the calls, and loses the answers to a few posts.

The card flow of the case study runs twice in a SimWorld (the real bot, the Kubernetes,
Argo and Slack sims): the canary pauses on an inconclusive analysis, the card is posted
with its timeline, the on-call engineer aborts from the card, the incident resolves. Once
with a healthy Slack, to know what the card and its thread end up showing; once with a bad
one:

- `SlackSim.ratelimit_window`: for a minute from the world's start, HTTP 429 with
  `Retry-After: 1` to every second call of each Web API method. The minute is Slack's, on
  the wall clock: a Retry-After is whole seconds the bot's client really waits, which no
  world speed shortens. The world's speed (`SPEED`) makes the canary reach its pause and
  the incident's quiet period pass within seconds, so the whole flow, slowed down by the
  waits, runs inside that minute (asserted); the test ends with the flow, not with the
  minute;
- `SlackSim.lose_answers`: the card's own post is delivered and answered 429, the first
  thread line's post is delivered and its connection cut, the second's delivered and
  answered 500, and one chat.update of the card delivered and cut: "maybe delivered".

Then, from the Slack sim's own records:

- every card ends in its final state: the card and its thread, once the bot has nothing
  left to do (`Cards.settled()`, the watch idle), show what the healthy run showed (times,
  durations, ids and ports aside) — `cards_in_final_state`;
- no message is posted twice: one top-level card, no message key (the metadata every post
  of a card carries) twice in the channel, as many messages as in the healthy run —
  `duplicates`;
- `Retry-After` is obeyed: no call to a method arrived before the `Retry-After` of a 429
  answered to that method had passed, by the sim's arrival timestamps —
  `retry_after_violations`. The check is exact for this flow: one card, whose Slack calls
  its lock serialises, and the click's own calls, each to another method; so every call
  to a method after a 429 to it was sent after that 429 was received.

A second test runs two cards through the same bad minute: checkout's, opened and resolved
by an SLO alert through Alertmanager's webhook, beside payment-router's, each compared with
the healthy run's (`cards_in_final_state=2/2`, `duplicates` over both). Its calls to a
method come from two cards at once, so a call may leave before a 429 answered to the other
card's arrives: the Retry-After check is the one-card test's.

Figures: `slack_calls`, `answered_429` (the window's, the buckets' and a lost answer's),
`window_429` (429s / calls while the window lasted), `maybe_delivered`, `duplicates`,
`cards_in_final_state`, `retry_after_violations`, `flow_s` (wall seconds from the world's
start to the card's final state under faults).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.sim import alerts as sim_alerts
from bot.sim._server import RecordedRequest
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, SimWorld
from bot.sim.world import CHECKOUT, ROLLOUT
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)

SPEED = 600.0  # the canary pauses within seconds; the quiet period is 1 s
WINDOW = 60.0  # a minute of 429s from the world's start; the flow ends well inside it
RETRY_AFTER = 1  # seconds, as Slack sends it
# The two cards' flow is longer (about 22 s on a quiet machine): a longer bad spell, so that
# a loaded machine still runs all of it inside.
TWO_CARDS_WINDOW = 90.0


@dataclass
class Seen:
    """What one run left in Slack."""

    card: dict[str, Any]  # the card as it ends
    thread: list[str]  # its thread's lines, oldest first
    others: dict[str, tuple[dict[str, Any], list[str]]]  # other services' card and thread
    messages: list[dict[str, Any]]  # the channel's whole history, replies too
    calls: list[RecordedRequest]
    lost: list[tuple[RecordedRequest, str]]
    seconds: float  # from the world's start to the end state
    armed_at: float  # wall time the faults were switched on


def shown(text: str) -> str:
    """What a message shows, without what differs between two runs of the same flow:
    numbers (times, durations, epochs, ports) and the ids Slack gives blocks."""
    return re.sub(r"\d+", "#", text)


def card_shape(card: dict[str, Any]) -> str:
    blocks = [{k: v for k, v in b.items() if k != "block_id"} for b in card.get("blocks") or []]
    return shown(json.dumps({"text": card["text"], "blocks": blocks}, sort_keys=True))


def thread_lines(world: SimWorld, service: str = ROLLOUT) -> list[str]:
    card = world.card(service)
    return [] if card is None else [m["text"] for m in world.slack.thread(CHANNEL_ID, card["ts"])]


def checkout_alert(status: str) -> dict[str, Any]:
    return sim_alerts.webhook(
        [
            sim_alerts.alert(
                "RollbotErrorRateHigh",
                service=CHECKOUT,
                status=status,
                labels={"slo": "error_rate"},
                summary="checkout: 5xx ratio 9 % on the new tax engine (SLO < 1 %)",
            )
        ]
    )


async def send_alert(world: SimWorld, payload: dict[str, Any]) -> None:
    url = f"{world.url}/webhooks/alertmanager"
    response = await sim_alerts.send(url, ALERTMANAGER_TOKEN, payload)
    assert response.status_code == 200, response.text


def the_same(world: SimWorld, service: str, card: dict[str, Any], thread: list[str]) -> bool:
    """`service`'s card and thread in `world` show what `card` and `thread` show."""
    return card_shape(world.card(service) or {"text": ""}) == card_shape(card) and [
        shown(t) for t in thread_lines(world, service)
    ] == [shown(t) for t in thread]


async def run_flow(
    workdir: Path,
    *,
    faults: bool,
    expected: Seen | None = None,
    checkout: bool = False,
    window: float = WINDOW,
) -> Seen:
    started = time.monotonic()
    async with SimWorld(speed=SPEED, workdir=workdir, checkout=checkout) as world:
        slack = world.slack
        armed_at = time.time()
        if faults:
            slack.ratelimit_window(seconds=window, fraction=0.5, retry_after=RETRY_AFTER)
            slack.lose_answers("chat.postMessage", how="429", retry_after=RETRY_AFTER)
            slack.lose_answers("chat.postMessage", how="cut")
            slack.lose_answers("chat.postMessage", how="500")
            slack.lose_answers("chat.update", how="cut")
        if checkout:  # its SLO alert fires while payment-router's canary runs
            await send_alert(world, checkout_alert("firing"))
        card = await eventually(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=40,
            what="the paused canary's card with Abort",
        )
        # The responder reads the card's first two lines (why it paused, the incident),
        # then aborts, as in the e2e Tier 1 loop.
        await eventually(lambda: len(thread_lines(world)) >= 2, timeout=30, what="two lines")
        await world.click(card, "rollout_abort")
        await eventually(
            lambda: any("Resolved" in line for line in thread_lines(world)),
            timeout=60,
            what="the incident resolved in the thread",
        )
        if checkout:
            await eventually(
                lambda: any("Incident open" in line for line in thread_lines(world, CHECKOUT)),
                timeout=60,
                what="checkout's incident open in its thread",
            )
            await send_alert(world, checkout_alert("resolved"))
            await eventually(
                lambda: any("Resolved" in line for line in thread_lines(world, CHECKOUT)),
                timeout=60,
                what="checkout's incident resolved in its thread",
            )
        if expected is not None:  # the end state the healthy run reached
            await eventually(
                lambda: the_same(world, ROLLOUT, expected.card, expected.thread),
                timeout=60,
                what=lambda: f"the card's final state; it shows {world.card()}",
            )
            for service, (other, other_thread) in expected.others.items():
                await eventually(
                    lambda s=service, c=other, t=other_thread: the_same(world, s, c, t),
                    timeout=60,
                    what=lambda s=service: f"{s}'s final state; it shows {world.card(s)}",
                )
        seconds = time.monotonic() - started
        # Positive evidence that nothing more is coming: no card being changed or waiting to
        # be sent again, no Rollout refresh under way.
        bot = world.rollbot
        await eventually(
            lambda: bot.cards.settled() and not bot.watch.refreshing,
            timeout=30,
            what="the bot settled",
        )
        final = world.card()
        assert final is not None
        others: dict[str, tuple[dict[str, Any], list[str]]] = {}
        if checkout:
            other = world.card(CHECKOUT)
            assert other is not None
            others[CHECKOUT] = (other, thread_lines(world, CHECKOUT))
        return Seen(
            card=final,
            thread=thread_lines(world),
            others=others,
            messages=slack.messages(CHANNEL_ID),
            calls=slack.calls,
            lost=slack.lost_answers,
            seconds=seconds,
            armed_at=armed_at,
        )


def duplicates(messages: list[dict[str, Any]], cards: int = 1) -> int:
    """Messages beyond the first of each post (its key, else its place and text), and
    top-level messages beyond the `cards`."""
    posts = Counter(
        (m.get("metadata") or {}).get("event_payload", {}).get("key")
        or (m.get("thread_ts"), shown(m["text"]))
        for m in messages
    )
    tops = [m for m in messages if m.get("thread_ts") in (None, m["ts"])]
    return sum(n - 1 for n in posts.values()) + len(tops) - cards


def window_share(seen: Seen, window: float = WINDOW) -> tuple[int, int, int]:
    """(429s answered in the window, calls in the window, what the window must refuse at
    least): per method, every second call arriving in it (the 2nd, 4th …) is refused; the
    buckets may refuse more; a lost answer's 429 is not the window's."""
    lost = {id(c) for c, _ in seen.lost}
    inside = [c for c in seen.calls if seen.armed_at <= c.at < seen.armed_at + window]
    refused = [c for c in inside if c.status == 429 and id(c) not in lost]
    per_method = Counter(c.path for c in inside)
    return len(refused), len(inside), sum(n // 2 for n in per_method.values())


def retry_after_violations(calls: list[RecordedRequest]) -> list[str]:
    """Calls to a method that arrived before the Retry-After of a 429 to it had passed."""
    found = []
    for refused in calls:
        if refused.status != 429:
            continue
        wait = float(refused.response_headers.get("Retry-After", "0"))
        for later in calls:
            if later.path == refused.path and refused.at < later.at < refused.at + wait:
                found.append(f"{later.path} {later.at - refused.at:.3f} s after a 429")
    return found


async def test_slack_429s_and_lost_answers(tmp_path: Path) -> None:
    """Figures: slack_calls, answered_429, window_429, maybe_delivered, duplicates,
    cards_in_final_state, retry_after_violations, flow_s."""
    healthy = await run_flow(tmp_path / "healthy", faults=False)
    assert [m["ts"] for m in healthy.messages if m.get("thread_ts") in (None, m["ts"])] == [
        healthy.card["ts"]
    ]
    assert len(healthy.thread) == 4, healthy.thread  # paused, incident, aborted, resolved

    bad = await run_flow(tmp_path / "bad", faults=True, expected=healthy)

    answered_429 = [c for c in bad.calls if c.status == 429]
    refused, inside, at_least = window_share(bad)
    violations = retry_after_violations(bad.calls)
    dupes = duplicates(bad.messages)
    final = int(
        card_shape(bad.card) == card_shape(healthy.card)
        and [shown(t) for t in bad.thread] == [shown(t) for t in healthy.thread]
    )
    print(f"FIGURE slack_calls={len(bad.calls)}")
    print(f"FIGURE answered_429={len(answered_429)}")
    print(f"FIGURE window_429={refused}/{inside}")
    print(f"FIGURE maybe_delivered={len(bad.lost)}")
    print(f"FIGURE duplicates={dupes}")
    print(f"FIGURE cards_in_final_state={final}/1")
    print(f"FIGURE retry_after_violations={len(violations)}")
    print(f"FIGURE flow_s={bad.seconds:.1f}")

    # The faults happened: the whole flow ran inside the window, which refused every
    # second call of each method, and every answer to lose was lost (the card's post's
    # first among them).
    assert bad.seconds < WINDOW
    assert refused >= at_least > 0
    assert max(c.at for c in bad.calls) < bad.armed_at + WINDOW
    assert [(c.path, how) for c, how in bad.lost if c.path.endswith("postMessage")] == [
        ("/api/chat.postMessage", "429"),
        ("/api/chat.postMessage", "cut"),
        ("/api/chat.postMessage", "500"),
    ]
    assert [(c.path, how) for c, how in bad.lost if c.path.endswith("update")] == [
        ("/api/chat.update", "cut")
    ]
    card_post = next(c for c, _ in bad.lost if c.path.endswith("postMessage"))
    assert card_post.body["metadata"]["event_payload"]["key"] == "payments/payment-router@42"
    # What was delivered without an answer was found, not posted again.
    assert dupes == 0, [(m["ts"], m["text"][:60]) for m in bad.messages]
    assert len(bad.messages) == len(healthy.messages)
    assert card_shape(bad.card) == card_shape(healthy.card)
    assert [shown(t) for t in bad.thread] == [shown(t) for t in healthy.thread]
    assert violations == [], violations


async def test_two_cards_under_429s_end_in_their_final_states(tmp_path: Path) -> None:
    """Figures: slack_calls_two_cards, answered_429_two_cards, maybe_delivered_two_cards,
    duplicates_two_cards, cards_in_final_state (of two), flow_two_cards_s."""
    healthy = await run_flow(tmp_path / "healthy", faults=False, checkout=True)
    tops = [m for m in healthy.messages if m.get("thread_ts") in (None, m["ts"])]
    assert len(tops) == 2, [m["text"][:60] for m in tops]
    checkout_card, checkout_thread = healthy.others[CHECKOUT]
    assert any("Resolved" in line for line in checkout_thread), checkout_thread

    bad = await run_flow(
        tmp_path / "bad", faults=True, expected=healthy, checkout=True, window=TWO_CARDS_WINDOW
    )

    dupes = duplicates(bad.messages, cards=2)
    final = sum(
        (
            card_shape(bad.card) == card_shape(healthy.card)
            and [shown(t) for t in bad.thread] == [shown(t) for t in healthy.thread],
            card_shape(bad.others[CHECKOUT][0]) == card_shape(checkout_card)
            and [shown(t) for t in bad.others[CHECKOUT][1]] == [shown(t) for t in checkout_thread],
        )
    )
    print(f"FIGURE slack_calls_two_cards={len(bad.calls)}")
    print(f"FIGURE answered_429_two_cards={sum(1 for c in bad.calls if c.status == 429)}")
    print(f"FIGURE maybe_delivered_two_cards={len(bad.lost)}")
    print(f"FIGURE duplicates_two_cards={dupes}")
    print(f"FIGURE cards_in_final_state={final}/2")
    print(f"FIGURE flow_two_cards_s={bad.seconds:.1f}")

    assert bad.seconds < TWO_CARDS_WINDOW
    assert max(c.at for c in bad.calls) < bad.armed_at + TWO_CARDS_WINDOW
    refused, _, at_least = window_share(bad, TWO_CARDS_WINDOW)
    assert refused >= at_least > 0
    assert len(bad.lost) == 4  # every answer to lose was lost
    assert dupes == 0, [(m["ts"], m["text"][:60]) for m in bad.messages]
    assert len(bad.messages) == len(healthy.messages)
    assert final == 2
