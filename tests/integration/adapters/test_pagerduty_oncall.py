"""PagerDutyOnCall (bot.adapters.pagerduty): the real `pagerduty` client against PagerDutySim.

Aspects under test:
- on-call emails of an escalation policy, every level, across more than one page, and only
  that policy's; a bare user reference is completed with GET /users/{id};
- the requests are what the real API expects: GET /oncalls with `escalation_policy_ids[]`,
  `include[]=users`, classic pagination (`limit`, `offset`), `Authorization: Token token=…`,
  `Accept: application/vnd.pagerduty+json;version=2`, over https with the sim's CA;
- 429 with Retry-After is retried at most `max_429_retries` times (counted in the sim's
  recorded requests, 0 included), then Unreachable carrying the Retry-After delay; a 429
  that clears within the bound is absorbed;
- 5xx → Unreachable at once (no retry); 401 → Forbidden with PagerDuty's message;
- the sim down (connection refused) → Unreachable within a second;
- answers are cached for the TTL (injected clock): no second request until it expires;
  an answer's age counts from when it was asked, so a slow answer is not kept longer
  (someone taken off call can act at most the TTL after PagerDuty last said otherwise);
  TTL 0 asks every time; `forget` drops the cache, and an answer in flight while it is
  called is returned but not kept; the TTL is `pagerduty.on_call_cache_seconds`;
- a plain http base URL is refused up front (the client insists on https);
- the sim itself: GET /users?query=, GET /users/{id} 404, `earliest`, bad token body.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.adapters.pagerduty import PagerDutyOnCall
from bot.core.errors import Forbidden, Unreachable
from bot.settings import load_settings
from bot.sim.pagerduty import PagerDutySim
from bot.wiring.factories import make_on_call
from tests.helpers import FakeClock

TOKEN = "u+test-pagerduty-token"
POLICY = "PESC123"


@pytest.fixture(scope="module")
def module_sim() -> Iterator[PagerDutySim]:
    with PagerDutySim(token=TOKEN) as sim:
        yield sim


@pytest.fixture
def pd_sim(module_sim: PagerDutySim) -> PagerDutySim:
    """The module's sim, reseeded: five on call for PESC123 over two levels, one elsewhere."""
    sim = module_sim
    sim.reset()  # a fresh world for every test, same server
    for i in range(7):
        sim.add_user(f"PUSER{i}", f"Engineer {i}", f"engineer{i}@example.com")
    sim.set_oncall(POLICY, ["PUSER0", "PUSER1", "PUSER2"], level=1)
    sim.set_oncall(POLICY, ["PUSER3", "PUSER4"], level=2, schedule_id="PSCHED1")
    sim.set_oncall("POTHER", ["PUSER5"], level=1)
    return sim


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(sim: PagerDutySim, clock: FakeClock | None = None, **kw: object) -> PagerDutyOnCall:
    options: dict[str, object] = {"backoff": 0.02, "page_size": 2, "ttl": 30.0}
    options.update(kw)
    return PagerDutyOnCall(
        api_token=str(options.pop("api_token", TOKEN)),
        base_url=sim.url,
        ca_file=sim.ca_file,
        clock=clock or FakeClock(),
        **options,  # type: ignore[arg-type]
    )


async def test_on_call_emails_across_pages(pd_sim: PagerDutySim) -> None:
    on_call = make(pd_sim)
    emails = await on_call.on_call_emails(POLICY)
    assert emails == {f"engineer{i}@example.com" for i in range(5)}

    requests = pd_sim.requests_to("/oncalls")
    assert len(requests) == 3  # 5 on-calls, 2 per page
    assert [r.params("offset") for r in requests] == [["0"], ["2"], ["4"]]
    for r in requests:
        assert r.method == "GET"
        assert r.params("escalation_policy_ids[]") == [POLICY]
        assert r.params("include[]") == ["users"]
        assert r.params("limit") == ["2"]
        assert r.headers["authorization"] == f"Token token={TOKEN}"
        assert r.headers["accept"] == "application/vnd.pagerduty+json;version=2"
        assert r.status == 200
    on_call.close()


async def test_default_page_size_is_one_request(pd_sim: PagerDutySim) -> None:
    on_call = make(pd_sim, page_size=100)
    assert len(await on_call.on_call_emails(POLICY)) == 5
    assert [r.params("limit") for r in pd_sim.requests_to("/oncalls")] == [["100"]]


async def test_nobody_on_call_is_an_empty_set(pd_sim: PagerDutySim) -> None:
    assert await make(pd_sim).on_call_emails("PNOBODY") == frozenset()


