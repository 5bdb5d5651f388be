"""The demo workbench in a real browser: Debian's Chromium, headless, JavaScript on.

A SimWorld (PagerDuty and Jira sims on, a LaunchDarkly sim as the flag provider) and the
workbench served by uvicorn in the test's event loop, on loopback.

Aspects under test:
- typing `/rollback payment-router` in the composer sends a signed slash command; the
  status answer appears in the channel as "Only visible to you"; the composer is emptied;
- the card (the canary paused at 25 % on the inconclusive analysis) appears in the channel,
  rendered from the Slack sim's Block Kit; the Rollouts panel shows canary 25 %;
- clicking "Abort (Tier 1)" opens the button's confirm dialog in the page; "Abort" sends the
  signed block_actions; the card changes to aborted and verified; the Rollouts panel shows
  canary 0 % and aborted; the audit panel shows the abort; the cluster has `abort: true`;
- the text typed in the composer survives the polling refreshes;
- a screenshot is kept with the test's files (and written to docs/screenshots/workbench.png
  when ROLLBOT_UPDATE_SCREENSHOTS=1);
- at 1366×768 (a laptop), each card's header, status line, 👉 recommendation and the
  button it points at are inside the channel pane and the window together, uncovered
  (bounding boxes, `elementFromPoint`): the paused canary, after the status answer is
  dismissed, after a verified abort (with the clicker's answer below the card), checkout
  firing, checkout under an open breaker; the status answer sits in the channel wholly in
  view and can be dismissed (docs/screenshots/card-before.png and card-after.png with
  ROLLBOT_UPDATE_SCREENSHOTS=1);
- the second service: "Fire the SLO alert" in the Scenarios panel brings checkout's card
  recommending Tier 2; Open circuit breaker → its confirm dialog → the flag shows on in the
  flags panel; "Record Tier 3 revert…" opens the bot's modal (views.open) over the page;
  submitting it without a URL shows the bot's error under the field and keeps what was
  typed in the note; with a URL the modal closes, the thread and the audit log show the
  revert (docs/screenshots/workbench-modal.png with ROLLBOT_UPDATE_SCREENSHOTS=1);
- Tier 3 run by rollbot, in the demo's GitOps world (`SimWorld(gitops="github")`): "Start
  Tier 3 revert…" on payment-router's card opens the bot's modal with the prepared diff;
  its submit button confirms: the GitOps panel shows the revert branch and pull request #1
  open; acting as @payments-lead (the "acting as" menu), "Approve Tier 3 revert" merges it:
  the panel shows it merged and Argo CD synced, the card says "Tier 3 done, verified"
  (docs/screenshots/workbench-tier3.png with ROLLBOT_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from bot.sim import workbench
from bot.sim import world as sim_world
from bot.sim.demo import CHECKOUT_ALERT
from bot.sim.harness import LEAD, ONCALL, USERGROUP, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim
from tests.helpers import eventually
from tests.plugins.chromium import CHROMIUM_FLAGS

pytestmark = [pytest.mark.timeout(150), pytest.mark.peer("chromium")]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "screenshots" / "workbench.png"
MODAL_SCREENSHOT = REPO / "docs" / "screenshots" / "workbench-modal.png"
CIRCUIT = sim_world.CHECKOUT_FLAGS["circuit"]
FLAGS = ("payments.new-router.enabled", "payments.new-router.circuit-open", CIRCUIT)


@pytest.fixture
async def workbench_url(tmp_path):
    with LaunchDarklySim() as ld:
        ld.add_flag("default", FLAGS[0], on=True)
        ld.add_flag("default", FLAGS[1], on=False)
        ld.add_flag("default", CIRCUIT, on=False)
        settings = {
            "flags": {
                "provider": "launchdarkly",
                "url": ld.url,
                "project": "default",
                "environment": "production",
            }
        }
        env = {"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN}
        async with SimWorld(
            speed=300,
            workdir=tmp_path,
            pagerduty=True,
            jira=True,
            checkout=True,
            settings=settings,
            env=env,
        ) as world:
            bench = workbench.Workbench(
                world,
                flags=[
                    workbench.FlagSource(
                        "LaunchDarkly", FLAGS, lambda key: ld.is_on("default", key)
                    )
                ],
                alerts=[CHECKOUT_ALERT],
            )
            async with workbench.serve_workbench(bench, port=0) as url:
                yield world, url


@contextlib.asynccontextmanager
async def _browser_page(chromium: str, tmp_path: Path, viewport: dict[str, int]):
    """A page of Debian's Chromium, headless, on a fresh profile, at `viewport`."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=viewport,
        )
        try:
            yield await context.new_page()
        finally:
            await context.close()


