"""bot.adapters._http: the one Retry-After parser every adapter uses.

Aspects under test:
- delta-seconds, with spaces, fractions; an HTTP date in the future and in the past;
- absent, unreadable, negative and non-finite values (a hostile `inf` must not park a
  retry for ever);
- `header` finds the value case-insensitively in the SDKs' header shapes (dict, list values,
  httpx and urllib3 header objects) and tolerates None.
"""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
import urllib3

from bot.adapters._http import header, parse_retry_after, retry_after


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30", 30.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        (0, 0.0),
        ("-4", 0.0),
        (None, None),
        ("soon", None),
        ("", None),
        ("inf", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: retry now
    ],
)
def test_values(raw: object, expected: float | None) -> None:
    assert parse_retry_after(raw) == expected


def test_an_http_date_in_the_future_is_seconds_from_now() -> None:
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    seconds = parse_retry_after(later)
    assert seconds is not None and 110 <= seconds <= 121


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "9"},
        {"retry-after": ["9", "1"]},
        httpx.Headers({"RETRY-AFTER": "9"}),
        urllib3.HTTPHeaderDict({"Retry-After": "9"}),
    ],
)
def test_header_shapes(headers: object) -> None:
    assert parse_retry_after(header(headers, "Retry-After")) == 9.0


def test_no_headers() -> None:
    assert header(None, "Retry-After") is None
    assert header({}, "Retry-After") is None


def test_httpx_response() -> None:
    response = httpx.Response(429, headers={"Retry-After": "3"})
    assert retry_after(response) == 3.0
