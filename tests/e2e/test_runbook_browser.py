"""The runbook page in a real browser: Debian's Chromium, headless, JavaScript off.

The whole world runs on loopback (bot/sim/harness.py: the Kubernetes API with the Argo
Rollouts controller, the Slack Web API, the LaunchDarkly API as the flag provider, rollbot
served by uvicorn). Links are absolute (`server.public_url` + path): SimWorld binds the
bot's socket before it builds the bot, so `public_url` is the bot's own loopback URL from
the start, and the link Slack hands out points at this bot. (The pages themselves only
use paths, so they work on any host.)

Aspects under test:
- `/rollback payment-router runbook` from the on-call engineer: the ephemeral reply holds
  a signed link; opened in Chromium it shows the runbook, the live Rollout (paused at 25 %
  on the inconclusive analysis), the open incident, and who the link is for;
- clicking "Abort (Tier 1)" opens the confirm step (`<details>`, no script), confirming
  posts the form; the result page (post/redirect/get) says aborted and verified and shows
  the Rollout Degraded at 0 %; the Rollout in the cluster has `status.abort: true`; one
  PATCH, one audit entry by `runbook:U0ONCALL:…`;
- the same link open in a second tab, confirmed after the first: 410 "already used",
  nothing executed twice (patches and audit entries counted);
- an expired link: 410 with the explanation; "Send me a fresh link in Slack" sends one DM
  to the same person, whose link opens a signed page;
- no Content-Security-Policy violation on any page (the inline style has its nonce);
- a screenshot of the signed page is kept with the test's files (and written to
  docs/screenshots/runbook-page.png when ROLLBOT_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.runbooks.links import issue_runbook_link
from bot.sim.harness import ONCALL, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim

pytestmark = [pytest.mark.timeout(150), pytest.mark.peer("chromium")]

SECRET = "browser-test-link-key-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "screenshots" / "runbook-page.png"


@pytest.fixture
async def world(tmp_path):
    with LaunchDarklySim() as flags:
        flags.add_flag("default", "payments.new-router.circuit-open", on=False)
        flags.add_flag("default", "payments.new-router.enabled", on=True)
        settings = {
            "flags": {
                "provider": "launchdarkly",
                "url": flags.url,
                "project": "default",
                "environment": "production",
            }
        }
        env = {"ROLLBOT_SERVER__LINK_SECRET": SECRET, "ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN}
        async with SimWorld(speed=600, workdir=tmp_path, settings=settings, env=env) as w:
            assert w.rollbot.settings.server.public_url == w.url  # see the docstring
            yield w


def watch_csp(page, violations: list[str]) -> None:
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )


async def slack_link(world: SimWorld) -> str:
    before = len(world.slack.responses)
    await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router runbook").send()
    text = await world.wait_for(
        lambda: next(
            (
                r.body.get("text", "")
                for r in world.slack.responses[before:]
                if "open the runbook page" in r.body.get("text", "")
            ),
            None,
        ),
        timeout=15,
        what="the signed link in Slack",
    )
    match = re.search(r"<(http[^|>]+)\|open the runbook page>", text)
    assert match, text
    return match.group(1)


async def counts(world: SimWorld) -> tuple[int, int]:
    patches = sum(1 for r in world.kube.requests if r.method == "PATCH")
    entries = [
        r
        for r in await world.rollbot.store.audit_entries()
        if r.entry.actor.startswith("runbook:") and r.entry.action == "abort"
    ]
    return patches, len(entries)


async def test_abort_from_the_runbook_page(world, browser, tmp_path):
    started = time.monotonic()
    await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "rollout_abort") and "25%" in str(c),
        timeout=40,
        what="the canary paused at 25 %",
    )
    url = await slack_link(world)
    assert url.startswith(f"{world.url}/runbooks/payment-router?token=")

    violations: list[str] = []
    page = await browser.new_page()
    watch_csp(page, violations)
    response = await page.goto(url)
    assert response.status == 200
    body = await page.inner_text("body")
    assert "Signed link for On-call Engineer" in body
    assert "single use" in body and "valid until" in body
    assert "payment-router — rollback runbook" in body  # the runbook, rendered
    assert "Paused" in body and "25 %" in body  # the live Rollout
    assert "Inconclusive" in body
    assert "Open the circuit (Tier 2)" in body  # a circuit flag and a flag provider
    assert "open" in await page.inner_text("section.panel:has(h2:text('Incident'))")

    shot = tmp_path / "runbook-page.png"
    await page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ROLLBOT_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot.read_bytes())

    # A second tab on the same link, still showing its form.
    second = await browser.new_page()
    watch_csp(second, violations)
    assert (await second.goto(url)).status == 200

    confirm = page.get_by_role("button", name="Confirm: abort payment-router")
    assert not await confirm.is_visible()  # the confirm step is folded away
    await page.get_by_text("Abort (Tier 1)", exact=True).click()
    await confirm.click()
    await page.wait_for_url(re.compile(r"done=abort"))
    result = await page.inner_text("body")
    assert "Abort (Tier 1): succeeded" in result
    assert "Aborted payments/payment-router" in result and "verified in" in result
    assert "Degraded" in result and "0 %" in result
    assert await page.locator("form").count() == 0

    rollout = world.kube.get("rollouts", "payments", "payment-router")
    assert rollout["status"]["abort"] is True
    assert await counts(world) == (1, 1)
    (entry,) = [r for r in await world.rollbot.store.audit_entries() if r.entry.action == "abort"]
    assert entry.entry.actor == "runbook:U0ONCALL:On-call Engineer"
    assert entry.entry.result == "succeeded"

    # The second tab confirms too: refused, nothing runs again.
    await second.get_by_text("Abort (Tier 1)", exact=True).click()
    await second.get_by_role("button", name="Confirm: abort payment-router").click()
    await second.wait_for_load_state()
    refused = await second.inner_text("body")
    assert "This link was already used" in refused and "Link already used at" in refused
    assert "Send me a fresh link in Slack" in refused
    assert await counts(world) == (1, 1)

    # Opening the used link again says so too.
    again = await page.goto(url)
    assert again.status == 410
    assert violations == []
    print(f"browser abort test: {time.monotonic() - started:.1f} s")


async def test_expired_link_and_a_fresh_one_in_slack(world, browser):
    expired = issue_runbook_link(
        world.rollbot.settings,
        "payment-router",
        ONCALL[0],
        "On-call Engineer",
        datetime.now(UTC) - timedelta(hours=2),
    )
    assert expired is not None
    violations: list[str] = []
    page = await browser.new_page()
    watch_csp(page, violations)
    response = await page.goto(expired)
    assert response.status == 410
    text = await page.inner_text("body")
    assert "This link has expired" in text and "issued to On-call Engineer" in text
    assert await page.get_by_role("button", name=re.compile("Confirm")).count() == 0

    await page.get_by_role("button", name="Send me a fresh link in Slack").click()
    await page.wait_for_load_state()
    assert "Check Slack" in await page.inner_text("body")
    dms = world.slack.direct_messages(ONCALL[0])
    assert len(dms) == 1
    fresh = re.search(r"<(http[^|>]+)\|open the runbook page>", dms[0]["text"])
    assert fresh
    assert (await page.goto(fresh.group(1))).status == 200
    assert "Signed link for On-call Engineer" in await page.inner_text("body")
    assert await counts(world) == (0, 0)
    assert violations == []
