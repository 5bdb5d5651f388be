"""bot.runtime.logs: the two formats of a log line and the context fields they carry.

Aspects under test:
- JSON: one object per line with time (ISO 8601, UTC), level, logger, message, the context
  fields that are set (and no others), a caller's `extra`; uvicorn's access record gets
  its client, method, path and status as fields; uvicorn's coloured copy is left out;
- JSON never writes a link token: not in the message, an `extra` field, nor the
  traceback (python-json-logger alone would format the exception afresh, unredacted);
- text: the familiar line, then the context fields in brackets when any is set;
- the context: `bound` sets fields for a block and restores them after, `bind` inside a
  block ends with it, tasks started inside keep them, a field outside `FIELDS` is refused;
- `configure` changes only the handler it made, never a test runner's.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from bot.runtime import log_redaction, logs

TOKEN = "eyJzZXJ2aWNlIjoicGF5bWVudC1yb3V0ZXIifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
URL = f"https://rollbot.example/runbooks/payment-router?token={TOKEN}"


@pytest.fixture
def written() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """A handler as `configure` sets one up (context fields, then the redaction filter)
    on a logger of the test's own, writing to a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(logs.ContextFields())
    handler.addFilter(log_redaction.RedactTokens())
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield out, handler
    finally:
        logger.removeHandler(handler)


def _json_lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_has_the_fields_and_the_context(written) -> None:
    out, handler = written
    handler.setFormatter(logs.formatter("json"))
    log = logging.getLogger("test.logs")
    log.info("outside any context")
    with logs.bound(request_id="req-1", service="payment-router", action="abort"):
        logs.bind(action_key="card@42:abort:0", actor="slack:U0ONCALL")
        log.warning("aborting %s", "payment-router", extra={"attempt": 2})
    log.info("after")
    first, inside, after = _json_lines(out)
    assert first.keys() == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "test.logs"
    assert datetime.fromisoformat(str(first["time"])).utcoffset() is not None
    assert inside == {
        "time": inside["time"],
        "level": "WARNING",
        "logger": "test.logs",
        "message": "aborting payment-router",
        "attempt": 2,
        "request_id": "req-1",
        "service": "payment-router",
        "action": "abort",
        "action_key": "card@42:abort:0",
        "actor": "slack:U0ONCALL",
    }
    assert after.keys() == first.keys()


def test_json_never_writes_a_token_and_keeps_the_traceback(written) -> None:
    out, handler = written
    handler.setFormatter(logs.formatter("json"))
    log = logging.getLogger("test.logs")
    try:
        raise RuntimeError(f"could not open {URL}")
    except RuntimeError:
        log.exception("link not sent to %s", URL, extra={"link": URL, "nested": {"u": [URL]}})
    text = out.getvalue()
    assert TOKEN not in text and TOKEN.split(".")[1] not in text, text
    (line,) = _json_lines(out)
    assert line["message"] == f"link not sent to {URL.replace(TOKEN, '[redacted]')}"
    assert line["link"] == URL.replace(TOKEN, "[redacted]")
    assert line["nested"] == {"u": [URL.replace(TOKEN, "[redacted]")]}
    assert str(line["exc_info"]).startswith("Traceback (most recent call last)")
    assert "RuntimeError: could not open https://rollbot.example/" in str(line["exc_info"])


def test_the_json_formatter_redacts_without_the_filter_too() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s", (URL,), None)
    try:
        raise ValueError(URL)
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    text = logs.formatter("json").format(record)
    assert TOKEN not in text and "[redacted]" in text


def test_uvicorns_access_line_gets_its_fields(written) -> None:
    out, handler = written
    handler.setFormatter(logs.formatter("json"))
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    level, access.propagate = access.level, False
    access.setLevel(logging.INFO)
    try:
        with logs.bound(request_id="0123abcd"):
            access.info(
                '%s - "%s %s HTTP/%s" %d',
                "127.0.0.1:5000",
                "GET",
                f"/runbooks/payment-router?token={TOKEN}",
                "1.1",
                200,
                extra={"color_message": "\x1b[1mGET\x1b[0m"},
            )
    finally:
        access.removeHandler(handler)
        access.propagate = True
        access.setLevel(level)
    (line,) = _json_lines(out)
    assert line["logger"] == "uvicorn.access" and "color_message" not in line
    assert line["request_id"] == "0123abcd"
    assert (line["client"], line["http_method"], line["http_status"]) == (
        "127.0.0.1:5000",
        "GET",
        200,
    )
    assert line["http_path"] == "/runbooks/payment-router?token=[redacted]"
    assert TOKEN not in out.getvalue()


def test_a_text_line_ends_with_the_context_fields(written) -> None:
    out, handler = written
    handler.setFormatter(logs.formatter("text"))
    log = logging.getLogger("test.logs")
    log.info("plain")
    with logs.bound(service="payment-router", actor="slack:U0ONCALL", request_id="r-9"):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(" INFO test.logs: plain")
    assert lines[1].endswith(
        " ERROR test.logs: failed [request_id=r-9 service=payment-router actor=slack:U0ONCALL]"
    )
    assert lines[2] == "Traceback (most recent call last):"  # the traceback after the line


async def test_the_context_follows_tasks_and_ends_with_its_block() -> None:
    seen: list[dict[str, str]] = []

    async def child() -> None:
        await asyncio.sleep(0)
        seen.append(dict(logs.current()))

    with logs.bound(request_id="a"):
        task = asyncio.create_task(child())
        logs.bind(service="s")  # after the task started: not its
        with logs.bound(action="abort", actor=None):
            assert logs.current() == {"request_id": "a", "service": "s", "action": "abort"}
        assert logs.current() == {"request_id": "a", "service": "s"}
        await task
    assert logs.current() == {}
    assert seen == [{"request_id": "a"}]
    with pytest.raises(ValueError, match="not a log context field"):
        logs.bind(password="x")


def test_configure_changes_its_own_handler_only() -> None:
    root = logging.getLogger()
    theirs = logging.NullHandler()
    before = theirs.formatter
    root.addHandler(theirs)
    try:
        logs.configure("json")  # the root logger has handlers (pytest's, this one): none made
        assert theirs.formatter is before and not theirs.filters
        assert not any(h.get_name() == logs.HANDLER_NAME for h in root.handlers)
    finally:
        root.removeHandler(theirs)
    with pytest.raises(ValueError, match="one of text, json"):
        logs.formatter("xml")  # type: ignore[arg-type]
