"""`/release` and the App Home (bot.slack.listeners.releases), over real HTTP.

The Bolt app is built by bot.slack.app.create_bolt_app and served by uvicorn; its Web API
client points at the Slack sim; requests are signed by SlackSender exactly as Slack signs
them. The release engine is a small in-test `ReleaseDesk` (our own port) recording calls.

Aspects under test:
- help and a malformed command are answered in the ack (the usage), the desk untouched;
- without a release desk, `/release start` is answered in the ack (not enabled), help
  still works, and the Home tab says so;
- `start`: acked at once (before the desk answers), then the desk gets the parsed owner
  and the actor (name from users.info, source slash-command); the reply says started and
  what state the revision is in, with a link to the release thread; a second start says
  "already started … nothing done"; a start the desk refuses (a revision the cluster
  aborted) answers the desk's words, escaped, and says nothing was done;
- `status` of an unknown service: the desk's UnknownService becomes a message listing the
  known services; of a known one, the status blocks (valid Block Kit);
- `list` answers the list blocks; `winner` confirms with the experiment ticket's due date;
- an unexpected error in the desk reaches the user as an error id, not silence;
- `app_home_opened` (Home tab) publishes the home view for that user (views.publish in
  the sim, valid blocks, the same view id when opened again, which carries the view);
  the Messages tab publishes nothing;
- forged signatures: 401 for the command and the event, and nothing runs;
- the sim's views.publish answers like Slack: the published view, invalid_arguments past
  100 blocks, not_enabled, hash_conflict.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.actions import Responder
from bot.adapters.slack import SlackChat
from bot.core.errors import UnknownService
from bot.core.model import (
    Actor,
    ChecklistItem,
    Release,
    ReleasePhase,
    ReleaseView,
    TicketKind,
    TicketView,
)
from bot.releases import RevisionAborted
from bot.runtime.work import WorkQueue
from bot.settings import ServiceSettings
from bot.sim.slack import SlackSender, SlackSim, block_errors
from bot.slack.app import create_bolt_app
from bot.slack.listeners import Deps, ReleaseDesk
from tests.plugins.slack import bolt_on_uvicorn

pytestmark = pytest.mark.timeout(60)

ONCALL = ("U0ONCALL", "oncall-engineer")
THREAD = "https://payments.slack.com/archives/C0PAYDEPLOY/p1715333400000100"
JIRA = "https://jira.example.com/browse/"


class Desk:
    """A ReleaseDesk that records its calls; `gate` holds `start` until set."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.views: dict[str, ReleaseView] = {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: BaseException | None = None

    def _view(self, service: str, version: str, actor: Actor, owner: str | None) -> ReleaseView:
        now = datetime.now(UTC)
        tickets = tuple(
            TicketView(
                kind=kind,
                summary=f"{kind.value} for {service}",
                state="filed",
                key=f"PAY-{i + 1}",
                url=f"{JIRA}PAY-{i + 1}",
                due=None if kind is TicketKind.REMOVE_EXPERIMENT_FLAG else date(2030, 1, 1),
                provisional=True,
                status="To Do",
            )
            for i, kind in enumerate(TicketKind)
        )
        return ReleaseView(
            release=Release(
                id=f"{service}@{version}",
                service=service,
                version=version,
                phase=ReleasePhase.STARTED,
                started_at=now,
                clock_started_at=now,
                source=actor.source,
                started_by=actor.id,
                owner=owner,
            ),
            tickets=tickets,
            checklist=(ChecklistItem("Runbook present", True, "runbooks/payment-router.md"),),
            timezone="Europe/Berlin",
            thread_link=THREAD,
        )

    def _check(self, service: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if service not in ("payment-router", "checkout-api"):
            raise UnknownService(service, ["checkout-api", "payment-router"])

    async def start(
        self, service: str, version: str, *, actor: Actor, owner: str | None
    ) -> tuple[bool, ReleaseView]:
        self.calls.append(("start", service, version, actor, owner))
        await self.gate.wait()
        self._check(service)
        key = f"{service}@{version}"
        if key in self.views:
            return False, self.views[key]
        self.views[key] = self._view(service, version, actor, owner)
        return True, self.views[key]

    async def status(self, service: str) -> list[ReleaseView]:
        self.calls.append(("status", service))
        self._check(service)
        return [v for v in self.views.values() if v.release.service == service]

    async def list_active(self) -> list[ReleaseView]:
        self.calls.append(("list_active",))
        return list(self.views.values())

    async def declare_winner(self, service: str, variant: str, *, actor: Actor) -> ReleaseView:
        self.calls.append(("declare_winner", service, variant, actor))
        self._check(service)
        view = next(v for v in self.views.values() if v.release.service == service)
        due = datetime.now(UTC).date() + timedelta(days=14)
        tickets = tuple(
            dataclasses.replace(t, due=due, provisional=False)
            if t.kind is TicketKind.REMOVE_EXPERIMENT_FLAG
            else t
            for t in view.tickets
        )
        release = dataclasses.replace(view.release, winner=variant, winner_at=datetime.now(UTC))
        view = dataclasses.replace(view, release=release, tickets=tickets)
        self.views[release.id] = view
        return view


@dataclasses.dataclass
class Bot:
    sender: SlackSender
    sim: SlackSim
    desk: Desk | None

    async def release(self, text: str, *, bad_signature: bool = False) -> Any:
        return await self.sender.slash_command(
            ONCALL[0], ONCALL[1], text, command="/release", bad_signature=bad_signature
        ).send()

    async def reply(self, n: int = 1) -> dict[str, Any]:
        """The n-th body the bot sent to a response_url (1-based), waiting for it."""
        responses = await self.sim.wait_for(
            lambda: len(self.sim.responses) >= n and self.sim.responses, timeout=10
        )
        return responses[n - 1].body


@contextlib.asynccontextmanager
async def serve(
    sim: SlackSim, bot_token: str, signing_secret: str, desk: Desk | None
) -> AsyncIterator[Bot]:
    client = AsyncWebClient(token=bot_token, base_url=sim.api_url)
    chat = SlackChat(client)
    work = WorkQueue(workers=2)
    # The responder answers who may start a release or declare a winner (Tier 1's guard):
    # the owners group S0PAYMENTS, of which ONCALL is a member. /rollback is registered too
    # but not exercised here: the responder needs no other collaborators until it is.
    owned = {"owners": {"slack_usergroup": "S0PAYMENTS"}}
    responder = Responder(
        catalog={
            name: ServiceSettings(
                namespace="payments", rollout=name, channel="#payments-deploys", **owned
            )
            for name in ("payment-router", "checkout-api")
        },
        rollouts=cast(Any, None),
        chat=chat,
        store=cast(Any, None),
        cards=cast(Any, None),
    )
    deps = Deps(
        responder=responder,
        chat=chat,
        work=work,
        releases=cast(ReleaseDesk, desk) if desk is not None else None,
    )
    app = create_bolt_app(signing_secret=signing_secret, client=client, deps=deps)
    async with bolt_on_uvicorn(app) as url:
        try:
            yield Bot(SlackSender(url, signing_secret, sim=sim), sim, desk)
        finally:
            await work.close(drain_timeout=5)


@pytest.fixture
async def bot(slack_sim: SlackSim, bot_token: str, signing_secret: str) -> AsyncIterator[Bot]:
    async with serve(slack_sim, bot_token, signing_secret, Desk()) as b:
        yield b


def ack_text(response: Any) -> str:
    """What the ack says: Bolt answers `ack(text=…)` as plain text, with blocks as JSON."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return str(response.json()["text"])
    return str(response.text)


def desk_of(bot: Bot) -> Desk:
    assert bot.desk is not None
    return bot.desk


# ── answered in the ack ──────────────────────────────────────────────────────


async def test_help_in_the_ack(bot: Bot) -> None:
    for text in ("help", ""):
        response = await bot.release(text)
        assert response.status_code == 200
        body = response.json()
        assert body["text"].startswith("Usage: `/release start SERVICE VERSION")
        assert "`/release winner SERVICE VARIANT`" in json.dumps(body["blocks"])
        assert block_errors(body["blocks"]) == []
    assert desk_of(bot).calls == []
    assert bot.sim.responses == []


async def test_parse_error_in_the_ack_with_usage(bot: Bot) -> None:
    response = await bot.release("deploy payment-router 1.13.0")
    assert response.status_code == 200
    text = ack_text(response)
    assert "Unknown `/release` action `deploy`" in text
    assert "Usage: `/release start SERVICE VERSION [@owner|email]`" in text
    response = await bot.release("start payment-router 1.13.0 bob")
    assert "`bob` is not an owner" in ack_text(response)
    assert desk_of(bot).calls == []


async def test_without_a_release_desk(
    slack_sim: SlackSim, bot_token: str, signing_secret: str
) -> None:
    async with serve(slack_sim, bot_token, signing_secret, None) as bot:
        response = await bot.release("start payment-router 1.13.0")
        assert "Release tracking is not enabled" in ack_text(response)
        assert "Usage:" in ack_text(await bot.release("help"))
        assert (await bot.sender.app_home_opened(ONCALL[0]).send()).status_code == 200
        (view,) = await slack_sim.wait_for(lambda: slack_sim.published_views(ONCALL[0]))
        assert "Release tracking is not enabled here." in json.dumps(view["blocks"])
    assert slack_sim.responses == []


# ── start ────────────────────────────────────────────────────────────────────


async def test_start_acks_first_then_starts_once(bot: Bot) -> None:
    desk = desk_of(bot)
    desk.gate.clear()  # the desk does not answer until the ack has been seen
    started = time.monotonic()
    response = await bot.release("start Payment-Router 1.13.0 <@U0LEAD|payments-lead>")
    assert response.status_code == 200
    assert time.monotonic() - started < 3.0
    assert ack_text(response) == (
        ":hourglass_flowing_sand: Starting release payment-router 1.13.0…"
    )
    assert bot.sim.responses == []
    await bot.sim.wait_for(lambda: desk.calls)
    desk.gate.set()

    body = await bot.reply(1)
    assert desk.calls == [
        (
            "start",
            "payment-router",
            "1.13.0",
            Actor("U0ONCALL", "On-call Engineer", "slash-command"),
            "<@U0LEAD>",
        )
    ]
    assert body["response_type"] == "ephemeral"
    # What state the revision is in, first (the desk's release is not bound yet).
    assert body["text"].startswith(
        ":rocket: Release payment-router 1.13.0 started: the Rollout does not run 1.13.0 "
        "yet; rollbot follows it from the moment it does. Its cleanup tickets and checklist "
        "are in the release thread"
    )
    assert f"<{THREAD}|open the thread>" in body["text"]

    await bot.release("start payment-router 1.13.0")
    again = await bot.reply(2)
    assert "payment-router 1.13.0 was already started" in again["text"]
    assert (
        "by <@U0ONCALL> via Slack (phase Started (revision not seen yet)); nothing done."
        in (again["text"])
    )
    assert desk.calls[-1][-1] is None  # no owner given the second time
    assert len(desk.views) == 1


async def test_a_start_the_desk_refuses_says_why_and_how_to_go_on(bot: Bot) -> None:
    desk = desk_of(bot)
    desk.fail_with = RevisionAborted(
        "payment-router 1.13.0 is revision 42 of the Rollout `payments/payment-router`, and "
        "the cluster aborted it <!here>. Nothing was recorded and no cleanup tickets were "
        "filed. To go on, retry the rollout (`/rollback payment-router retry`)."
    )
    await bot.release("start payment-router 1.13.0")
    body = await bot.reply(1)
    assert body["response_type"] == "ephemeral"
    assert body["text"].startswith(":warning: payment-router 1.13.0 is revision 42 of the ")
    assert "aborted it &lt;!here&gt;." in body["text"]  # the desk's words, escaped
    assert "(`/rollback payment-router retry`)" in body["text"]
    assert "error id" not in body["text"]  # a refusal, not a crash
    assert desk.views == {}


async def test_start_with_an_email_owner(bot: Bot) -> None:
    await bot.release("start checkout-api 2.0.0 <mailto:lead@example.com|lead@example.com>")
    await bot.reply(1)
    assert desk_of(bot).calls[0][-1] == "lead@example.com"


# ── status, list, winner ─────────────────────────────────────────────────────


async def test_status_of_an_unknown_service_lists_the_known_ones(bot: Bot) -> None:
    response = await bot.release("status nope")
    assert response.status_code == 200
    body = await bot.reply(1)
    assert body["text"] == (
        ":warning: Unknown service `nope`. Known services: `checkout-api`, `payment-router`."
    )
    assert body["response_type"] == "ephemeral"
    assert desk_of(bot).calls == [("status", "nope")]


async def test_status_list_and_winner(bot: Bot) -> None:
    desk = desk_of(bot)
    await bot.release("start payment-router 1.13.0")
    await bot.reply(1)

    await bot.release("status payment-router")
    status = await bot.reply(2)
    assert status["response_type"] == "ephemeral"
    assert block_errors(status["blocks"]) == []
    shown = json.dumps(status["blocks"], ensure_ascii=False)
    assert "*payment-router 1.13.0*" in shown
    assert f"<{JIRA}PAY-1|PAY-1>" in shown
    assert "not yet (due dates provisional)" in shown
    assert status["text"].startswith("payment-router 1.13.0: Started")

    await bot.release("list")
    listed = await bot.reply(3)
    assert block_errors(listed["blocks"]) == []
    assert "*Releases in flight* (1)" in json.dumps(listed["blocks"], ensure_ascii=False)

    response = await bot.release("winner payment-router treatment-b")
    assert "Declaring `treatment-b` the winner" in ack_text(response)
    won = await bot.reply(4)
    due = datetime.now(UTC).date() + timedelta(days=14)
    assert "`treatment-b` is the winner of payment-router 1.13.0's experiment" in won["text"]
    assert f"<{JIRA}PAY-4|PAY-4> is now due {due.isoformat()}" in won["text"]
    assert desk.calls[1:] == [
        ("status", "payment-router"),
        ("list_active",),
        (
            "declare_winner",
            "payment-router",
            "treatment-b",
            Actor("U0ONCALL", "On-call Engineer", "slash-command"),
        ),
    ]


async def test_an_unexpected_error_reaches_the_user_with_an_id(bot: Bot) -> None:
    desk_of(bot).fail_with = RuntimeError("database on fire")
    await bot.release("status payment-router")
    body = await bot.reply(1)
    assert body["text"].startswith(":boom: Something went wrong inside rollbot (error id `")
    assert "database on fire" not in body["text"]


# ── the App Home ─────────────────────────────────────────────────────────────


async def test_app_home_opened_publishes_the_home_view(bot: Bot) -> None:
    await bot.release("start payment-router 1.13.0")
    await bot.reply(1)
    response = await bot.sender.app_home_opened(ONCALL[0]).send()
    assert response.status_code == 200
    (first,) = await bot.sim.wait_for(lambda: bot.sim.published_views(ONCALL[0]))
    assert first["type"] == "home" and first["id"].startswith("V")
    shown = json.dumps(first["blocks"], ensure_ascii=False)
    assert "Releases in flight" in shown and "*payment-router 1.13.0*" in shown
    assert f"<{JIRA}PAY-1|PAY-1>" in shown
    (call,) = bot.sim.calls_to("views.publish")
    assert call.response["ok"] and call.body["user_id"] == ONCALL[0]

    # Opened again: Slack's event carries the current view; the view keeps its id.
    request = bot.sender.app_home_opened(ONCALL[0])
    assert json.loads(request.body)["event"]["view"]["id"] == first["id"]
    assert (await request.send()).status_code == 200
    views = await bot.sim.wait_for(
        lambda: len(bot.sim.published_views(ONCALL[0])) == 2 and bot.sim.published_views(ONCALL[0])
    )
    assert views[1]["id"] == first["id"] and views[1]["hash"] != first["hash"]


async def test_messages_tab_publishes_nothing(bot: Bot) -> None:
    response = await bot.sender.app_home_opened(ONCALL[0], tab="messages").send()
    assert response.status_code == 200
    await bot.sender.app_home_opened("U0OUTSIDER").send()  # a marker: this one is published
    await bot.sim.wait_for(lambda: bot.sim.published_views("U0OUTSIDER"))
    assert bot.sim.published_views(ONCALL[0]) == []


async def test_empty_home(bot: Bot) -> None:
    await bot.sender.app_home_opened(ONCALL[0]).send()
    (view,) = await bot.sim.wait_for(lambda: bot.sim.published_views(ONCALL[0]))
    assert "Nothing in flight right now" in json.dumps(view["blocks"])


# ── signatures ───────────────────────────────────────────────────────────────


async def test_forged_signatures_are_refused(bot: Bot) -> None:
    forged = await bot.release("start payment-router 1.13.0", bad_signature=True)
    assert forged.status_code == 401
    home = await bot.sender.app_home_opened(ONCALL[0], bad_signature=True).send()
    assert home.status_code == 401
    stale = await bot.sender.app_home_opened(ONCALL[0], timestamp=int(time.time()) - 600).send()
    assert stale.status_code == 401
    # A genuine request after them, as a marker: once it is done, the forged ones would be.
    assert (await bot.sender.app_home_opened("U0OUTSIDER").send()).status_code == 200
    await bot.sim.wait_for(lambda: bot.sim.published_views("U0OUTSIDER"))
    assert desk_of(bot).calls == [("list_active",)]
    assert [c.body["user_id"] for c in bot.sim.calls_to("views.publish")] == ["U0OUTSIDER"]
    assert bot.sim.responses == []


# ── the sim's views.publish ──────────────────────────────────────────────────


async def test_sim_views_publish_like_slack(slack_sim: SlackSim, bot_token: str) -> None:
    client = AsyncWebClient(token=bot_token, base_url=slack_sim.api_url)
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
    }
    published = await client.views_publish(user_id=ONCALL[0], view=home)
    view = published["view"]
    assert published["ok"] and view["type"] == "home" and view["team_id"] == "T0PAYMENTS"
    assert view["blocks"][0]["block_id"]  # Slack assigns block ids
    assert {"id", "hash", "root_view_id", "app_id", "bot_id", "state"} <= set(view)

    with pytest.raises(SlackApiError) as err:
        await client.views_publish(
            user_id=ONCALL[0], view={"type": "home", "blocks": [{"type": "divider"}] * 101}
        )
    assert err.value.response["error"] == "invalid_arguments"
    assert "no more than 100 items" in json.dumps(err.value.response["response_metadata"])
    await client.views_publish(
        user_id=ONCALL[0], view={"type": "home", "blocks": [{"type": "divider"}] * 100}
    )

    with pytest.raises(SlackApiError) as err:
        await client.views_publish(user_id=ONCALL[0], view=home, hash="1.stale")
    assert err.value.response["error"] == "hash_conflict"
    current = slack_sim.published_views(ONCALL[0])[-1]
    await client.views_publish(user_id=ONCALL[0], view=home, hash=current["hash"])

    with pytest.raises(SlackApiError) as err:
        await client.views_publish(user_id=ONCALL[0], view={"type": "modal", "blocks": []})
    assert err.value.response["error"] == "invalid_arguments"
    slack_sim.home_tab_enabled = False
    with pytest.raises(SlackApiError) as err:
        await client.views_publish(user_id=ONCALL[0], view=home)
    assert err.value.response["error"] == "not_enabled"
    assert len(slack_sim.published_views(ONCALL[0])) == 3
    assert slack_sim.home_view(ONCALL[0]) == slack_sim.published_views(ONCALL[0])[-1]


def test_app_home_opened_event_shape(slack_sim: SlackSim, signing_secret: str) -> None:
    """Slack's documented event_callback and app_home_opened keys."""
    sender = SlackSender("http://unused/slack/events", signing_secret, sim=slack_sim)
    request = sender.app_home_opened(ONCALL[0])
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert {"token", "team_id", "api_app_id", "event", "type", "event_id", "event_time"} <= set(
        body
    )
    assert body["type"] == "event_callback" and body["event_id"].startswith("Ev")
    event = body["event"]
    assert event["type"] == "app_home_opened" and event["tab"] == "home"
    assert event["user"] == ONCALL[0] and event["channel"].startswith("D")
    assert "view" not in event  # nothing published yet
    assert request.headers["X-Slack-Signature"] == sender.sign(
        request.body, int(request.headers["X-Slack-Request-Timestamp"])
    )
