"""bot/sim/unleash.py answers the real Unleash adapter like the real server does.

Aspects: flip on/off and read back; the client API trails the admin API, then agrees;
unknown flag → TargetNotFound naming the key; wrong admin token → Forbidden, unchanged.
"""

from __future__ import annotations

import time

import pytest

from bot.adapters.unleash import UnleashFlags
from bot.core.errors import Forbidden, TargetNotFound
from bot.sim.unleash import UnleashSim
from tests.helpers import eventually

FLAG = "payments.new-router.circuit-open"


@pytest.fixture
def sim():
    with UnleashSim(client_lag=0.3) as s:
        s.add_flag(FLAG)
        yield s


async def test_flip_read_back_and_sdk_view(sim):
    async with UnleashFlags(
        base_url=sim.url, admin_token=sim.admin_token, client_token=sim.client_token
    ) as flags:
        assert (await flags.get(FLAG)).enabled is False
        started = time.monotonic()
        state = await flags.set(FLAG, True, comment="drill")
        assert state.enabled is True and sim.enabled(FLAG)
        assert await flags.sdk_sees(FLAG) is False  # the client API still serves the old one
        await eventually(
            lambda: flags.sdk_sees(FLAG), timeout=5, interval=0.05, what="the SDK view flipped"
        )
        assert time.monotonic() - started >= 0.3
        assert (await flags.set(FLAG, False, comment="drill")).enabled is False


async def test_missing_flag_and_wrong_token(sim):
    async with UnleashFlags(base_url=sim.url, admin_token=sim.admin_token) as flags:
        with pytest.raises(TargetNotFound) as missing:
            await flags.get("payments.nope")
        assert "payments.nope" in missing.value.message
    async with UnleashFlags(base_url=sim.url, admin_token="wrong") as flags:
        with pytest.raises(Forbidden):
            await flags.set(FLAG, True, comment="drill")
    assert sim.enabled(FLAG) is False