@pytest.fixture
async def page(chromium, tmp_path):
    async with _browser_page(chromium, tmp_path, {"width": 1600, "height": 1000}) as page:
        yield page


async def test_status_then_abort_from_the_card(workbench_url, page, tmp_path):
    from playwright.async_api import expect

    world, url = workbench_url
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(url)
    await expect(page.locator("#wb-panel-rollouts")).to_contain_text("payment-router")

    await page.fill("#wb-text", "/rollback payment-router")
    await page.press("#wb-text", "Enter")
    answer = page.locator("#wb-channel .wb-ephemeral")
    await expect(answer.first).to_contain_text("Only visible to you", timeout=20_000)
    await expect(answer.first).to_contain_text("payment-router")
    await expect(page.locator("#wb-text")).to_have_value("")

    # The card's Abort (the status answer above carries one too).
    abort = page.locator('#wb-channel [data-ts] button[data-action-id="rollout_abort"]')
    await expect(abort).to_be_visible(timeout=60_000)
    await expect(page.locator("#wb-panel-rollouts")).to_contain_text("canary 25 %")
    await expect(page.locator("#wb-panel-flags")).to_contain_text(FLAGS[1])

    # Half-typed text survives the refreshes (the page polls every 500 ms).
    await page.fill("#wb-text", "/rollback payment-rou")
    await page.wait_for_timeout(1200)
    await expect(page.locator("#wb-text")).to_have_value("/rollback payment-rou")
    await page.fill("#wb-text", "")

    await abort.click()
    dialog = page.locator("#wb-confirm")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Abort")
    await page.click("#wb-confirm-ok")

    card = page.locator("#wb-channel")
    await expect(card).to_contain_text("Aborted by", timeout=30_000)
    await expect(card).to_contain_text("verified", timeout=30_000)
    rollouts = page.locator("#wb-panel-rollouts")
    await expect(rollouts).to_contain_text("canary 0 %", timeout=20_000)
    await expect(rollouts).to_contain_text("aborted")
    await expect(page.locator("#wb-panel-audit")).to_contain_text("abort", timeout=20_000)
    status = (world.kube.get("rollouts", "payments", "payment-router") or {})["status"]
    assert status.get("abort") is True
    assert errors == []

    shot = tmp_path / "workbench.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ROLLBOT_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


