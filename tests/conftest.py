"""Shared test wiring.

Each outside world has its own fixture plugin under tests/plugins/ (owned next to its sim or
adapter), so the suites can grow without one giant conftest.
"""

from __future__ import annotations

pytest_plugins = [
    "tests.plugins.fixtures",
    "tests.plugins.peers",
    "tests.plugins.postgres",
    "tests.plugins.kube",
    "tests.plugins.slack",
    "tests.plugins.prometheus",
    "tests.plugins.unleash",
    "tests.plugins.chromium",
]
