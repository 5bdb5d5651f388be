"""bot.web.refusals: a flood of refusals writes a line per reason per interval, with counts.

Aspects under test: the first refusal of a reason is logged at once; more within the
interval are held back and counted on the next line after it; reasons are independent.
"""

from __future__ import annotations

import logging

import pytest

from bot.web.refusals import RefusalLog


def test_a_flood_is_one_line_per_reason_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = RefusalLog(logging.getLogger("test.refusals"), every=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="test.refusals")
    for _ in range(500):
        log.refused("bad signature")
    log.refused("bad timestamp")
    assert [r.getMessage() for r in caplog.records] == ["bad signature", "bad timestamp"]
    now[0] += 10.0
    log.refused("bad signature")
    assert caplog.records[-1].getMessage() == "bad signature (and 499 more in the last 10 s)"
    now[0] += 10.0
    log.refused("bad signature")
    assert caplog.records[-1].getMessage() == "bad signature"