async def test_circuit_breaker_and_the_revert_modal(workbench_url, page, tmp_path):
    from playwright.async_api import expect

    world, url = workbench_url
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(url)
    await expect(page.locator("#wb-panel-rollouts")).to_contain_text("stable 100 %")
    await page.click('#wb-panel-scenarios button.wb-scenario[data-service="checkout"]')
    await expect(page.locator("#wb-panel-scenarios")).to_contain_text("Resolve the alert")

    card = page.locator("#wb-channel .wb-message").filter(has_text="checkout/checkout")
    await expect(card).to_contain_text("Recommended: Tier 2", timeout=30_000)
    await card.locator('button[data-action-id="circuit_open"]').click()
    await expect(page.locator("#wb-confirm")).to_be_visible()
    await page.click("#wb-confirm-ok")
    flag = page.locator("#wb-panel-flags tr").filter(has_text=CIRCUIT)
    await expect(flag.locator("td.wb-on")).to_have_text("on", timeout=30_000)
    await expect(card).to_contain_text("Circuit opened by", timeout=30_000)

    await card.locator('button[data-action-id="revert_open"]').click()
    modal = page.locator("#wb-modal")
    await expect(modal).to_be_visible(timeout=20_000)
    await expect(modal).to_contain_text("revert")
    await page.fill('#wb-modal-form textarea[data-action-id="note"]', "tax engine rounding")
    await page.click("#wb-modal-form .bk-view-submit")
    await expect(modal.locator(".wb-field-error")).to_be_visible(timeout=20_000)
    await page.wait_for_timeout(1200)  # refreshes keep the typed note and the error
    await expect(page.locator('#wb-modal-form textarea[data-action-id="note"]')).to_have_value(
        "tax engine rounding"
    )
    await expect(modal.locator(".wb-field-error")).to_be_visible()
    shot = tmp_path / "workbench-modal.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("ROLLBOT_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, MODAL_SCREENSHOT)

    link = "https://git.example.com/acme/gitops/pull/812"
    await page.fill('#wb-modal-form input[data-action-id="url"]', link)
    await page.click("#wb-modal-form .bk-view-submit")
    await expect(modal).to_be_hidden(timeout=20_000)
    await expect(page.locator("#wb-panel-audit")).to_contain_text("revert-started", timeout=20_000)
    await card.locator(".bk-replies").click()
    await expect(page.locator("#wb-thread-body")).to_contain_text(link, timeout=20_000)
    recorded = [
        r.entry.detail.get("url")
        for r in await world.rollbot.store.audit_entries()
        if r.entry.action == "revert-started" and r.entry.result == "succeeded"
    ]
    assert recorded == [link]
    assert errors == []


# ── the card on one laptop screen ────────────────────────────────────────────

LAPTOP = {"width": 1366, "height": 768}

# Where each part of a card is, relative to the channel pane and the window: the parts a
# responder must see together without scrolling (issue 14). One synchronous read in the
# page, the card found afresh by its message ts (the page swaps the channel's HTML when the
# card changes, which detaches the elements a previous read held), the button the 👉 line
# points at included, and whether something covers it (the element at its centre).
_BOXES = """
([ts, primary]) => {
  const card = document.querySelector(`#wb-channel .wb-message[data-ts="${ts}"]`);
  if (!card) return null;
  const box = (el) => {
    if (!el || !el.isConnected) return null;
    const r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
  };
  const blocks = [...card.querySelectorAll(".bk-block")];
  const header = card.querySelector(".bk-header");
  const recommendation = blocks.find((b) => b.textContent.trim().startsWith("👉"));
  const said = recommendation ? recommendation.textContent.trim() : "";
  const entry = Object.entries(primary).find(([key]) => said.includes(key));
  const action = entry
    ? entry[1].find((a) => card.querySelector(`[data-action-id="${a}"]`)) || null
    : null;
  const button = action ? card.querySelector(`[data-action-id="${action}"]`) : null;
  const b = box(button);
  const hit = b ? document.elementFromPoint((b.left + b.right) / 2, (b.top + b.bottom) / 2) : null;
  return {
    pane: box(document.getElementById("wb-channel")),
    window: {top: 0, left: 0, bottom: window.innerHeight, right: window.innerWidth},
    header: box(header),
    status: box(header ? header.nextElementSibling : null),
    recommendation: box(recommendation),
    recommended: said,
    action: action,
    button: b,
    covered: !(hit && button && (hit === button || button.contains(hit))),
  };
}
"""
# The button the 👉 line points at (Tier 3: its runbook when it has a web page, else the
# revert modal, which shows the steps).
_PRIMARY = {
    "Recommended: Tier 1": ["rollout_abort"],
    "Recommended: Tier 2": ["circuit_open"],
    "then Tier 3": ["runbook_open", "tier3_start", "revert_open"],
}
_PARTS = ("header", "status", "recommendation", "button")


