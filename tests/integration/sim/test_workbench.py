"""The demo workbench (bot/sim/workbench/) without a browser, over a real SimWorld.

Aspects under test:
- `/api/state`: the channel rendered from the Slack sim's real Block Kit, the confirm
  dialogs of its buttons, the user list, and the panels (Rollouts, flags, PagerDuty, Jira,
  GitOps repository, audit log) — each present only when the world has that sim;
- `/api/command`: a SIGNED slash command reaches `/slack/events` (the bot answers 200 and
  verifies the signature), and the reply the Slack sim recorded comes back to the user who
  sent it as "Only visible to you" (not to another user);
- `/api/command` and `/api/click` refuse what Slack could not send, with a 4xx that says
  what is wrong (not a command of this app, unknown message, unknown button, unknown user);
- `/api/click` on the card's Abort sends a signed block_actions and the Rollout aborts;
- the page fetches nothing from elsewhere (no http(s):// URL but loopback placeholders);
- `bind` on a taken port: PortInUseError naming `--ui-port`; `rollbot demo` then exits 2
  with that message; otherwise it prints one `open http://127.0.0.1:PORT` line, serves the
  page there, and SIGINT/SIGTERM stop the whole process cleanly (exit 0);
- `rollbot demo` keeps payment-router's desired state in a GitOps repository (where git
  serves it): its card offers "Start Tier 3 revert…" and the GitOps panel shows the
  repository (the flow itself: tests/integration/sim/test_workbench_tier3.py).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.sim import workbench
from bot.sim.git import git_http_available
from bot.sim.harness import CHANNEL_ID, ONCALL, OUTSIDER, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(90)

ROLLBOT = str(Path(sys.executable).with_name("rollbot"))


@pytest.fixture
async def bench(tmp_path):
    async with SimWorld(speed=600, workdir=tmp_path, pagerduty=True, jira=True) as world:
        wb = workbench.Workbench(world)
        transport = httpx.ASGITransport(app=wb.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://workbench") as client:
            yield world, wb, client


async def card_with_abort(world: SimWorld) -> dict:
    return await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
        timeout=60,
        what="the card with Abort (Tier 1)",
    )


async def test_state_shape(bench):
    world, _, client = bench
    card = await card_with_abort(world)
    state = (await client.get("/api/state")).json()
    assert set(state) >= {
        "channel",
        "threads",
        "confirms",
        "users",
        "user",
        "panels",
        "modal",
    }
    assert state["modal"] is None
    assert state["user"] == ONCALL[0]
    assert {u["id"] for u in state["users"]} >= {ONCALL[0], OUTSIDER[0]}
    assert state["channel"]["id"] == CHANNEL_ID
    assert 'data-action-id="rollout_abort"' in state["channel"]["html"]
    assert f'data-message-ts="{card["ts"]}"' in state["channel"]["html"]
    confirm = state["confirms"][f"{card['ts']} rollout_abort"]
    assert confirm["confirm"] == "Abort" and confirm["title"]
    panels = state["panels"]
    assert set(panels) == {
        "scenarios",
        "rollouts",
        "flags",
        "pagerduty",
        "jira",
        "gitops",
        "audit",
    }
    assert panels["scenarios"] == ""  # no alert scenario given to this workbench
    assert panels["gitops"] == ""  # a world without a GitOps repository
    assert "payments/payment-router" in panels["rollouts"] and "canary 25 %" in panels["rollouts"]
    assert panels["flags"] == ""  # no flag sim given to this workbench
    await world.wait_for(lambda: world.pd.incidents(), timeout=20, what="the PagerDuty incident")
    state = (await client.get("/api/state")).json()
    assert "triggered" in state["panels"]["pagerduty"]


async def test_command_is_signed_and_the_reply_shown_to_its_sender_only(bench):
    world, _, client = bench
    before = len(world.slack.responses)
    answer = await client.post(
        "/api/command", json={"text": "/rollback payment-router", "user": ONCALL[0]}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": 200}  # the bot verified the signature and acked
    await world.wait_for(
        lambda: len(world.slack.responses) > before, timeout=20, what="the status reply"
    )
    reply = json.dumps(world.slack.responses[-1].body)
    assert "payment-router" in reply
    state = (await client.get("/api/state", params={"user": ONCALL[0]})).json()
    # In the channel, in time with the messages, as Slack shows them.
    assert "Only visible to you" in state["channel"]["html"]
    assert "/rollback payment-router" in state["channel"]["html"]
    other = (await client.get("/api/state", params={"user": OUTSIDER[0]})).json()
    assert "Only visible to you" not in other["channel"]["html"]
    # The status answer is a card with buttons: their confirm dialogs come along, keyed by
    # the ephemeral message (it has no ts in the channel), for its recipient only.
    await card_with_abort(world)
    await client.post("/api/command", json={"text": "/rollback payment-router", "user": ONCALL[0]})

    async def confirms() -> tuple[dict, list[str]] | None:
        state = (await client.get("/api/state", params={"user": ONCALL[0]})).json()
        keys = [k for k in state["confirms"] if k.startswith("eph:") and "rollout_abort" in k]
        return (state, keys) if keys else None

    state, keys = await eventually(confirms, interval=0.05, what="the ephemeral's confirm")
    assert state["confirms"][keys[0]]["confirm"] == "Abort"
    key = keys[0].removeprefix("eph:").split(" ")[0]
    assert f'data-ephemeral="{key}"' in state["channel"]["html"]
    other = (await client.get("/api/state", params={"user": OUTSIDER[0]})).json()
    assert not [k for k in other["confirms"] if k.startswith("eph:")]


async def test_refusals_say_what_is_wrong(bench):
    world, _, client = bench
    bad = await client.post("/api/command", json={"text": "/deploy payment-router"})
    assert bad.status_code == 400 and "/rollback" in bad.json()["error"]
    who = await client.post("/api/command", json={"text": "/rollback help", "user": "U0NOBODY"})
    assert who.status_code == 400 and "unknown user" in who.json()["error"]
    card = await card_with_abort(world)
    nomsg = await client.post("/api/click", json={"message_ts": "1.000001", "action_id": "x"})
    assert nomsg.status_code == 404 and "no message 1.000001" in nomsg.json()["error"]
    nobutton = await client.post(
        "/api/click", json={"message_ts": card["ts"], "action_id": "rollout_explode"}
    )
    assert nobutton.status_code == 404
    error = nobutton.json()["error"]
    assert "no button 'rollout_explode'" in error and "rollout_abort" in error
    missing = await client.post("/api/click", json={"message_ts": card["ts"]})
    assert missing.status_code == 400 and "action_id" in missing.json()["error"]
    notjson = await client.post("/api/click", content=b"{nope")
    assert notjson.status_code == 400 and "not JSON" in notjson.json()["error"]


async def test_click_abort_is_signed_and_aborts(bench):
    world, _, client = bench
    card = await card_with_abort(world)
    button = world.button(card, "rollout_abort")
    answer = await client.post(
        "/api/click",
        json={
            "message_ts": card["ts"],
            "action_id": "rollout_abort",
            "block_id": button["block_id"],
            "value": button["value"],
        },
    )
    assert answer.status_code == 200 and answer.json() == {"status": 200}
    await world.wait_for(
        lambda: (
            (world.kube.get("rollouts", "payments", "payment-router") or {})
            .get("status", {})
            .get("abort")
        ),
        timeout=30,
        what="the abort",
    )
    await world.wait_for(
        lambda: "Aborted by" in json.dumps(world.card()), timeout=30, what="the card outcome"
    )
    state = (await client.get("/api/state")).json()
    assert "aborted" in state["panels"]["rollouts"] and "canary 0 %" in state["panels"]["rollouts"]
    assert "abort" in state["panels"]["audit"]


async def test_page_fetches_nothing_from_elsewhere(bench):
    _, _, client = bench
    page = (await client.get("/")).text
    assert "/api/state" in page and 'id="wb-text"' in page
    urls = re.findall(r"https?://[^\s\"'<>)]+", page)
    assert [u for u in urls if not re.match(r"https?://(127\.0\.0\.1|localhost)\b", u)] == []
    assert "<link" not in page and "src=" not in page


async def test_taken_port_is_reported():
    taken = workbench.bind(0)
    try:
        port = taken.getsockname()[1]
        taken.listen()
        wanted = f"port {port} is in use: pass --ui-port"
        with pytest.raises(workbench.PortInUseError, match=wanted):
            workbench.bind(port)
    finally:
        taken.close()


def rollbot_demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ROLLBOT, "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_demo_exits_2_when_the_ui_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = rollbot_demo("--ui-port", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"port {port} is in use: pass --ui-port N" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_prints_one_url_serves_the_page_and_stops_on_a_signal(sig):
    proc = rollbot_demo("--ui-port", "0", "--speed", "300")
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("open http://127.0.0.1:"):
                break
        urls = [line.split()[1] for line in lines if line.startswith("open ")]
        assert len(urls) == 1, lines
        assert "payments-deploys" in httpx.get(urls[0], timeout=10).text
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "rollbot demo: stopping" in out


async def test_demo_offers_tier3_run_by_rollbot_on_payment_router():
    if not git_http_available():
        pytest.skip("no git with git http-backend: the demo records Tier 3 by hand")
    proc = rollbot_demo("--ui-port", "0", "--speed", "300")
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("open http://127.0.0.1:"):
                break
        url = lines[-1].split()[1]
        assert any("payment-router's desired state:" in line for line in lines), lines

        async with httpx.AsyncClient(base_url=url, timeout=10) as page:

            async def offered() -> dict | None:
                state = (await page.get("/api/state")).json()
                html = state["channel"]["html"]
                return state if 'data-action-id="tier3_start"' in html else None

            state = await eventually(offered, timeout=60, interval=0.2, what="Start Tier 3")
        # Recording a revert made by hand stays beside Start.
        assert 'data-action-id="revert_open"' in state["channel"]["html"]
        assert "platform/configs on GitHub" in state["panels"]["gitops"]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


async def test_an_empty_channel_says_what_rollbot_is_watching(tmp_path):
    # A canary whose analyses pass: nothing needs a human, so rollbot posts nothing.
    async with SimWorld(speed=600, workdir=tmp_path, analysis_at_25="Successful") as world:
        wb = workbench.Workbench(world)
        transport = httpx.ASGITransport(app=wb.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://workbench") as client:
            state = (await client.get("/api/state")).json()
            assert world.slack.messages(CHANNEL_ID) == []
            html = state["channel"]["html"]
            assert "Nothing needs a human yet" in html
            assert "<code>payments/payment-router</code> revision 42" in html
            assert "Fire the SLO alert" in html  # what will bring a card
            assert "wb-message" not in html


async def test_ephemerals_sit_in_the_channel_in_time_and_can_be_dismissed(bench):
    world, _, client = bench
    card = await card_with_abort(world)
    await client.post("/api/command", json={"text": "/rollback payment-router", "user": ONCALL[0]})

    async def keyed() -> tuple[str, str] | None:
        html = (await client.get("/api/state", params={"user": ONCALL[0]})).json()["channel"][
            "html"
        ]
        keys = re.findall(r'data-ephemeral="([^"]+)"', html)
        return (html, keys[-1]) if keys else None

    html, key = await eventually(keyed, interval=0.05, what="the status answer")
    # After the card (posted before the command), and a Dismiss beside "Only visible to you".
    assert html.index(f'data-ts="{card["ts"]}"') < html.index(f'data-ephemeral="{key}"')
    assert f'data-dismiss="{key}"' in html
    gone = await client.post("/api/dismiss", json={"ephemeral": key, "user": ONCALL[0]})
    assert gone.status_code == 200 and gone.json() == {"dismissed": key}
    html = (await client.get("/api/state", params={"user": ONCALL[0]})).json()["channel"]["html"]
    assert f'data-ephemeral="{key}"' not in html
    assert f'data-ts="{card["ts"]}"' in html  # the card stays
    again = await client.post("/api/dismiss", json={"ephemeral": key, "user": ONCALL[0]})
    assert again.status_code == 404


async def test_a_response_url_replace_original_rewrites_the_ephemeral_clicked(bench):
    world, _, client = bench
    await card_with_abort(world)
    await client.post("/api/command", json={"text": "/rollback payment-router", "user": ONCALL[0]})

    async def with_abort() -> str | None:
        state = (await client.get("/api/state", params={"user": ONCALL[0]})).json()
        keys = [k for k in state["confirms"] if k.startswith("eph:") and "rollout_abort" in k]
        return keys[0].removeprefix("eph:").split(" ")[0] if keys else None

    key = await eventually(with_abort, interval=0.05, what="the status answer's Abort")
    clicked = await client.post(
        "/api/click",
        json={"ephemeral": key, "action_id": "rollout_promote", "user": OUTSIDER[0]},
    )
    assert clicked.status_code == 404  # someone else's ephemeral: not theirs to click
    clicked = await client.post(
        "/api/click", json={"ephemeral": key, "action_id": "rollout_abort", "user": ONCALL[0]}
    )
    assert clicked.status_code == 200
    # As the bot may do after a click on an ephemeral: replace it through the response_url.
    url = world.sender.last_response_url
    assert url is not None
    async with httpx.AsyncClient() as slack:
        answer = await slack.post(url, json={"replace_original": True, "text": "Done: aborted"})
    assert answer.status_code == 200

    async def replaced() -> str | None:
        html = (await client.get("/api/state", params={"user": ONCALL[0]})).json()["channel"][
            "html"
        ]
        mine = html.split(f'data-ephemeral="{key}"', 1)
        return mine[1] if len(mine) == 2 and "Done: aborted" in mine[1] else None

    rest = await eventually(replaced, interval=0.05, what="the ephemeral replaced in place")
    own = rest.split('class="wb-message', 1)[0]  # up to the next message
    assert "Done: aborted" in own
    assert 'data-action-id="rollout_abort"' not in own
    # The abort the click started ends (verified on the card) before the world stops.
    await world.wait_for(
        lambda: "verified" in json.dumps(world.card()), timeout=30, what="the abort verified"
    )
