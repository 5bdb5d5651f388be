"""Shared test wiring.

Each outside world has its own fixture plugin under tests/plugins/ (owned next to its sim or
adapter), so the suites can grow without one giant conftest.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

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

# Hypothesis's timing checks measure the machine, not the code: under `make test`'s parallel
# workers on 2 cores a strategy can be "too slow" or an example past a deadline by chance,
# which made a property test fail once. Correctness checks stay; timing ones are off.
settings.register_profile("rollbot", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rollbot")