def _inside(inner: dict, outer: dict) -> bool:
    return (
        inner["top"] >= outer["top"] - 0.5
        and inner["bottom"] <= outer["bottom"] + 0.5
        and inner["left"] >= outer["left"] - 0.5
        and inner["right"] <= outer["right"] + 0.5
    )


def _problems(boxes: dict | None) -> list[str]:
    """What is wrong with one read of the card's boxes (nothing: the first screen holds)."""
    if boxes is None:
        return ["no card"]
    if not boxes["action"]:
        return [f"no button for the 👉 line {boxes['recommended']!r}"]
    wrong = [f"no {part}" for part in _PARTS if boxes[part] is None]
    wrong += [
        f"the {part} is off the {frame}"
        for part in _PARTS
        if boxes[part] is not None
        for frame in ("pane", "window")
        if not _inside(boxes[part], boxes[frame])
    ]
    return wrong + (["something covers the button"] if boxes["covered"] else [])


async def _first_screen(page, card, *, what: str) -> str:
    """Assert the card's header, status line, recommendation and primary button are all in
    the channel pane and the window, and nothing covers the button; return the 👉 line.
    Read until a read is whole (the page may be swapping the card's HTML that moment)."""
    ts = await card.get_attribute("data-ts")
    last: dict = {}

    async def whole() -> dict | None:
        boxes = await page.evaluate(_BOXES, [ts, _PRIMARY])
        last["boxes"], last["problems"] = boxes, _problems(boxes)
        return None if last["problems"] else boxes

    boxes = await eventually(
        whole, timeout=10, interval=0.1, what=lambda: f"{what}: {last['problems']} {last}"
    )
    return str(boxes["recommended"])