async def test_cached_for_ttl(pd_sim: PagerDutySim, clock: FakeClock) -> None:
    on_call = make(pd_sim, clock, page_size=100)
    first = await on_call.on_call_emails(POLICY)
    pd_sim.set_oncall(POLICY, ["PUSER6"], level=1)
    clock.now += 29
    assert await on_call.on_call_emails(POLICY) == first
    assert len(pd_sim.requests_to("/oncalls")) == 1
    clock.now += 2
    assert "engineer6@example.com" in await on_call.on_call_emails(POLICY)
    assert len(pd_sim.requests_to("/oncalls")) == 2


async def test_age_counts_from_the_question(pd_sim: PagerDutySim, clock: FakeClock) -> None:
    """An answer that took 20 s to come is 20 s old when it arrives: kept 10 s more, not 30."""
    on_call = make(pd_sim, clock, page_size=100)
    asking = asyncio.create_task(on_call.on_call_emails(POLICY))
    await asyncio.sleep(0)  # the question is on its way (in the worker thread)
    clock.now += 20  # a slow answer
    first = await asyncio.wait_for(asking, 10)
    pd_sim.set_oncall(POLICY, ["PUSER6"], level=1)
    pd_sim.set_oncall(POLICY, [], level=2, schedule_id="PSCHED1")
    clock.now += 15  # 35 s after the question, 15 s after the answer came
    now = await on_call.on_call_emails(POLICY)
    assert len(pd_sim.requests_to("/oncalls")) == 2  # asked again: the answer was too old
    assert "engineer6@example.com" in now and now != first


async def test_ttl_zero_asks_every_time(pd_sim: PagerDutySim, clock: FakeClock) -> None:
    on_call = make(pd_sim, clock, page_size=100, ttl=0.0)
    await on_call.on_call_emails(POLICY)
    await on_call.on_call_emails(POLICY)
    assert len(pd_sim.requests_to("/oncalls")) == 2


async def test_forget_drops_the_cache(pd_sim: PagerDutySim, clock: FakeClock) -> None:
    on_call = make(pd_sim, clock, page_size=100)
    assert "engineer0@example.com" in await on_call.on_call_emails(POLICY)
    pd_sim.set_oncall(POLICY, ["PUSER6"], level=1)
    on_call.forget()
    assert "engineer0@example.com" not in await on_call.on_call_emails(POLICY)
    assert len(pd_sim.requests_to("/oncalls")) == 2


async def test_an_answer_in_flight_at_forget_is_not_kept(
    pd_sim: PagerDutySim, clock: FakeClock
) -> None:
    on_call = make(pd_sim, clock, page_size=100)
    asking = asyncio.create_task(on_call.on_call_emails(POLICY))
    await asyncio.sleep(0)  # the question is on its way (in the worker thread)
    pd_sim.set_oncall(POLICY, ["PUSER6"], level=1)
    on_call.forget()  # PagerDuty said something changed while it was being asked
    await asyncio.wait_for(asking, 10)  # its asker gets it, whichever state it read
    again = await on_call.on_call_emails(POLICY)
    assert len(pd_sim.requests_to("/oncalls")) == 2  # not answered from the cache
    assert "engineer6@example.com" in again and "engineer0@example.com" not in again


def test_the_ttl_is_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "rollbot.yaml"
    config.write_text("pagerduty: {on_call_cache_seconds: 5}\n")
    settings = load_settings(config, environ={"ROLLBOT_PAGERDUTY__API_TOKEN": TOKEN})
    on_call = make_on_call(settings)
    assert on_call is not None and on_call.ttl == 5.0
    config.write_text("pagerduty: {}\n")
    default = load_settings(config, environ={"ROLLBOT_PAGERDUTY__API_TOKEN": TOKEN})
    assert default.pagerduty.on_call_cache_seconds == 30.0


async def test_429_retried_at_most_max_then_unreachable(pd_sim: PagerDutySim) -> None:
    on_call = make(pd_sim, max_429_retries=2, page_size=100)
    pd_sim.force_status(50, 429, retry_after=7)  # far more than the bound
    started = time.monotonic()
    with pytest.raises(Unreachable) as err:
        await on_call.on_call_emails(POLICY)
    assert time.monotonic() - started < 5.0
    assert err.value.service == "PagerDuty"
    assert err.value.delay == 7
    assert "429" in err.value.message
    assert [r.status for r in pd_sim.requests_to("/oncalls")] == [429, 429, 429]


@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_429_bound_is_exact(pd_sim: PagerDutySim, retries: int) -> None:
    pd_sim.force_status(50, 429, retry_after=1)
    with pytest.raises(Unreachable):
        await make(pd_sim, max_429_retries=retries).on_call_emails(POLICY)
    assert len(pd_sim.requests_to("/oncalls")) == retries + 1


