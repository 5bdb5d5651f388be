"""bot.web.refusals: a flood of refusals writes a line per reason per interval, with counts.

Aspects under test: the first refusal of a reason is logged at once; more within the
interval are held back and counted on the next line after it; reasons are independent.
"""

from __future__ import annotations

import logging

import pytest

from bot.web.refusals import QuietRefusals, RefusalLog, quiet_refusals


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


def _access(status: int) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/slack/events", "1.1", status),
        None,
    )


@pytest.mark.parametrize(
    ("status", "kept"),
    [(401, False), (408, False), (413, False), (200, True), (403, True), (500, True)],
)
def test_refused_requests_write_no_access_line(status: int, kept: bool) -> None:
    """A flood of unauthenticated requests must not write one access line each (the flood
    bench: 401s answered 1.9x faster without them); everything else keeps its line."""
    assert QuietRefusals().filter(_access(status)) is kept


def test_quiet_refusals_is_installed_once() -> None:
    logger = logging.getLogger("test.access.quiet")
    quiet_refusals("test.access.quiet")
    quiet_refusals("test.access.quiet")
    assert sum(isinstance(f, QuietRefusals) for f in logger.filters) == 1
