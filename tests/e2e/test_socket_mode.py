"""rollbot over Socket Mode, end to end: the Slack sim's Socket Mode server, rollbot built
from a settings file with `slack.app_token` and served as `rollbot serve` serves it, real
Bolt and slack_sdk on both sides of the WebSocket.

Aspects under test (Socket Mode only: the app-level token, no signing secret):
- the leader holds one link (`rollbot_slack_socket_open 1`); `/slack/events` is not served;
- a slash command through the socket: `help` is answered in the ack's payload; a status is
  acked at once and its card reaches the response_url;
- an Events API event (`app_home_opened`) through the socket: the Home tab is published;
- the card's Abort clicked through the socket: the Rollout aborted (one patch) and the card
  updated in place;
- the revert modal: opened by a click through the socket; a submission without a URL is
  answered in the ack's payload (`response_action: errors`, the modal stays open); a good
  one closes it, is audited and written under the card;
- every envelope acked within Slack's deadline;
- Slack's ``disconnect`` (``refresh_requested``): the bot opens a new link (a second
  apps.connections.open) and closes the old one, and the next command works over the new
  one.

(The error handler, redelivered and malformed envelopes over the socket:
tests/security/test_slack_socket_mode.py.)

And beside HTTP (both credentials): a signed POST to `/slack/events` and an envelope are
both answered.

Failover, between two real `rollbot serve` processes on one database in Socket Mode: only
the leader has a link open (the sim counts one; the leader's `rollbot_slack_socket_open` is
1, the standby's 0); `kill -9` of the leader drops its link, the standby takes the lease and
opens its own, and an Abort clicked through it aborts the Rollout and updates the card; a
SIGTERM closes the link with a close handshake (code 1000); the app token is in no log.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sim.harness import CHANNEL_ID, ONCALL, SimWorld
from bot.sim.slack import SlackSender
from tests.e2e.serving import Replica, stopping

pytestmark = pytest.mark.timeout(120)

LINK = "https://github.com/acme/gitops/pull/812"


def _aborted(world: SimWorld) -> bool:
    rollout = world.kube.get("rollouts", "payments", "payment-router") or {}
    return rollout.get("status", {}).get("abort") is True


async def _card_with(world: SimWorld, action_id: str) -> dict[str, Any]:
    card: dict[str, Any] = await world.wait_for(
        lambda: (c := world.card()) and world.button(c, action_id) and c,
        timeout=60,
        what=f"the card with {action_id}",
    )
    return card


def _status_replies(world: SimWorld) -> list[dict[str, Any]]:
    """The status cards `/rollback payment-router` answered on response_urls."""
    return [
        r.body for r in world.slack.responses if "Canary weight" in json.dumps(r.body.get("blocks"))
    ]


async def _metric(world: SimWorld, name: str) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{world.url}/metrics")).text
    return next(line for line in text.splitlines() if line.startswith(f"{name} "))


async def test_commands_clicks_modals_and_a_refresh_through_the_socket(tmp_path) -> None:
    async with SimWorld(speed=600, workdir=tmp_path, slack_mode="socket") as world:
        assert "ROLLBOT_SLACK__SIGNING_SECRET" not in world.bot_env
        assert world.slack.socket.open_connections == 1
        assert await _metric(world, "rollbot_slack_socket_open") == "rollbot_slack_socket_open 1.0"
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.post(f"{world.url}/slack/events", content=b"x")).status_code == 404

        # A slash command: help in the ack's payload; a status acked, then its card.
        help_ = await world.sender.slash_command(ONCALL[0], ONCALL[1], "help").send()
        assert help_.status_code == 200 and "/release start SERVICE VERSION" in help_.text
        status = await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router").send()
        assert status.status_code == 200
        (reply,) = await world.wait_for(
            lambda: _status_replies(world), timeout=20, what="the status card"
        )
        assert "registry.example.com/payment-router:1.13.0" in json.dumps(reply["blocks"])
        commands = [e for e in world.slack.socket.envelopes if e.type == "slash_commands"]
        assert len(commands) == 2 and not any(e.late or e.missing for e in commands)

        # An Events API event: the Home tab published for the user who opened it.
        opened = await world.sender.app_home_opened(ONCALL[0]).send()
        assert opened.status_code == 200
        home = await world.wait_for(
            lambda: world.slack.home_view(ONCALL[0]), timeout=20, what="the Home tab"
        )
        assert home["type"] == "home"
        (event,) = [e for e in world.slack.socket.envelopes if e.type == "events_api"]
        assert event.acked_at is not None and not event.late

        # Abort on the card: the Rollout aborted, the card updated in place.
        card = await _card_with(world, "rollout_abort")
        clicked = await world.click(card, "rollout_abort")
        assert clicked.status_code == 200
        await world.wait_for(lambda: _aborted(world), timeout=20, what="the Rollout aborted")
        await world.wait_for(
            lambda: "Aborted by" in json.dumps(world.slack.message(CHANNEL_ID, card["ts"])),
            timeout=20,
            what="the card updated in place",
        )
        assert [r.body for r in world.kube.requests if r.method == "PATCH"] == [
            {"status": {"abort": True}}
        ]

        # The revert modal, opened and submitted through the socket.
        card = await _card_with(world, "revert_open")
        assert (await world.click(card, "revert_open")).status_code == 200
        (view,) = await world.wait_for(
            lambda: world.slack.open_views(ONCALL[0]), timeout=20, what="the revert modal"
        )
        bad = await world.sender.view_submission(
            ONCALL[0], view, {"revert_url": {"url": "not a link"}}, user_name=ONCALL[1]
        ).send()
        assert bad.json()["response_action"] == "errors"  # the ack's payload
        assert "https://" in world.slack.view_errors(view["id"])["revert_url"]
        assert [v["id"] for v in world.slack.open_views(ONCALL[0])] == [view["id"]]
        good = await world.sender.view_submission(
            ONCALL[0], view, {"revert_url": {"url": LINK}}, user_name=ONCALL[1]
        ).send()
        assert good.status_code == 200
        assert world.slack.open_views(ONCALL[0]) == []
        line = await world.wait_for(
            lambda: next(
                (
                    m["text"]
                    for m in world.slack.thread(CHANNEL_ID, card["ts"])
                    if ":rewind:" in (m.get("text") or "")
                ),
                None,
            ),
            timeout=20,
            what="the revert under the card",
        )
        assert f"<@{ONCALL[0]}> started a revert in Git: <{LINK}|{LINK}>" in line
        entries = [
            r.entry
            for r in await world.rollbot.store.audit_entries()
            if r.entry.action == "revert-started"
        ]
        assert [(e.result, e.detail["url"]) for e in entries] == [("succeeded", LINK)]
        interactive = [e for e in world.slack.socket.envelopes if e.type == "interactive"]
        assert len(interactive) == 4 and not any(e.late or e.missing for e in interactive)

        # Slack asks for a refresh: a new link, the old one closed, the next command works.
        (first_link,) = world.slack.socket.connections
        assert await world.slack.socket.disconnect("refresh_requested") == 1
        await world.wait_for(
            lambda: (
                len(world.slack.socket.connections) == 2
                and world.slack.socket.open_connections == 1
            ),
            timeout=20,
            what="the bot's new link",
        )
        assert first_link.closed_at is not None
        assert len(world.slack.calls_to("apps.connections.open")) == 2
        replies = len(_status_replies(world))
        answer = await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router").send()
        assert answer.status_code == 200
        await world.wait_for(
            lambda: len(_status_replies(world)) > replies, timeout=20, what="the next status"
        )
        second_link = world.slack.socket.connections[1]
        assert world.slack.socket.envelopes[-1].connection == second_link.id
        assert first_link.close_code == 1000  # closed by the bot, after its new link


async def test_http_beside_the_socket(tmp_path) -> None:
    async with SimWorld(speed=600, workdir=tmp_path, slack_mode="both") as world:
        assert world.slack.socket.open_connections == 1
        http = SlackSender(
            f"{world.url}/slack/events", world.secrets.slack_signing_secret, sim=world.slack
        )
        signed = await http.slash_command(ONCALL[0], ONCALL[1], "help").send()
        assert signed.status_code == 200 and "/rollback" in signed.text
        socketed = await world.sender.slash_command(ONCALL[0], ONCALL[1], "help").send()
        assert socketed.status_code == 200 and "/rollback" in socketed.text
        assert [e.type for e in world.slack.socket.envelopes] == ["slash_commands"]


async def _socket_gauge(replica: Replica) -> str:
    (line,) = await replica.metric("rollbot_slack_socket_open ")
    return line.split()[1]


async def test_only_the_leader_connects_and_the_next_one_does_after_kill_9(
    tmp_path: Path,
) -> None:
    settings = {"server": {"leader_lease_seconds": 1.5}}
    async with SimWorld(
        speed=600, start_bot=False, slack_mode="socket", settings=settings
    ) as world:
        socket = world.slack.socket
        replicas: list[Replica] = []
        with stopping(replicas):
            a = await Replica.start(world, "a", tmp_path)
            replicas.append(a)
            await a.wait_leading()
            await world.wait_for(lambda: socket.open_connections, timeout=20, what="a's link")
            b = await Replica.start(world, "b", tmp_path)
            replicas.append(b)
            # B serves as a standby (its lifespan asked for the lease and did not get it):
            # it opened no link.
            ready = await b.wait_status("/readyz", 200, timeout=10)
            assert ready.json()["leader"] is False
            assert socket.open_connections == 1 and len(socket.connections) == 1
            assert await _socket_gauge(a) == "1.0"
            assert await _socket_gauge(b) == "0.0"

            world.attach_bot(a.url)  # the sender; in Socket Mode it goes through the socket
            card = await _card_with(world, "rollout_abort")

            # kill -9 the leader: its link drops; B leads and opens its own.
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)
            await b.wait_leading(timeout=15)
            await world.wait_for(
                lambda: len(socket.connections) == 2 and socket.open_connections == 1,
                timeout=20,
                what="b's link",
            )
            dropped, opened = socket.connections
            assert dropped.close_code == 1006  # no close handshake: the process died
            assert await _socket_gauge(b) == "1.0"

            # Abort on the card, through B's link.
            clicked = await world.click(card, "rollout_abort")
            assert clicked.status_code == 200
            assert socket.envelopes[-1].connection == opened.id
            await world.wait_for(lambda: _aborted(world), timeout=20, what="the Rollout aborted")
            await world.wait_for(
                lambda: "Aborted by" in json.dumps(world.slack.message(CHANNEL_ID, card["ts"])),
                timeout=20,
                what="the card updated in place",
            )

            # A graceful stop closes the link with a close handshake.
            b.stop()
            await world.wait_for(
                lambda: socket.open_connections == 0, timeout=10, what="b's link closed"
            )
            assert opened.close_code == 1000
            assert "Socket Mode: connection closed" in b.log.read_text()
        for replica in replicas:
            assert world.secrets.slack_app_token not in replica.log.read_text()
