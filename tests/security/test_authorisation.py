"""Issue 12, findings 7 and 12: who may acknowledge the page, start a release, declare a winner.

End to end: signed slash commands reach the real Bolt app (`bot.wiring.build`, served as
`rollbot serve` serves it), which talks to the Slack, PagerDuty and Jira sims through the
real clients. The guard is Tier 1's (bot.core.policy): the person on call for the service's
escalation policy (PagerDuty, matched to Slack by email) or a member of its owners group.

Aspects under test:
- an outsider's `/rollback payment-router ack` is refused ephemerally, naming who may, and
  audited; nothing reaches PagerDuty (the incident stays triggered; the Events API got no
  acknowledge, and no note names them, even after later acks went through the same outbox);
  an owner who is not on call may ack, and so may an on-call who is not an owner;
- an outsider's `/release start` is refused and audited: no release is written and Jira
  sees no ticket; an owner's start then files the tickets (so the outsider's wrote nothing:
  the owner's is not "already started"); an outsider's `/release winner` is refused and the
  release keeps no winner; the on-call's is taken. `/release status` stays open to anyone;
- the table: (on call?, owner?) × (ack, release start, release winner): allowed exactly
  when on call or owner, through the app and in the pure policy (whose refusals name the
  on-call and the owners group);
- the on-call cache (issue 17): someone taken off call keeps the right only as long as
  rollbot's cached answer, and a signed PagerDuty webhook that may tell of a person's
  doing ends it at once (PagerDuty is asked again); an unsigned one, or an integration's
  event (rollbot's own acknowledge coming back), changes nothing. (The TTL itself,
  counted from when PagerDuty was asked, is tested on the adapter:
  tests/integration/adapters.)
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bot.core import policy
from bot.core.errors import NotAuthorised
from bot.core.model import Actor
from bot.core.signatures import pagerduty_signature
from bot.sim.harness import (
    LEAD,
    ONCALL,
    OUTSIDER,
    PD_ONCALL,
    PD_POLICY,
    PD_WEBHOOK_SECRET,
    USERGROUP,
    SimWorld,
)

pytestmark = pytest.mark.timeout(150)

KEY = "rollbot/payment-router/payments/payment-router@42"
PAGED = ("U0PAGED", "paged-engineer")  # on call in PagerDuty, not in the owners group
PD_PAGED = "PPAGED01"
EXPERIMENT = "payments.dynamic-currency.enabled"
# (Slack user, on call?, owner?): LEAD is put in the owners group, PAGED on call.
PEOPLE = (
    (ONCALL, True, True),
    (PAGED, True, False),
    (LEAD, False, True),
    (OUTSIDER, False, False),
)


def _world() -> SimWorld:
    return SimWorld(
        speed=600,
        pagerduty=True,
        jira=True,
        settings={"services": {"payment-router": {"flags": {"experiment": EXPERIMENT}}}},
    )


def _cast(world: SimWorld) -> None:
    """Who is who, before rollbot has asked (it caches the owners group's members for a
    minute, and who is on call for `pagerduty.on_call_cache_seconds`)."""
    world.slack.add_user(PAGED[0], PAGED[1], real_name="Paged Engineer", email="paged@example.com")
    world.pd.add_user(PD_PAGED, "Paged Engineer", "paged@example.com")
    world.pd.set_oncall(PD_POLICY, [PD_ONCALL, PD_PAGED])
    world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])


async def _reply(world: SimWorld, user: tuple[str, str], text: str, command: str) -> str:
    """Send a signed slash command; the text of the one reply sent to its response_url."""
    before = len(world.slack.responses)
    response = await world.sender.slash_command(user[0], user[1], text, command=command).send()
    assert response.status_code == 200, response.text
    await world.wait_for(
        lambda: len(world.slack.responses) > before, timeout=20, what=f"the reply to {text!r}"
    )
    return json.dumps(world.slack.responses[before].body, ensure_ascii=False)


async def _incident(world: SimWorld) -> dict[str, Any]:
    await world.wait_for_card()
    found = await world.wait_for(
        lambda: world.pd.incident_by_key(KEY), timeout=30, what="the PagerDuty incident"
    )
    assert isinstance(found, dict)
    return found


def _acks(world: SimWorld) -> int:
    """Acknowledge events the PagerDuty Events API received."""
    return sum(1 for e in world.pd.events() if e.get("event_action") == "acknowledge")


def _noted(world: SimWorld, incident_id: str, name: str) -> bool:
    return any(
        f"Acknowledged in Slack by {name}" in n["content"] for n in world.pd.notes(incident_id)
    )


async def _refusals(world: SimWorld, action: str) -> list[str]:
    return [
        e.entry.actor
        for e in await world.rollbot.store.audit_entries()
        if e.entry.action == action and e.entry.result == "refused"
    ]


async def _ack_allowed(world: SimWorld, incident_id: str, user: tuple[str, str]) -> None:
    sent = _acks(world)
    reply = await _reply(world, user, "payment-router ack", "/rollback")
    assert "Acknowledging the PagerDuty incident" in reply, reply
    await world.wait_for(
        lambda: _noted(world, incident_id, user[1]), what=f"the note naming {user[1]}"
    )
    # The note is queued after the event, so the event has been sent by now.
    assert _acks(world) == sent + 1


async def _ack_refused(world: SimWorld, incident_id: str, user: tuple[str, str]) -> None:
    reply = await _reply(world, user, "payment-router ack", "/rollback")
    assert ":no_entry:" in reply and "may not ack payment-router" in reply, reply
    assert "<@U0ONCALL>" in reply and f"<!subteam^{USERGROUP}>" in reply  # whom to ask
    assert any(user[0] in actor for actor in await _refusals(world, "ack"))


# ── finding 7: acknowledging the page ──────────────────────────────────────────────────────


async def test_an_outsider_cannot_acknowledge_the_page_an_owner_and_the_on_call_can() -> None:
    async with _world() as world:
        _cast(world)
        incident = await _incident(world)

        await _ack_refused(world, incident["id"], OUTSIDER)
        # Refused before anything was queued: the page still escalates.
        assert world.pd.incident(incident["id"])["status"] == "triggered"
        assert _acks(world) == 0

        await _ack_allowed(world, incident["id"], LEAD)  # an owner, not on call
        assert world.pd.incident(incident["id"])["status"] == "acknowledged"
        await _ack_allowed(world, incident["id"], PAGED)  # on call, not an owner
        # The outbox drained both acks after the refusal: nothing of the outsider's in it.
        assert _acks(world) == 2
        assert not _noted(world, incident["id"], OUTSIDER[1])


# ── finding 12: /release start and /release winner ─────────────────────────────────────────


async def _release(world: SimWorld, version: str) -> Any:
    return await world.rollbot.store.get_release(f"payment-router@{version}")


def _tickets_of(world: SimWorld, version: str) -> int:
    label = f"rollbot-payment-router-{version}"
    return sum(1 for i in world.jira.issues.values() if label in i["fields"]["labels"])


async def _start_allowed(world: SimWorld, user: tuple[str, str], version: str) -> None:
    reply = await _reply(world, user, f"start payment-router {version}", "/release")
    assert f"Release payment-router {version} started" in reply, reply
    release = await _release(world, version)
    assert release is not None and release.started_by == user[0]
    await world.wait_for(lambda: _tickets_of(world, version) == 4, what=f"{version}'s tickets")


async def _start_refused(world: SimWorld, user: tuple[str, str], version: str) -> None:
    creates = world.jira.created_count
    reply = await _reply(world, user, f"start payment-router {version}", "/release")
    assert ":no_entry:" in reply and "may not release.start payment-router" in reply, reply
    assert await _release(world, version) is None
    assert world.jira.created_count == creates
    assert any(user[0] in actor for actor in await _refusals(world, "release.start"))


async def _winner_allowed(world: SimWorld, user: tuple[str, str], variant: str) -> None:
    reply = await _reply(world, user, f"winner payment-router {variant}", "/release")
    assert f"`{variant}` is the winner" in reply, reply
    (release, *_) = await world.rollbot.store.list_releases(service="payment-router")
    assert release.winner == variant


async def _winner_refused(world: SimWorld, user: tuple[str, str], variant: str) -> None:
    reply = await _reply(world, user, f"winner payment-router {variant}", "/release")
    assert ":no_entry:" in reply and "may not release.winner payment-router" in reply, reply
    releases = await world.rollbot.store.list_releases(service="payment-router")
    assert all(r.winner != variant for r in releases)
    assert any(user[0] in actor for actor in await _refusals(world, "release.winner"))


async def test_an_outsider_cannot_start_a_release_or_declare_its_winner() -> None:
    async with _world() as world:
        _cast(world)

        await _start_refused(world, OUTSIDER, "1.13.0")
        assert world.jira.requests_to("POST", "/rest/api/2/issue") == []
        # The same version by an owner starts afresh: the outsider's left nothing behind.
        await _start_allowed(world, LEAD, "1.13.0")
        assert world.jira.created_count == 4

        await _winner_refused(world, OUTSIDER, "treatment")
        await _winner_allowed(world, PAGED, "treatment")  # on call, not an owner

        # Reading stays open to everyone in the channel.
        status = await _reply(world, OUTSIDER, "status payment-router", "/release")
        assert "payment-router 1.13.0" in status and ":no_entry:" not in status


# ── the table ─────────────────────────────────────────────────────────────────────────────


async def test_on_call_or_owner_may_each_action_nobody_else() -> None:
    async with _world() as world:
        _cast(world)
        incident = await _incident(world)
        for n, (user, on_call, owner) in enumerate(PEOPLE):
            allowed = on_call or owner
            version, variant = f"2.0.{n}", f"variant-{n}"
            if allowed:
                await _ack_allowed(world, incident["id"], user)
                await _start_allowed(world, user, version)
                await _winner_allowed(world, user, variant)
            else:
                await _ack_refused(world, incident["id"], user)
                await _start_refused(world, user, version)
                await _winner_refused(world, user, variant)
        assert _acks(world) == sum(1 for _, on_call, owner in PEOPLE if on_call or owner)


@pytest.mark.parametrize("action", ["ack", "release.start", "release.winner"])
@pytest.mark.parametrize(
    ("on_call", "owner"), [(a, b) for a in (True, False) for b in (True, False)]
)
def test_the_policy_guards_them_like_tier_1(action: str, on_call: bool, owner: bool) -> None:
    decision = policy.authorise(
        actor=Actor("U0ASKER", "asker", "slash-command"),
        service="payment-router",
        action=action,
        owners_usergroup=USERGROUP,
        usergroup_members={"U0ASKER"} if owner else {"U0LEAD"},
        escalation_policy=PD_POLICY,
        on_call={"U0ASKER"} if on_call else {"U0ONCALL"},
    )
    assert decision.allowed is (on_call or owner), decision.reason
    assert not decision.break_glass and not decision.break_glass_possible
    if not decision.allowed:
        assert f"may not {action} payment-router" in decision.reason
        assert "<@U0ONCALL>" in decision.reason and f"<!subteam^{USERGROUP}>" in decision.reason


# ── issue 17: the on-call cache never outlives what PagerDuty says ─────────────────────────


async def test_a_signed_pagerduty_webhook_ends_a_cached_on_call_grant() -> None:
    settings = {"pagerduty": {"on_call_cache_seconds": 300}}
    async with SimWorld(speed=600, pagerduty=True, settings=settings) as world:
        # Only this test's deliveries reach rollbot (the incident's own would drop the cache).
        world.pd.unsubscribe(world.pd_subscription)
        _cast(world)
        responder = world.rollbot.responder
        paged = Actor(PAGED[0], PAGED[1], "slash-command")
        assert (await responder.authorise("payment-router", "ack", paged)).allowed
        asked = len(world.pd.requests_to("/oncalls"))

        world.pd.set_oncall(PD_POLICY, [PD_ONCALL])  # taken off call
        # Within the TTL and without a word from PagerDuty, the cached answer stands.
        assert (await responder.authorise("payment-router", "ack", paged)).allowed
        assert len(world.pd.requests_to("/oncalls")) == asked

        def signed(body: bytes) -> dict[str, str]:
            return {"X-PagerDuty-Signature": pagerduty_signature(PD_WEBHOOK_SECRET, body)}

        echo = json.dumps(
            {
                "event": {
                    "id": "01ECHOCACHE",
                    "event_type": "incident.acknowledged",
                    "agent": {"id": "PINT1", "type": "inbound_integration_reference"},
                    "data": {"id": "PNOINCIDENT", "type": "incident"},
                }
            }
        ).encode()
        ping = json.dumps(
            {"event": {"id": "01PINGCACHE", "event_type": "pagey.ping", "data": {}}}
        ).encode()
        url = f"{world.url}/webhooks/pagerduty"
        async with httpx.AsyncClient(timeout=10) as client:
            forged = await client.post(
                url, content=ping, headers={"X-PagerDuty-Signature": "v1=" + "0" * 64}
            )
            assert forged.status_code == 401
            # An integration's event (rollbot's own acknowledge coming back) tells nothing
            # of people: kept.
            assert (await client.post(url, content=echo, headers=signed(echo))).status_code == 202
            assert (await responder.authorise("payment-router", "ack", paged)).allowed
            assert len(world.pd.requests_to("/oncalls")) == asked  # nothing dropped

            assert (await client.post(url, content=ping, headers=signed(ping))).status_code == 202
        with pytest.raises(NotAuthorised, match="may not ack payment-router"):
            await responder.authorise("payment-router", "ack", paged)
        assert len(world.pd.requests_to("/oncalls")) == asked + 1
        assert any(PAGED[0] in actor for actor in await _refusals(world, "ack"))
