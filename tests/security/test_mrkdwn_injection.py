"""Issue 12, finding 5 (end to end): Slack mrkdwn injection from outside strings.

Each source drives a hostile string (`<!channel>`, `<!here>`, a user and a usergroup
mention, a planted `<https://evil…|click>` link, a pre-escaped entity, a bare `&`) through
rollbot's real message path, over real HTTP, into the Slack sim; then everything the sim
received (every chat.postMessage, chat.update, chat.postEphemeral, views call and
response_url body: `text`, blocks, fields, context, confirm dialogs) is searched for the raw
markup. Plain_text objects are not read: Slack never parses them.

Aspects under test:
- the Argo analysis message (Inconclusive run): card fields and trouble, the notification
  text, the thread; the card's own mention (`Aborted by <@U0ONCALL>`) still renders;
- Alertmanager: a hostile annotation summary (card and the incident's thread line) and the
  labels of an alert that matches no service (the fallback-channel notice);
- PagerDuty v3 webhooks: acknowledged by, a note from and a reassignment by a user whose
  name is hostile (card notice and thread); the card's own `<https://…|PagerDuty incident>`
  link still renders;
- the break-glass reason of `/rollback … circuit open break-glass REASON` (the loud
  top-level message, the thread, the reply): shown as written, while the message still
  mentions the owners group; the reason arrives Slack-escaped and is stored as typed;
- Jira: a 400 whose error quotes hostile text, in the release thread.
Each fails on 08fe010, where the raw strings reached Slack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.core import mrkdwn
from bot.sim import alerts as sim_alerts
from bot.sim import world as sim_world
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, ONCALL, PD_ONCALL, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim
from bot.sim.pagerduty import PagerDutySim

pytestmark = pytest.mark.timeout(120)

HOSTILE = (
    "<!channel> <!here> <@U0VICTIM> <!subteam^S0VICTIM> <https://evil.example|click> "
    "&lt;!here&gt; a & b"
)
SHOWN = mrkdwn.escape(HOSTILE)  # what must reach Slack: the string as written
RAW = ("<!channel", "<!here", "<@U0VICTIM", "<!subteam^S0VICTIM", "<https://evil")
KEY = "rollbot/payment-router/payments/payment-router@42"


def _mrkdwn(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        try:
            parsed = json.loads(obj)
        except ValueError:
            return
        yield from _mrkdwn(parsed)
    elif isinstance(obj, dict):
        if obj.get("type") == "plain_text":
            return
        if obj.get("type") == "mrkdwn":
            yield str(obj.get("text", ""))
            return
        for key, value in obj.items():
            if key not in ("value", "private_metadata", "action_id", "block_id", "url"):
                yield from _mrkdwn(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _mrkdwn(item)


def received(world: SimWorld) -> list[str]:
    """Every string the Slack sim received that Slack would read as mrkdwn."""
    out: list[str] = []
    for call in world.slack.calls:
        if not call.path.startswith(("/api/chat.", "/api/views.")):
            continue
        if isinstance(call.body.get("text"), str):
            out.append(call.body["text"])
        for key in ("blocks", "view", "attachments"):
            out.extend(_mrkdwn(call.body.get(key)))
    for response in world.slack.responses:
        if isinstance(response.body.get("text"), str):
            out.append(response.body["text"])
        out.extend(_mrkdwn(response.body.get("blocks")))
    return out


def assert_nothing_injected(world: SimWorld) -> None:
    texts = received(world)
    assert texts
    for text in texts:
        for raw in RAW:
            assert raw not in text, f"{raw!r} reached Slack raw in {text!r}"


def shown_anywhere(world: SimWorld, fragment: str = SHOWN) -> bool:
    return any(fragment in t for t in received(world))


def thread(world: SimWorld) -> list[str]:
    card = world.card()
    if card is None:
        return []
    return [m.get("text") or "" for m in world.slack.thread(CHANNEL_ID, card["ts"])]


def in_thread(world: SimWorld, fragment: str) -> bool:
    return any(fragment in line for line in thread(world))


def card_mrkdwn(world: SimWorld) -> str:
    card = world.card() or {}
    return "\n".join([str(card.get("text", "")), *_mrkdwn(card.get("blocks"))])


async def test_argo_analysis_message(tmp_path) -> None:
    async with SimWorld(speed=120, workdir=tmp_path) as world:
        # The analysis at 25 % ends Inconclusive with a message a metric provider wrote.
        world.argo.script_analysis(
            "payments",
            "payment-router",
            step_index=sim_world.analysis_step_after_weight(25),
            outcome="Inconclusive",
            message=HOSTILE,
        )
        card = await world.wait_for(
            lambda: (c := world.card()) and SHOWN in card_mrkdwn(world) and c,
            timeout=60,
            what="the card quoting the analysis message",
        )
        blocks = card["blocks"]
        sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
        assert any(SHOWN in t for t in sections if t.startswith(":grey_question: "))  # trouble
        assert SHOWN in card["text"]  # the notification text: trouble
        await world.wait_for(lambda: in_thread(world, SHOWN), what="the thread line quoting it")
        await world.click(card, "rollout_abort")
        await world.wait_for(
            lambda: "Aborted by <@U0ONCALL>" in card_mrkdwn(world),
            timeout=30,
            what="rollbot's own mention on the card",
        )
        assert_nothing_injected(world)


async def test_alertmanager_summary_and_unmatched_labels(tmp_path) -> None:
    settings = {"slack": {"fallback_channel": "#rollbot-alerts"}}
    async with SimWorld(
        speed=20, workdir=tmp_path, analysis_at_25="Successful", settings=settings
    ) as world:
        world.slack.add_channel("C0FALLBACK", "rollbot-alerts")
        await world.wait_for(
            lambda: (
                (world.kube.get("rollouts", "payments", "payment-router") or {})
                .get("status", {})
                .get("currentStepIndex", 0)
                >= 1
            ),
            timeout=20,
            what="the canary at 10 %",
        )
        firing = sim_alerts.alert(
            "RollbotErrorRateHigh",
            service="payment-router",
            labels={"version": "canary", "slo": "error_rate"},
            summary=HOSTILE,
        )
        stray = sim_alerts.alert("CheckoutDown", service="checkout", labels={"team": HOSTILE})
        for alerts in ([firing], [stray]):
            response = await sim_alerts.send(
                f"{world.url}/webhooks/alertmanager",
                ALERTMANAGER_TOKEN,
                sim_alerts.webhook(alerts),
            )
            assert response.status_code == 200
        await world.wait_for(
            lambda: SHOWN in card_mrkdwn(world), timeout=20, what="the card's firing alert"
        )
        await world.wait_for(
            lambda: in_thread(world, SHOWN),
            timeout=20,
            what="the incident's thread line quoting the summary",
        )
        notice = await world.wait_for(
            lambda: world.slack.messages("C0FALLBACK"), timeout=20, what="the fallback notice"
        )
        assert f"team={SHOWN}" in notice[0]["text"]
        assert "`CheckoutDown`" in notice[0]["text"]  # rollbot's own formatting is kept
        assert_nothing_injected(world)


async def test_pagerduty_names_and_notes() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        world.pd.add_user("PHOSTILE", HOSTILE, "mallory@elsewhere.example")
        await world.wait_for_card()
        incident = await world.wait_for(
            lambda: world.pd.incident_by_key(KEY), what="the PagerDuty incident"
        )
        world.pd.acknowledge(incident["id"], "PHOSTILE")
        await world.wait_for(
            lambda: f"acknowledged by {SHOWN}" in card_mrkdwn(world),
            what="the acknowledgement on the card",
        )
        await world.wait_for(
            lambda: in_thread(world, f"PagerDuty: acknowledged by {SHOWN}"),
            what="the acknowledgement in the thread",
        )
        world.pd.annotate(incident["id"], "PHOSTILE", HOSTILE)
        await world.wait_for(
            lambda: in_thread(world, f"PagerDuty note by {SHOWN}: {SHOWN}"),
            what="the note in the thread",
        )
        world.pd.reassign(incident["id"], "PHOSTILE", [PD_ONCALL])
        await world.wait_for(
            lambda: in_thread(world, f"PagerDuty: reassigned by {SHOWN}"),
            what="the reassignment in the thread",
        )
        # rollbot's own link to the incident is still a link.
        assert f"<{incident['html_url']}|PagerDuty incident>" in card_mrkdwn(world)
        assert_nothing_injected(world)


async def test_break_glass_reason(tmp_path) -> None:
    flag = "payments.new-router.circuit-open"
    # As Slack sends the command: what was typed as @channel, @here and mentions arrives as
    # markup; a typed `>` arrives as `&gt;`.
    wire = (
        "unreachable <!channel> <!here> <@U0VICTIM> <!subteam^S0VICTIM> "
        "<https://evil.example|click> 5xx &gt; 2 % a & b"
    )
    typed = mrkdwn.unescape(wire)
    with LaunchDarklySim() as ld, PagerDutySim() as pd:
        ld.add_flag("default", flag, on=False)
        pd.add_user("PUSER1", "Paged Engineer", "paged@example.com")
        pd.add_escalation_policy("PESC123", "Payments")
        pd.set_oncall("PESC123", ["PUSER1"])  # not ONCALL: the owner needs break-glass
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
            await world.wait_for(world.card, timeout=40, what="the card")
            response = await world.sender.slash_command(
                ONCALL[0], ONCALL[1], f"payment-router circuit open break-glass {wire}"
            ).send()
            assert response.status_code == 200
            loud = await world.wait_for(
                lambda: [
                    m
                    for m in world.slack.messages(CHANNEL_ID)
                    if "BREAK-GLASS" in (m.get("text") or "")
                    and m.get("thread_ts") in (None, m["ts"])
                ],
                timeout=30,
                what="the loud top-level message",
            )
            text = loud[0]["text"]
            assert f"reason: {mrkdwn.escape(typed)}" in text
            assert text.startswith("<!subteam^S0PAYMENTS> ")  # rollbot's own mention
            await world.wait_for(
                lambda: any("Opened the circuit" in str(r.body) for r in world.slack.responses),
                timeout=30,
                what="the reply",
            )
            assert ld.is_on("default", flag)
            records = await world.rollbot.store.audit_entries()
            (entry,) = [
                r.entry
                for r in records
                if r.entry.action == "circuit-open" and r.entry.result == "succeeded"
            ]
            assert entry.detail["break_glass"] == typed  # kept as the person typed it
            assert_nothing_injected(world)


async def test_jira_error_in_the_release_thread() -> None:
    async with SimWorld(speed=60, jira=True) as world:
        body = {"errorMessages": [HOSTILE], "errors": {}}
        world.jira.fail_next(3, status=400, body=body, path="/rest/api/2/issue")
        response = await world.sender.slash_command(
            ONCALL[0],
            ONCALL[1],
            "start payment-router 1.13.0",
            command="/release",
            channel_id=CHANNEL_ID,
        ).send()
        assert response.status_code == 200
        await world.wait_for(
            lambda: any(
                "Jira refused" in (m.get("text") or "") and SHOWN in m["text"]
                for m in world.slack.messages(CHANNEL_ID)
            ),
            timeout=40,
            what="Jira's refusal in the release thread",
        )
        assert_nothing_injected(world)
