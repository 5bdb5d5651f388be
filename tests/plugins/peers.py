"""Real peers: skip without them on a laptop, fail without them in CI.

`require_peer("postgres", available, why)` skips the test when the peer is missing, unless
ROLLBOT_REQUIRE_PEERS=1, in which case it fails: CI must never go green by skipping.
"""

from __future__ import annotations

import os

import pytest


def peers_required() -> bool:
    return os.environ.get("ROLLBOT_REQUIRE_PEERS", "") in ("1", "true", "yes")


def require_peer(name: str, available: bool, why: str = "") -> None:
    if available:
        return
    message = f"real peer '{name}' is not available{': ' + why if why else ''}"
    if peers_required():
        pytest.fail(message + " (ROLLBOT_REQUIRE_PEERS=1)")
    pytest.skip(message)
