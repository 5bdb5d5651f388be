"""The Tier 1 loop end to end: Argo Rollouts → Slack card → abort / retry / promote.

Everything runs for real on loopback: the Kubernetes API sim with the Argo controller sim,
the Slack Web API sim, and rollbot built from a settings file and served by uvicorn. Slack
requests are signed exactly as Slack signs them.

Aspects under test:
- the watch posts one card, unasked, when the canary pauses on an inconclusive analysis,
  with a timeline thread underneath;
- clicking Abort (Tier 1): acked, one PATCH with the exact path, content type and body,
  verified by reading back, audited, the card shows who and how fast, Retry replaces Abort;
- one abort is one thread line, in plain words, with its verified result ("Aborted by
  <@U0ONCALL>: all traffic back on stable revision 41, verified in 0.1 s"), then only the
  incident's own resolution: the Rollout going aborted under the patch, the incident
  recovering because of it, and (with PagerDuty) rollbot's own acknowledge and resolve
  coming back are not lines again; no line says an Argo reason as code
  (`InconclusiveAnalysisRun`, `RolloutAborted`) — issue 14;
- exactly once: a double click, two users racing, and a Slack retry send one patch; the
  others are told who did it;
- the same through `/rollback payment-router abort`, then retry;
- `/rollback payment-router` answers a status card; `/rollback help` the usage, who may
  (from the policy's table), Tier 3 and `/release`;
- refusals: a non-owner is refused naming who may; forged and stale signatures get 401
  and nothing runs or is audited; an unknown service lists the known ones;
- the Kubernetes API unreachable or 403: the user is told which and why.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from bot.sim.harness import CHANNEL_ID, ONCALL, OUTSIDER, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(90)

STATUS_PATH = "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payment-router/status"
MAIN_PATH = "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payment-router"


def patches(world: SimWorld) -> list:
    return [r for r in world.kube.requests if r.method == "PATCH"]


def responses_text(world: SimWorld) -> str:
    return "\n".join(json.dumps(r.body) for r in world.slack.responses)


@pytest.fixture
async def world(tmp_path):
    async with SimWorld(speed=600, workdir=tmp_path) as w:
        yield w


async def paused_card(world: SimWorld) -> dict:
    return await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
        timeout=40,
        what="the card with Abort",
    )


async def audit(world: SimWorld, action: str) -> list:
    return [r for r in await world.rollbot.store.audit_entries() if r.entry.action == action]


async def test_card_posted_unasked_with_timeline(world):
    card = await paused_card(world)
    text = json.dumps(card["blocks"])
    assert "payment-router" in text
    assert "25%" in text
    assert "Inconclusive" in text or "InconclusiveAnalysisRun" in text
    assert world.button(card, "rollout_promote") is not None
    # exactly one top-level card in the channel for this revision
    tops = [m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m["ts"])]
    assert len(tops) == 1
    thread = await world.wait_for(
        lambda: world.slack.thread(CHANNEL_ID, card["ts"]),
        timeout=10,
        what="a timeline line in the thread",
    )
    assert "Paused" in thread[0]["text"]


async def test_click_abort_patches_verifies_audits_and_updates_card(world):
    card = await paused_card(world)
    confirm = world.button(card, "rollout_abort")["confirm"]
    assert "status.abort=true on payments/payment-router" in json.dumps(confirm)
    assert "stable revision 41" in json.dumps(confirm)

    started = time.monotonic()
    response = await world.click(card, "rollout_abort")
    assert response.status_code == 200
    assert time.monotonic() - started < 3.0  # acked well inside Slack's limit

    await world.wait_for(
        lambda: "Aborted by <@U0ONCALL>" in json.dumps(world.card()),
        timeout=20,
        what="the outcome on the card",
    )
    sent = patches(world)
    assert len(sent) == 1
    assert sent[0].path == STATUS_PATH
    assert sent[0].content_type.startswith("application/merge-patch+json")
    assert sent[0].body == {"status": {"abort": True}}

    final = world.card()
    assert world.button(final, "rollout_retry") is not None
    assert world.button(final, "rollout_abort") is None
    assert "verified in" in json.dumps(final["blocks"])

    (entry,) = await audit(world, "abort")
    assert entry.entry.result == "succeeded"
    assert entry.entry.before["phase"] == "Paused"
    assert entry.entry.after["phase"] == "Degraded"
    assert entry.entry.after["canary_weight"] == 0
    assert entry.entry.actor == "slack:U0ONCALL:On-call Engineer"
    assert entry.entry.duration_ms is not None
    assert (await world.rollbot.store.verify_audit()).ok
    rollout = world.kube.get("rollouts", "payments", "payment-router")
    assert rollout["status"]["abort"] is True and rollout["status"]["phase"] == "Degraded"


# Argo's reasons as code, a reason repeated, PagerDuty's integration named as a person: what
# the thread said before issue 14.
GARBLED = re.compile(
    r"InconclusiveAnalysisRun|RolloutAborted|CanaryPauseStep|ProgressDeadlineExceeded"
    r"|aborted: |aborted update to|Events API|·\s*aborted|paused: "
)
ABORT_LINE = re.compile(
    r"^`\d\d:\d\d:\d\d UTC` Aborted by <@U0ONCALL>: all traffic back on stable revision 41, "
    r"verified in \d+\.\d s$"
)
RESOLVED_LINE = re.compile(r"^`\d\d:\d\d:\d\d UTC` Resolved — nothing fired for \d+ s$")


async def _one_abort_one_line(world: SimWorld) -> list[str]:
    """Abort from the card; the thread lines the abort added, once the incident resolved."""
    card = await paused_card(world)

    def lines() -> list[str]:
        return [m["text"] for m in world.slack.thread(CHANNEL_ID, card["ts"])]

    opened = await world.wait_for(
        lambda: (t := lines()) and len(t) >= 2 and t, timeout=10, what="the first two lines"
    )
    assert "Paused at step 5/9, canary 25%: an inconclusive analysis run" in opened[0]
    assert "Incident opened for `payment-router` revision 42" in opened[1]
    await world.click(card, "rollout_abort")
    await world.wait_for(
        lambda: any(RESOLVED_LINE.match(t) for t in lines()),
        timeout=30,
        what="the incident resolved in the thread",
    )
    await asyncio.sleep(1.5)  # the controller's last writes, and anything else they would say
    assert not [t for t in lines() if GARBLED.search(t)], lines()
    return lines()[len(opened) :]


async def test_one_abort_is_one_line_in_plain_words(world):
    added = await _one_abort_one_line(world)
    assert len(added) == 2, added
    assert ABORT_LINE.match(added[0]), added
    assert RESOLVED_LINE.match(added[1]), added


async def test_one_abort_is_one_line_with_pagerduty_too(tmp_path):
    async with SimWorld(speed=600, workdir=tmp_path, pagerduty=True) as world:
        added = await _one_abort_one_line(world)
        # PagerDuty acknowledged (the verified abort) and resolved (the card's incident):
        # the card says so, the thread does not say it again.
        await world.wait_for(
            lambda: "resolved by rollbot" in json.dumps(world.card()["blocks"]),
            timeout=30,
            what="PagerDuty's resolve on the card",
        )
        thread = [m["text"] for m in world.slack.thread(CHANNEL_ID, world.card()["ts"])]
        assert thread[-len(added) :] == added and len(thread) == 2 + len(added), thread
        assert len(added) == 2, added
        assert ABORT_LINE.match(added[0]) and RESOLVED_LINE.match(added[1]), added


async def test_double_click_and_retry_execute_once(world):
    card = await paused_card(world)
    second = ("U0SECOND", "second-responder")
    world.slack.set_usergroup_members("S0PAYMENTS", [ONCALL[0], second[0]])
    world.slack.add_user(second[0], second[1])
    results = await asyncio.gather(
        world.click(card, "rollout_abort"),
        world.click(card, "rollout_abort"),
        world.click(card, "rollout_abort", user=second),
    )
    assert all(r.status_code == 200 for r in results)
    await world.wait_for(
        lambda: len(world.slack.responses) >= 3,
        timeout=20,
        what="an answer to each of the three clicks",
    )
    (won,) = [e for e in await audit(world, "abort") if e.entry.result == "succeeded"]
    winner = won.entry.actor.split(":")[1]
    texts = [r.body["text"] for r in world.slack.responses]
    assert sum("Aborted `payments/payment-router`" in t for t in texts) == 1
    losers = [t for t in texts if "Aborted `payments" not in t]
    assert len(losers) == 2
    assert all(f"<@{winner}>" in t and "nothing more was sent" in t for t in losers)

    # Slack re-sends the winner's click (X-Slack-Retry-Num): acked, nothing runs, and the
    # winner is not told twice. A retry of someone else's click is told who won.
    winner_user = ONCALL if winner == ONCALL[0] else second
    other_user = second if winner_user is ONCALL else ONCALL
    retry = await world.click(
        card, "rollout_abort", user=winner_user, retry_num=1, retry_reason="http_timeout"
    )
    assert retry.status_code == 200
    other = await world.click(
        card, "rollout_abort", user=other_user, retry_num=1, retry_reason="http_timeout"
    )
    assert other.status_code == 200
    await world.wait_for(
        lambda: len(world.slack.responses) >= 4, timeout=10, what="the other user's retry answered"
    )
    assert f"Already aborted by <@{winner}>" in world.slack.responses[-1].body["text"]
    assert len(world.slack.responses) == 4
    assert len(patches(world)) == 1

    # The winner's retry is answered silently: wait for its audit line rather than a reply.
    async def five_entries() -> list | None:
        entries = await audit(world, "abort")
        return entries if len(entries) >= 5 else None

    entries = await eventually(five_entries, what="five abort audit entries")
    results = [e.entry.result for e in entries]
    assert results.count("succeeded") == 1
    assert results.count("duplicate") == 4
    assert len(patches(world)) == 1


async def test_command_abort_then_retry(world):
    await paused_card(world)
    response = await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router abort").send()
    assert response.status_code == 200
    assert "working on it" in response.text
    await world.wait_for(
        lambda: "Aborted `payments/payment-router`" in responses_text(world),
        timeout=20,
        what="the abort reply",
    )
    await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router retry").send()
    await world.wait_for(
        lambda: "Retried `payments/payment-router`" in responses_text(world),
        timeout=20,
        what="the retry reply",
    )
    bodies = [p.body for p in patches(world)]
    assert bodies == [{"status": {"abort": True}}, {"status": {"abort": False}}]
    assert all(p.path == STATUS_PATH for p in patches(world))


async def test_status_and_help(world):
    response = await world.sender.slash_command(ONCALL[0], ONCALL[1], "help").send()
    assert response.status_code == 200
    assert "/rollback" in response.text
    # Who may is the policy's (owners may do Tier 1), and Tier 3 and /release are there.
    assert "who may: the service's on-call or a member of its owners group" in response.text
    assert "on-call group" not in response.text
    assert "Tier 3" in response.text and "/release start SERVICE VERSION" in response.text
    await world.sender.slash_command(OUTSIDER[0], OUTSIDER[1], "payment-router").send()
    body = await world.wait_for(
        lambda: next((r.body for r in world.slack.responses if r.body.get("blocks")), None),
        timeout=10,
        what="a status card",
    )
    text = json.dumps(body["blocks"])
    assert "payment-router" in text
    assert "revision 41" in text and "registry.example.com/payment-router:1.13.0" in text
    assert "*Step* " in text and "*Canary weight* " in text and "*Phase* " in text
    assert patches(world) == []


async def test_outsider_refused_and_audited(world):
    card = await paused_card(world)
    await world.click(card, "rollout_abort", user=OUTSIDER)
    await world.wait_for(
        lambda: "S0PAYMENTS" in responses_text(world), timeout=10, what="the refusal"
    )
    assert "may not abort" in responses_text(world)
    assert patches(world) == []
    (entry,) = await audit(world, "abort")
    assert entry.entry.result == "refused"


async def test_forged_and_stale_requests_get_401_and_nothing_runs(world):
    forged = await world.sender.slash_command(
        ONCALL[0], ONCALL[1], "payment-router abort", bad_signature=True
    ).send()
    stale = await world.sender.slash_command(
        ONCALL[0], ONCALL[1], "payment-router abort", timestamp=int(time.time()) - 600
    ).send()
    assert forged.status_code == 401 and stale.status_code == 401
    # No waiting: /slack/events answers 401 before Bolt sees the request (bot.web.slack
    # checks the signature first), so nothing was started that could still patch or audit.
    assert patches(world) == []
    assert await world.rollbot.store.audit_entries() == []
    assert world.slack.responses == []


async def test_unknown_service_lists_known(world):
    # answered in the ack itself: no I/O is needed to know the catalog
    response = await world.sender.slash_command(ONCALL[0], ONCALL[1], "checkout abort").send()
    assert response.status_code == 200
    assert "Unknown service `checkout`" in response.text
    assert "`payment-router`" in response.text
    assert patches(world) == []
    assert await world.rollbot.store.audit_entries() == []


async def test_malformed_command_answers_usage(world):
    response = await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router nuke").send()
    assert response.status_code == 200
    assert "Unknown action `nuke`" in response.text
    assert "Usage: `/rollback SERVICE" in response.text


async def test_kubernetes_unreachable_and_forbidden_are_explained(world):
    # The injected 403 is for the next read of the Rollout. The watch's card refresh reads
    # it too (after the controller's last writes, stopped here, it may still be refreshing),
    # and may take the 403 first: then the command's answer is an ordinary status card, and
    # the fault is injected again. Each round waits for the command's answer.
    world.argo.stop()
    for _ in range(5):
        answered = len(world.slack.responses)
        world.kube.fail_next(1, status=403, path_contains="/rollouts/payment-router")
        await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router status").send()
        await world.wait_for(
            lambda n=answered: len(world.slack.responses) > n, timeout=10, what="the answer"
        )
        if "403" in responses_text(world):
            break
    assert "403" in responses_text(world), responses_text(world)
    assert "Kubernetes API" in responses_text(world)

    world.kube.set_unreachable(True)
    try:
        await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router abort").send()
        await world.wait_for(
            lambda: "unreachable" in responses_text(world), timeout=30, what="unreachable reply"
        )
    finally:
        world.kube.set_unreachable(False)
    assert patches(world) == []


async def test_rollout_missing_in_cluster_names_namespace_and_name(tmp_path):
    extra = {
        "ledger": {"namespace": "payments", "rollout": "ledger-api", "channel": "#payments-deploys"}
    }
    async with SimWorld(speed=600, workdir=tmp_path, extra_services=extra) as world:
        await world.sender.slash_command(ONCALL[0], ONCALL[1], "ledger abort").send()
        await world.wait_for(
            lambda: "not found" in responses_text(world), timeout=10, what="the not-found reply"
        )
        text = responses_text(world)
        assert "ledger-api" in text and "payments" in text
        assert patches(world) == []


async def test_controller_abort_on_failed_analysis_posts_card_with_retry(tmp_path):
    async with SimWorld(speed=600, workdir=tmp_path, analysis_at_25="Failed") as world:
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_retry") and c,
            timeout=40,
            what="the card of the aborted rollout",
        )
        text = json.dumps(card["blocks"])
        assert "Failed" in text and "revision 42" in text
        assert world.button(card, "rollout_abort") is None
        assert patches(world) == []  # the controller aborted, not rollbot


async def test_progress_deadline_posts_card(tmp_path):
    async with SimWorld(speed=600, workdir=tmp_path, analysis_at_25="Successful") as world:
        await world.wait_for(
            lambda: (
                (world.kube.get("rollouts", "payments", "payment-router") or {})
                .get("status", {})
                .get("currentStepIndex", 0)
                >= 1
            ),
            timeout=20,
            what="the canary to start",
        )
        world.argo.stall("payments", "payment-router")
        card = await world.wait_for(world.card, timeout=20, what="the card")
        assert "ProgressDeadlineExceeded" in json.dumps(card["blocks"])


async def test_promote_pause_promote_full_commands(tmp_path):
    # 60x: after the promote, the 5-minute pause at 50 % lasts 5 real seconds, time enough
    # for the pause command to land before the controller reaches 100 % by itself.
    async with SimWorld(speed=60, workdir=tmp_path) as world:
        await _promote_pause_promote_full(world)


async def _promote_pause_promote_full(world: SimWorld) -> None:
    await paused_card(world)

    async def command(text: str, reply: str) -> None:
        before = len(world.slack.responses)
        await world.sender.slash_command(ONCALL[0], ONCALL[1], text).send()
        body = await world.wait_for(
            lambda: len(world.slack.responses) > before and world.slack.responses[-1].body,
            timeout=20,
            what=f"the reply to {text}",
        )
        assert reply in body["text"], body["text"]

    await command("payment-router promote", "Promoted `payments/payment-router`")
    await command("payment-router pause", "Paused `payments/payment-router`")
    await command("payment-router promote-full", "Fully promoted `payments/payment-router`")
    sent = patches(world)
    assert all(p.content_type.startswith("application/merge-patch+json") for p in sent)
    assert {"spec": {"paused": True}} in [p.body for p in sent if p.path == MAIN_PATH]
    assert {"status": {"promoteFull": True}} in [p.body for p in sent if p.path == STATUS_PATH]
    await world.wait_for(
        lambda: (
            (s := world.kube.get("rollouts", "payments", "payment-router")["status"])
            and s.get("phase") == "Healthy"
            and s.get("currentPodHash") == s.get("stableRS")
        ),
        timeout=20,
        what="the rollout fully promoted",
    )
    results = [e.entry.result for e in await world.rollbot.store.audit_entries()]
    assert results == ["succeeded"] * 3


async def test_stale_card_buttons_are_refused_or_told_who_acted(world):
    card = await paused_card(world)  # rendered at epoch 0: Abort and Promote
    await world.click(card, "rollout_abort")
    await world.wait_for(
        lambda: "Aborted by" in json.dumps(world.card()), timeout=20, what="the abort"
    )
    await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router retry").send()
    await world.wait_for(lambda: "Retried" in responses_text(world), timeout=20, what="the retry")
    sent = len(patches(world))

    # The old card's Promote: never claimed at epoch 0, and someone acted since → refused.
    await world.click(card, "rollout_promote")
    await world.wait_for(
        lambda: "out of date" in responses_text(world), timeout=10, what="the stale-card refusal"
    )
    # The old card's Abort: that very click already ran → told who did it.
    await world.click(card, "rollout_abort", user=ONCALL, retry_num=None)
    await world.wait_for(
        lambda: responses_text(world).count("Already aborted by") == 1,
        timeout=10,
        what="the duplicate answer",
    )
    assert len(patches(world)) == sent
    results = [e.entry.result for e in await world.rollbot.store.audit_entries()]
    assert results.count("refused") == 1