async def _keep(page, tmp_path: Path, name: str, *, readme: bool = True) -> None:
    """A screenshot of the window, kept with the test's files (and in docs/screenshots/
    with ROLLBOT_UPDATE_SCREENSHOTS=1, for the README)."""
    shot = tmp_path / name
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if readme and os.environ.get("ROLLBOT_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT.parent / name)


@pytest.fixture
async def laptop_page(chromium, tmp_path):
    async with _browser_page(chromium, tmp_path, LAPTOP) as page:
        yield page


async def test_the_card_fits_one_laptop_screen(workbench_url, laptop_page, tmp_path):
    """At 1366×768 each card's header, status line, recommendation and primary button are
    in view together, before and after a mitigation; an answer only the clicker sees sits
    in the channel, covers nothing, and can be dismissed."""
    from playwright.async_api import expect

    page = laptop_page
    _, url = workbench_url
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(url)
    router = page.locator("#wb-channel .wb-message").filter(has_text="payment-router ·")
    await expect(router.locator('button[data-action-id="rollout_abort"]')).to_be_visible(
        timeout=60_000
    )
    await expect(router).to_contain_text("👉")
    line = await _first_screen(page, router, what="payment-router paused")
    assert "Recommended: Tier 1" in line
    await _keep(page, tmp_path, "card-before.png")

    # The status answer: in the channel, wholly in view, covering nothing; then dismissed.
    await page.fill("#wb-text", "/rollback payment-router")
    await page.press("#wb-text", "Enter")
    answer = page.locator("#wb-channel .wb-ephemeral").last
    await expect(answer).to_contain_text("Only visible to you", timeout=20_000)
    await expect(answer.locator('button[data-action-id="rollout_abort"]')).to_be_visible()
    pane = await page.locator("#wb-channel").bounding_box()
    shown = await answer.bounding_box()
    assert pane is not None and shown is not None
    assert shown["y"] + shown["height"] <= pane["y"] + pane["height"] + 0.5  # not cut off
    await answer.locator("button.wb-dismiss").click()
    await expect(page.locator("#wb-channel .wb-ephemeral")).to_have_count(0, timeout=10_000)
    await _first_screen(page, router, what="payment-router, the answer dismissed")

    await router.locator('button[data-action-id="rollout_abort"]').click()
    await page.click("#wb-confirm-ok")
    await expect(router).to_contain_text("Aborted, verified", timeout=30_000)
    await expect(router).to_contain_text("👉 Next: watch the signals recover", timeout=30_000)
    line = await _first_screen(page, router, what="payment-router aborted")
    assert "then Tier 3" in line
    await _keep(page, tmp_path, "card-after.png")

    await page.click('#wb-panel-scenarios button.wb-scenario[data-service="checkout"]')
    checkout = page.locator("#wb-channel .wb-message").filter(has_text="checkout ·")
    await expect(checkout.locator('button[data-action-id="circuit_open"]')).to_be_visible(
        timeout=30_000
    )
    line = await _first_screen(page, checkout, what="checkout firing")
    assert "Recommended: Tier 2" in line
    await checkout.locator('button[data-action-id="circuit_open"]').click()
    await page.click("#wb-confirm-ok")
    await expect(checkout).to_contain_text("Circuit opened, verified", timeout=30_000)
    await expect(checkout).to_contain_text("then Tier 3", timeout=30_000)
    await _first_screen(page, checkout, what="checkout under an open breaker")
    await _keep(page, tmp_path, "card-circuit.png", readme=False)
    assert errors == []


# ── Tier 3 run by rollbot, in the demo's GitOps world ────────────────────────


@pytest.fixture
async def gitops_workbench_url(tmp_path):
    async with SimWorld(speed=300, workdir=tmp_path, gitops="github") as world:
        world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
        async with workbench.serve_workbench(workbench.Workbench(world), port=0) as url:
            yield world, url


async def test_tier3_revert_pull_request_approved_by_a_second_person(
    gitops_workbench_url, page, tmp_path
):
    from playwright.async_api import expect

    world, url = gitops_workbench_url
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(url)
    gitops = page.locator("#wb-panel-gitops")
    await expect(gitops).to_contain_text("platform/configs on GitHub")
    cards = page.locator("#wb-channel .wb-message").filter(has_text="payment-router ·")
    start = cards.locator('button[data-action-id="tier3_start"]')
    await expect(start).to_be_visible(timeout=60_000)
    # The card of revision 42 (the reverted release brings revision 43's card below it).
    ts = await cards.first.get_attribute("data-ts")
    router = page.locator(f'#wb-channel .wb-message[data-ts="{ts}"]')

    await start.click()
    modal = page.locator("#wb-modal")
    await expect(modal).to_be_visible(timeout=20_000)
    await expect(modal).to_contain_text("kustomization.yaml", timeout=30_000)
    await expect(modal).to_contain_text(world.release_sha[:12])
    await _keep(page, tmp_path, "workbench-tier3.png")
    assert world.git.pushes() == []
    await page.click("#wb-modal-form .bk-view-submit")
    await expect(modal).to_be_hidden(timeout=20_000)
    request = gitops.locator('tr[data-request="#1"]')
    await expect(request.locator(".wb-request-state")).to_have_text("open", timeout=30_000)
    await expect(gitops).to_contain_text("rollbot/revert/payment-router-r42-")

    await page.select_option("#wb-user", LEAD[0])
    approve = router.locator('button[data-action-id="tier3_approve"]')
    await expect(approve).to_be_visible(timeout=20_000)
    await approve.click()
    await expect(page.locator("#wb-confirm")).to_contain_text("Approve the Tier 3 revert?")
    await page.click("#wb-confirm-ok")
    await expect(request.locator(".wb-request-state")).to_have_text("merged", timeout=30_000)
    await expect(router).to_contain_text("Tier 3 done, verified", timeout=60_000)
    merged = world.code_host.pulls(sim_world.GITOPS_PROJECT)[0]["merge_commit_sha"]
    await expect(gitops.locator(".wb-sync")).to_contain_text("Synced")
    await expect(gitops).to_contain_text(f"revision {merged[:12]}", timeout=30_000)
    assert errors == []
