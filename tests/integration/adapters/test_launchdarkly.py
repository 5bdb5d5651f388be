"""LaunchDarklyFlags (bot.adapters.launchdarkly) with its real httpx client against LaunchDarklySim.

Aspects under test:
- the sim's flag JSON has the documented fields (`key`, `name`, `kind`, `_version`,
  `creationDate`, `variations`, `_links`, `environments.{env}` with `on`, `lastModified`,
  `version`, `_site`, `_environmentName`, …) and `?env=` filters the environments;
- the flip on the wire: exactly one `PATCH /api/v2/flags/{project}/{flag}` with
  `Content-Type: application/json; domain-model=launchdarkly.semanticpatch`, the bare token
  in `Authorization`, `LD-API-Version`, and the body `{"environmentKey", "comment",
  "instructions": [{"kind": "turnFlagOn"}]}` (turnFlagOff to turn off), then the read-back
  `GET …?env=<env>`; the returned FlagState is what was read back (with lastModified);
- get(): the state in our environment, untouched by other environments;
- a 429 with Retry-After is obeyed (the retry arrives ≥ Retry-After later, bounded) and the
  flip succeeds; the rate-limit headers are honoured: with the route budget exhausted the
  next call waits until X-Ratelimit-Reset instead of collecting a 429;
- retries exhausted → TemporaryError(delay=Retry-After) and nothing changed; a Retry-After
  beyond max_wait → TemporaryError at once, without sleeping;
- 401 (unknown token) and 403 (a reader token) → Forbidden, nothing changed;
- unknown flag → TargetNotFound naming the key and project/environment (get and set); a
  flag without our environment → TargetNotFound("environment", project, env) on read,
  the flip's 404 → TargetNotFound("flag", "<project>/<env>", flag);
- sim down (nothing listening) → Unreachable;
- a write the provider acknowledges but drops (`ignore_writes=True`) → FlipNotApplied;
- the sim itself answers like LaunchDarkly: unknown instruction kinds, a missing
  environmentKey and a semantic patch without the domain-model parameter → 400 with the
  common error body and nothing changed; a non-JSON content type → 415; a repeated
  turnFlagOn changes nothing (`_version` stays).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.adapters.launchdarkly import API_VERSION, SEMANTIC_PATCH, LaunchDarklyFlags
from bot.core.errors import FlipNotApplied, Forbidden, TargetNotFound, TemporaryError, Unreachable
from bot.sim.launchdarkly import LaunchDarklySim

TOKEN = "api-11111111-2222-4333-8444-555555555555"
PROJECT = "payments"
FLAG = "payments.new-router.circuit-open"
PATH = f"/api/v2/flags/{PROJECT}/{FLAG}"


@pytest.fixture
def sim() -> Iterator[LaunchDarklySim]:
    with LaunchDarklySim(token=TOKEN) as sim:
        sim.add_flag(PROJECT, FLAG, environments=("production", "staging"), on=False)
        yield sim


@pytest.fixture
async def flags(sim: LaunchDarklySim) -> AsyncIterator[LaunchDarklyFlags]:
    async with LaunchDarklyFlags(base_url=sim.url, api_token=TOKEN, project=PROJECT) as flags:
        yield flags


# ── the sim's representation ──────────────────────────────────────────────────────────


async def test_flag_json_has_the_documented_fields(sim: LaunchDarklySim) -> None:
    async with httpx.AsyncClient(base_url=sim.url, headers={"Authorization": TOKEN}) as client:
        full = (await client.get(PATH)).json()
        filtered = await client.get(PATH, params={"env": "production"})
    for name in (
        "key",
        "name",
        "kind",
        "_version",
        "creationDate",
        "variations",
        "temporary",
        "tags",
        "_links",
        "archived",
        "defaults",
        "environments",
    ):
        assert name in full, name
    assert full["key"] == FLAG and full["kind"] == "boolean"
    assert [v["value"] for v in full["variations"]] == [True, False]
    assert full["_links"]["self"] == {"href": PATH, "type": "application/json"}
    assert set(full["environments"]) == {"production", "staging"}
    production = full["environments"]["production"]
    for name in (
        "on",
        "archived",
        "salt",
        "sel",
        "lastModified",
        "version",
        "targets",
        "rules",
        "fallthrough",
        "offVariation",
        "prerequisites",
        "_site",
        "_environmentName",
        "trackEvents",
        "trackEventsFallthrough",
    ):
        assert name in production, name
    assert production["on"] is False
    assert isinstance(production["lastModified"], int) and production["lastModified"] > 10**12
    assert production["_site"]["href"] == f"/{PROJECT}/production/features/{FLAG}"
    assert filtered.status_code == 200
    assert filtered.headers["content-type"] == "application/json"
    assert set(filtered.json()["environments"]) == {"production"}
    for header in ("x-ratelimit-route-remaining", "x-ratelimit-reset"):
        assert header in filtered.headers


# ── the flip on the wire ──────────────────────────────────────────────────────────────


async def test_set_sends_one_semantic_patch_then_reads_back(
    sim: LaunchDarklySim, flags: LaunchDarklyFlags
) -> None:
    state = await flags.set(FLAG, True, comment="rollbot: circuit breaker by @oncall (INC-42)")

    patch, read = sim.requests
    assert patch.method == "PATCH" and patch.path == PATH and patch.query == []
    assert patch.headers["content-type"] == SEMANTIC_PATCH
    assert patch.headers["authorization"] == TOKEN
    assert patch.headers["ld-api-version"] == API_VERSION
    assert patch.body == {
        "environmentKey": "production",
        "comment": "rollbot: circuit breaker by @oncall (INC-42)",
        "instructions": [{"kind": "turnFlagOn"}],
    }
    assert patch.status == 200
    assert (read.method, read.path, read.query, read.status) == (
        "GET",
        PATH,
        [("env", "production")],
        200,
    )
    assert state.enabled is True and state.key == FLAG
    assert (state.project, state.environment, state.provider) == (
        PROJECT,
        "production",
        "launchdarkly",
    )
    flag = sim.flag(PROJECT, FLAG)
    assert flag["environments"]["production"]["on"] is True
    assert flag["environments"]["staging"]["on"] is False
    assert flag["_version"] == 2
    modified = flag["environments"]["production"]["lastModified"]
    assert state.updated_at is not None
    assert int(state.updated_at.timestamp() * 1000) == modified
    assert [(c.environment, c.on, c.comment) for c in sim.changes] == [
        ("production", True, "rollbot: circuit breaker by @oncall (INC-42)")
    ]

    off = await flags.set(FLAG, False, comment="rollbot: close the breaker")
    assert off.enabled is False
    assert sim.requests[2].body["instructions"] == [{"kind": "turnFlagOff"}]
    assert sim.is_on(PROJECT, FLAG) is False


async def test_get_reads_our_environment(sim: LaunchDarklySim, flags: LaunchDarklyFlags) -> None:
    sim.set_on(PROJECT, FLAG, "staging", True)
    assert (await flags.get(FLAG)).enabled is False
    sim.set_on(PROJECT, FLAG, "production", True)
    state = await flags.get(FLAG)
    assert state.enabled is True and state.updated_at is not None
    assert await flags.sdk_sees(FLAG) is None
    assert [r.method for r in sim.requests] == ["GET", "GET"]


# ── rate limits ───────────────────────────────────────────────────────────────────────


async def test_429_retry_after_is_obeyed_then_the_flip_succeeds(
    sim: LaunchDarklySim, flags: LaunchDarklyFlags
) -> None:
    sim.force_429(1, retry_after=1)
    state = await flags.set(FLAG, True, comment="flip")

    refused, patch, read = sim.requests
    assert (refused.method, refused.status) == ("PATCH", 429)
    assert refused.response_headers["Retry-After"] == "1"
    assert refused.response["code"] == "rate_limited"
    assert "X-Ratelimit-Reset" in refused.response_headers
    assert (patch.method, patch.status, read.method) == ("PATCH", 200, "GET")
    waited = patch.at - refused.at
    assert 0.95 <= waited < 2.5, waited
    assert state.enabled is True


async def test_route_budget_exhausted_waits_for_the_reset_instead_of_a_429() -> None:
    with LaunchDarklySim(token=TOKEN, route_budget=1, window=1.0) as sim:
        sim.add_flag(PROJECT, FLAG)
        async with LaunchDarklyFlags(base_url=sim.url, api_token=TOKEN, project=PROJECT) as flags:
            await flags.set(FLAG, True, comment="one")
            await flags.set(FLAG, False, comment="two")
        requests = sim.requests

    assert [r.status for r in requests] == [200, 200, 200, 200]
    for r in requests:
        assert r.response_headers["X-Ratelimit-Route-Remaining"] == "0"
        assert "X-Ratelimit-Global-Remaining" in r.response_headers
    first_patch, _, second_patch, _ = requests
    reset = int(first_patch.response_headers["X-Ratelimit-Reset"]) / 1000
    assert second_patch.at >= reset - 0.01
    assert second_patch.at - first_patch.at < 2.0
    assert sim.is_on(PROJECT, FLAG) is False


async def test_retries_exhausted_raise_temporary_error_and_change_nothing(
    sim: LaunchDarklySim,
) -> None:
    sim.force_429(5, retry_after=1)
    async with LaunchDarklyFlags(
        base_url=sim.url, api_token=TOKEN, project=PROJECT, max_retries=1
    ) as flags:
        with pytest.raises(TemporaryError) as caught:
            await flags.set(FLAG, True, comment="flip")
    assert caught.value.delay == 1.0
    assert "rate-limited" in caught.value.message
    assert [(r.method, r.status) for r in sim.requests] == [("PATCH", 429), ("PATCH", 429)]
    assert sim.is_on(PROJECT, FLAG) is False and sim.changes == []


async def test_a_retry_after_beyond_max_wait_is_not_slept(sim: LaunchDarklySim) -> None:
    sim.force_429(1, retry_after=30)
    async with LaunchDarklyFlags(
        base_url=sim.url, api_token=TOKEN, project=PROJECT, max_wait=5.0
    ) as flags:
        with pytest.raises(TemporaryError) as caught:
            await flags.get(FLAG)
    assert caught.value.delay == 30.0
    assert len(sim.requests) == 1


# ── errors ────────────────────────────────────────────────────────────────────────────


async def test_unknown_token_is_forbidden_and_nothing_changes(sim: LaunchDarklySim) -> None:
    async with LaunchDarklyFlags(base_url=sim.url, api_token="api-wrong", project=PROJECT) as f:
        with pytest.raises(Forbidden) as caught:
            await f.set(FLAG, True, comment="flip")
    assert caught.value.service == "LaunchDarkly"
    assert "401" in caught.value.detail and "Invalid access token" in caught.value.detail
    (refused,) = sim.requests
    assert refused.status == 401 and refused.response["code"] == "unauthorized"
    assert sim.is_on(PROJECT, FLAG) is False and sim.changes == []


async def test_reader_token_may_read_but_not_flip(sim: LaunchDarklySim) -> None:
    sim.add_token("api-reader", role="reader")
    async with LaunchDarklyFlags(base_url=sim.url, api_token="api-reader", project=PROJECT) as f:
        assert (await f.get(FLAG)).enabled is False
        with pytest.raises(Forbidden) as caught:
            await f.set(FLAG, True, comment="flip")
    assert "403" in caught.value.detail
    assert sim.is_on(PROJECT, FLAG) is False


async def test_unknown_flag_is_target_not_found(
    sim: LaunchDarklySim, flags: LaunchDarklyFlags
) -> None:
    with pytest.raises(TargetNotFound) as caught:
        await flags.set("payments.no-such-flag", True, comment="flip")
    assert caught.value.kind == "flag" and caught.value.name == "payments.no-such-flag"
    assert caught.value.namespace == f"{PROJECT}/production"
    assert "payments.no-such-flag" in caught.value.message
    with pytest.raises(TargetNotFound):
        await flags.get("payments.no-such-flag")
    assert sim.requests[0].response["code"] == "not_found"
    assert sim.requests[0].response["message"] == "Invalid resource identifier"


async def test_unknown_environment_is_target_not_found(sim: LaunchDarklySim) -> None:
    async with LaunchDarklyFlags(
        base_url=sim.url, api_token=TOKEN, project=PROJECT, environment="qa"
    ) as flags:
        with pytest.raises(TargetNotFound) as read:
            await flags.get(FLAG)
        with pytest.raises(TargetNotFound) as flip:
            await flags.set(FLAG, True, comment="flip")
    assert (read.value.kind, read.value.namespace, read.value.name) == (
        "environment",
        PROJECT,
        "qa",
    )
    assert flip.value.namespace == f"{PROJECT}/qa" and flip.value.name == FLAG
    assert sim.requests[-1].response["message"] == "Unknown environment 'qa'"
    assert sim.changes == []


async def test_sim_down_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    async with LaunchDarklyFlags(
        base_url=f"http://127.0.0.1:{port}", api_token=TOKEN, project=PROJECT, timeout=2.0
    ) as flags:
        with pytest.raises(Unreachable) as caught:
            await flags.set(FLAG, True, comment="flip")
    assert caught.value.service == "LaunchDarkly"
    assert "connection refused" in caught.value.detail


async def test_a_dropped_write_is_flip_not_applied() -> None:
    with LaunchDarklySim(token=TOKEN, ignore_writes=True) as sim:
        sim.add_flag(PROJECT, FLAG)
        async with LaunchDarklyFlags(base_url=sim.url, api_token=TOKEN, project=PROJECT) as flags:
            with pytest.raises(FlipNotApplied) as caught:
                await flags.set(FLAG, True, comment="flip")
        assert [(r.method, r.status) for r in sim.requests] == [("PATCH", 200), ("GET", 200)]
    assert caught.value.key == FLAG and caught.value.wanted is True
    assert "reading it back shows it off" in caught.value.message


# ── the sim answers like LaunchDarkly ─────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("content_type", "body", "status", "fragment"),
    [
        (
            SEMANTIC_PATCH,
            {"environmentKey": "production", "instructions": [{"kind": "turnFlagSideways"}]},
            400,
            "unknown instruction kind",
        ),
        (
            SEMANTIC_PATCH,
            {
                "environmentKey": "production",
                "instructions": [{"kind": "turnFlagOn"}, {"kind": "nope"}],
            },
            400,
            "unknown instruction kind",
        ),
        (SEMANTIC_PATCH, {"instructions": [{"kind": "turnFlagOn"}]}, 400, "environmentKey"),
        (SEMANTIC_PATCH, {"environmentKey": "production"}, 400, "instructions"),
        (
            "application/json",
            {"environmentKey": "production", "instructions": [{"kind": "turnFlagOn"}]},
            400,
            "domain-model",
        ),
        ("text/plain", "turn it on", 415, "Unsupported media type"),
    ],
)
async def test_sim_refuses_bad_patches_like_launchdarkly(
    sim: LaunchDarklySim, content_type: str, body: object, status: int, fragment: str
) -> None:
    content = body if isinstance(body, str) else httpx.Response(200, json=body).text
    async with httpx.AsyncClient(base_url=sim.url) as client:
        response = await client.patch(
            PATH,
            content=content.encode(),
            headers={"Authorization": TOKEN, "Content-Type": content_type},
        )
    assert response.status_code == status
    error = response.json()
    assert error["code"] in ("invalid_request", "unsupported_media_type")
    assert fragment in error["message"] and error["id"]
    assert sim.is_on(PROJECT, FLAG) is False and sim.flag(PROJECT, FLAG)["_version"] == 1


async def test_sim_repeated_turn_on_changes_nothing(
    sim: LaunchDarklySim, flags: LaunchDarklyFlags
) -> None:
    await flags.set(FLAG, True, comment="first")
    await flags.set(FLAG, True, comment="again")
    flag = sim.flag(PROJECT, FLAG)
    assert flag["_version"] == 2 and flag["environments"]["production"]["version"] == 2
    assert len(sim.changes) == 1
