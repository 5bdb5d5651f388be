"""UnleashFlags against a real unleash-server (7.5, on the session PostgreSQL).

Aspects under test:

- `set(True)` on an off circuit-breaker flag reads back enabled, and Unleash itself (its
  admin API, read independently) agrees;
- a real SDK (the `UnleashClient` Python SDK, polling every second with a client token)
  sees the flip within seconds, and `sdk_sees()` agrees with it, on and back off;
- `set()` to the state the flag already has is a no-op that reads back that state;
- `get()` of a flag that does not exist → TargetNotFound naming the key and project/env;
  `set()` of one → the same, and nothing is created;
- an environment the flag does not have → TargetNotFound naming the environment;
- a wrong admin token → Forbidden (401), and the flag is not changed;
- the client token on the admin API → Forbidden (403: wrong token type);
- a wrong client token → Forbidden from `sdk_sees()`; no client token → None;
- nothing listening on the port (Unleash stopped) → Unreachable naming the URL, for get,
  set and sdk_sees; an answer slower than `timeout` → Unreachable "timed out";
- stand-ins (httpx.MockTransport) for what a healthy real Unleash will not do on demand:
  `FlipNotApplied` when the flip answers 2xx but the read-back disagrees (a proxy or a
  change-request workflow might); 429 → TemporaryError with Retry-After as `delay`;
  503 → Unreachable with Unleash's message.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from UnleashClient.clients.unleash_client import UnleashClient
from UnleashClient.utils import InstanceAllowType

from bot.adapters.unleash import UnleashFlags
from bot.core.errors import FlipNotApplied, Forbidden, TargetNotFound, TemporaryError, Unreachable
from bot.core.ports import Flags
from tests.helpers import eventually_sync
from tests.plugins.unleash import UnleashPeer

CIRCUIT = "payments.new-router.circuit-open"
SDK_DEADLINE = 15.0  # the SDK polls every 1 s; Unleash may cache the client API briefly


def _is_a_flags_port(adapter: UnleashFlags) -> Flags:
    return adapter  # mypy checks that UnleashFlags satisfies bot.core.ports.Flags


@pytest.fixture
async def flags(unleash_peer: UnleashPeer) -> AsyncIterator[UnleashFlags]:
    async with UnleashFlags(
        base_url=unleash_peer.url,
        admin_token=unleash_peer.admin_token,
        client_token=unleash_peer.client_token,
        project=unleash_peer.project,
        environment=unleash_peer.environment,
    ) as adapter:
        yield adapter


@pytest.fixture
def sdk(unleash_peer: UnleashPeer, tmp_path: Path) -> Iterator[UnleashClient]:
    """A real UnleashClient polling the peer every second; destroyed (its scheduler thread
    stopped) at teardown."""
    client = UnleashClient(
        url=f"{unleash_peer.url}/api",
        app_name="payment-router",
        environment=unleash_peer.environment,
        custom_headers={"Authorization": unleash_peer.client_token},
        refresh_interval=1,
        disable_metrics=True,
        disable_registration=True,
        cache_directory=str(tmp_path / "unleash-cache"),
        multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
    )
    try:
        client.initialize_client()
        yield client
    finally:
        client.destroy()


async def _wait_sdk(sdk: UnleashClient, flag: str, want: bool) -> float:
    """The seconds until the SDK sees `flag` as `want` (its sync API polled in a thread)."""
    started = time.monotonic()
    await asyncio.to_thread(
        eventually_sync,
        lambda: sdk.is_enabled(flag) is want,
        timeout=SDK_DEADLINE,
        interval=0.05,
        what=f"the SDK sees {flag}={want}",
    )
    return time.monotonic() - started


# ── flips, read back, seen by a real SDK ────────────────────────────────────────────────


@pytest.mark.peer("unleash")
async def test_circuit_open_is_read_back_and_seen_by_a_real_sdk(
    unleash_peer: UnleashPeer, flags: UnleashFlags, sdk: UnleashClient
) -> None:
    unleash_peer.create_flag(CIRCUIT, type="kill-switch", enabled=False)
    before = await flags.get(CIRCUIT)
    assert (before.key, before.enabled, before.provider) == (CIRCUIT, False, "unleash")
    assert (before.project, before.environment) == ("default", "production")
    await _wait_sdk(sdk, CIRCUIT, False)  # the SDK has the flag, off

    after = await flags.set(CIRCUIT, True, comment="circuit breaker for INC-1")
    assert after.enabled is True
    assert unleash_peer.flag_enabled(CIRCUIT) is True
    seconds = await _wait_sdk(sdk, CIRCUIT, True)
    assert seconds < SDK_DEADLINE
    assert await flags.sdk_sees(CIRCUIT) is True

    back = await flags.set(CIRCUIT, False, comment="incident resolved")
    assert back.enabled is False
    assert unleash_peer.flag_enabled(CIRCUIT) is False
    await _wait_sdk(sdk, CIRCUIT, False)
    assert await flags.sdk_sees(CIRCUIT) is False


@pytest.mark.peer("unleash")
async def test_set_to_the_current_state_reads_it_back(
    unleash_peer: UnleashPeer, flags: UnleashFlags
) -> None:
    unleash_peer.create_flag("payments.same-state", enabled=True)
    state = await flags.set("payments.same-state", True, comment="again")
    assert state.enabled is True
    assert unleash_peer.flag_enabled("payments.same-state") is True


@pytest.mark.peer("unleash")
async def test_sdk_sees_is_none_without_a_client_token(unleash_peer: UnleashPeer) -> None:
    unleash_peer.create_flag("payments.no-client-token", enabled=True)
    async with UnleashFlags(base_url=unleash_peer.url, admin_token=unleash_peer.admin_token) as f:
        assert await f.sdk_sees("payments.no-client-token") is None
        assert (await f.get("payments.no-client-token")).enabled is True


@pytest.mark.peer("unleash")
async def test_sdk_sees_false_for_a_flag_the_client_api_does_not_serve(
    flags: UnleashFlags,
) -> None:
    assert await flags.sdk_sees("payments.never-created") is False


# ── not found ───────────────────────────────────────────────────────────────────────────


@pytest.mark.peer("unleash")
async def test_missing_flag_is_target_not_found_naming_the_key(
    unleash_peer: UnleashPeer, flags: UnleashFlags
) -> None:
    key = "payments.no-such-flag"
    with pytest.raises(TargetNotFound) as got:
        await flags.get(key)
    assert (got.value.kind, got.value.namespace, got.value.name) == (
        "flag",
        "default/production",
        key,
    )
    assert key in got.value.message

    with pytest.raises(TargetNotFound) as flipped:
        await flags.set(key, True, comment="circuit breaker")
    assert flipped.value.name == key
    assert not unleash_peer.flag_exists(key)  # nothing was created by the failed flip


@pytest.mark.peer("unleash")
async def test_missing_environment_is_target_not_found_naming_it(
    unleash_peer: UnleashPeer,
) -> None:
    unleash_peer.create_flag("payments.env-check")
    async with UnleashFlags(
        base_url=unleash_peer.url, admin_token=unleash_peer.admin_token, environment="staging"
    ) as f:
        with pytest.raises(TargetNotFound) as got:
            await f.get("payments.env-check")
        assert (got.value.kind, got.value.name) == ("environment", "staging")
        with pytest.raises(TargetNotFound) as flipped:
            await f.set("payments.env-check", True, comment="x")
        assert (flipped.value.kind, flipped.value.name) == ("environment", "staging")
    assert unleash_peer.flag_enabled("payments.env-check") is False


# ── credentials ─────────────────────────────────────────────────────────────────────────


@pytest.mark.peer("unleash")
async def test_wrong_admin_token_is_forbidden_and_changes_nothing(
    unleash_peer: UnleashPeer,
) -> None:
    unleash_peer.create_flag("payments.auth-check", enabled=False)
    async with UnleashFlags(base_url=unleash_peer.url, admin_token="*:*.not-a-real-token") as f:
        with pytest.raises(Forbidden) as got:
            await f.set("payments.auth-check", True, comment="circuit breaker")
        assert got.value.service == "Unleash"
        assert "401" in got.value.detail
        with pytest.raises(Forbidden):
            await f.get("payments.auth-check")
    assert unleash_peer.flag_enabled("payments.auth-check") is False


@pytest.mark.peer("unleash")
async def test_client_token_on_the_admin_api_is_forbidden(unleash_peer: UnleashPeer) -> None:
    unleash_peer.create_flag("payments.token-type", enabled=False)
    async with UnleashFlags(base_url=unleash_peer.url, admin_token=unleash_peer.client_token) as f:
        with pytest.raises(Forbidden) as got:
            await f.set("payments.token-type", True, comment="x")
    assert "403" in got.value.detail
    assert unleash_peer.flag_enabled("payments.token-type") is False


@pytest.mark.peer("unleash")
async def test_wrong_client_token_is_forbidden_in_sdk_sees(unleash_peer: UnleashPeer) -> None:
    unleash_peer.create_flag("payments.client-auth", enabled=True)
    async with UnleashFlags(
        base_url=unleash_peer.url,
        admin_token=unleash_peer.admin_token,
        client_token="default:production.not-a-real-token",
    ) as f:
        with pytest.raises(Forbidden):
            await f.sdk_sees("payments.client-auth")


# ── unreachable ─────────────────────────────────────────────────────────────────────────


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nobody listens


async def test_nothing_listening_is_unreachable() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with UnleashFlags(base_url=url, admin_token="*:*.x", client_token="default:x.y") as f:
        for call in (
            lambda: f.get(CIRCUIT),
            lambda: f.set(CIRCUIT, True, comment="x"),
            lambda: f.sdk_sees(CIRCUIT),
        ):
            with pytest.raises(Unreachable) as got:
                await call()
            assert got.value.service == "Unleash"
            assert url in got.value.detail
            assert "connection refused" in got.value.detail


async def test_slow_answer_is_unreachable_timed_out() -> None:
    """A listener that accepts and never answers: the adapter gives up after `timeout`."""
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with UnleashFlags(
            base_url=f"http://127.0.0.1:{port}", admin_token="*:*.x", timeout=0.3
        ) as f:
            with pytest.raises(Unreachable) as got:
                await f.get(CIRCUIT)
        assert "timed out after 0.3 s" in got.value.detail
    finally:
        release.set()
        server.close()
        await server.wait_closed()


# ── stand-ins: what a healthy Unleash will not do on demand ─────────────────────────────


async def test_unchanged_read_back_is_flip_not_applied() -> None:
    """A stand-in that answers the flip 200 and keeps reading the flag back as off."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            return httpx.Response(200)
        return httpx.Response(
            200,
            json={
                "name": CIRCUIT,
                "environments": [{"name": "production", "enabled": False, "strategies": []}],
            },
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with client:
        f = UnleashFlags(base_url="http://unleash.test", admin_token="*:*.x", client=client)
        with pytest.raises(FlipNotApplied) as got:
            await f.set(CIRCUIT, True, comment="circuit breaker")
    assert (got.value.key, got.value.environment, got.value.wanted) == (CIRCUIT, "production", True)
    assert "reading it back shows it off" in got.value.message
    assert seen == [
        f"POST /api/admin/projects/default/features/{CIRCUIT}/environments/production/on",
        f"GET /api/admin/projects/default/features/{CIRCUIT}",
    ]


@pytest.mark.parametrize(
    ("status", "headers", "error", "delay", "text"),
    [
        (429, {"Retry-After": "7"}, TemporaryError, 7.0, "rate-limited rollbot; retry in 7 s"),
        (503, {}, Unreachable, None, "HTTP 503: Database unavailable"),
    ],
)
async def test_rate_limit_and_server_errors_are_temporary(
    status: int,
    headers: dict[str, str],
    error: type[TemporaryError],
    delay: float | None,
    text: str,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, json={"message": "Database unavailable"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with client:
        f = UnleashFlags(
            base_url="http://unleash.test", admin_token="*:*.x", client_token="c", client=client
        )
        for call in (
            lambda: f.get(CIRCUIT),
            lambda: f.set(CIRCUIT, True, comment="x"),
            lambda: f.sdk_sees(CIRCUIT),
        ):
            with pytest.raises(error) as got:
                await call()
            assert type(got.value) is error
            assert got.value.delay == delay
            assert text in got.value.message