async def test_429_within_the_bound_is_absorbed(pd_sim: PagerDutySim) -> None:
    pd_sim.force_status(2, 429, retry_after=1)
    emails = await make(pd_sim, max_429_retries=2, page_size=100).on_call_emails(POLICY)
    assert len(emails) == 5
    assert [r.status for r in pd_sim.requests_to("/oncalls")] == [429, 429, 200]


async def test_5xx_is_unreachable_without_retry(pd_sim: PagerDutySim) -> None:
    pd_sim.force_status(1, 503)
    with pytest.raises(Unreachable, match="HTTP 503"):
        await make(pd_sim).on_call_emails(POLICY)
    assert len(pd_sim.requests_to("/oncalls")) == 1


async def test_bad_token_is_forbidden(pd_sim: PagerDutySim) -> None:
    with pytest.raises(Forbidden) as err:
        await make(pd_sim, api_token="u+wrong").on_call_emails(POLICY)
    assert err.value.service == "PagerDuty"
    assert "401" in err.value.detail and "Authentication failed" in err.value.detail
    assert [r.status for r in pd_sim.requests_to("/oncalls")] == [401]


async def test_403_is_forbidden(pd_sim: PagerDutySim) -> None:
    pd_sim.force_status(1, 403)
    with pytest.raises(Forbidden, match="Access Denied"):
        await make(pd_sim).on_call_emails(POLICY)


async def test_sim_down_is_unreachable_quickly(pd_sim: PagerDutySim) -> None:
    on_call = make(pd_sim, max_network_retries=1)
    assert await on_call.on_call_emails(POLICY)  # a pooled connection exists
    on_call.forget()
    pd_sim.set_down(True)
    started = time.monotonic()
    with pytest.raises(Unreachable) as err:
        await on_call.on_call_emails(POLICY)
    assert time.monotonic() - started < 1.0
    assert "ConnectError" in err.value.detail or "Connect" in err.value.detail
    pd_sim.set_down(False)
    assert len(await on_call.on_call_emails(POLICY)) == 5  # back on the same port


async def test_bare_user_reference_is_completed(pd_sim: PagerDutySim) -> None:
    """When PagerDuty answers user references despite include[]=users, the adapter reads
    each user with GET /users/{id}."""
    pd_sim.ignore_include = True
    try:
        emails = await make(pd_sim, page_size=100).on_call_emails(POLICY)
    finally:
        pd_sim.ignore_include = False
    assert emails == {f"engineer{i}@example.com" for i in range(5)}
    assert sorted(r.path for r in pd_sim.requests if r.path.startswith("/users/")) == [
        f"/users/PUSER{i}" for i in range(5)
    ]


def test_http_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        PagerDutyOnCall(api_token=TOKEN, base_url="http://127.0.0.1:9")


# ---------------------------------------------------------------------- the sim's shapes


def _get(sim: PagerDutySim, path: str, token: str = TOKEN, **params: object) -> httpx.Response:
    with httpx.Client(
        base_url=sim.url, verify=ssl.create_default_context(cafile=sim.ca_file)
    ) as client:
        return client.get(
            path,
            params=params,  # type: ignore[arg-type]
            headers={
                "Authorization": f"Token token={token}",
                "Accept": "application/vnd.pagerduty+json;version=2",
            },
        )


def test_sim_oncall_shape(pd_sim: PagerDutySim) -> None:
    body = _get(pd_sim, "/oncalls", **{"escalation_policy_ids[]": POLICY, "limit": 10}).json()
    assert set(body) == {"oncalls", "limit", "offset", "more", "total"}
    assert (body["limit"], body["offset"], body["more"], body["total"]) == (10, 0, False, None)
    first = body["oncalls"][0]
    assert set(first) == {
        "user",
        "escalation_policy",
        "escalation_level",
        "schedule",
        "start",
        "end",
    }
    assert first["user"]["type"] == "user_reference" and "email" not in first["user"]
    assert first["escalation_policy"]["type"] == "escalation_policy_reference"
    assert first["escalation_policy"]["id"] == POLICY
    levels = [o["escalation_level"] for o in body["oncalls"]]
    assert levels == sorted(levels) == [1, 1, 1, 2, 2]
    assert body["oncalls"][-1]["schedule"]["type"] == "schedule_reference"


def test_sim_users_and_errors(pd_sim: PagerDutySim) -> None:
    found = _get(pd_sim, "/users", query="engineer3@").json()
    assert [u["id"] for u in found["users"]] == ["PUSER3"]
    assert found["more"] is False
    assert _get(pd_sim, "/users/PUSER1").json()["user"]["email"] == "engineer1@example.com"
    missing = _get(pd_sim, "/users/PNOPE")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"message": "Not Found", "code": 2100}}
    refused = _get(pd_sim, "/users/PUSER1", token="u+nope")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == 2006
    pd_sim.force_status(1, 429, retry_after=3)
    limited = _get(pd_sim, "/users")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["code"] == 2020
