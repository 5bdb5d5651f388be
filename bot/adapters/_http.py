"""What the adapters share: reading `Retry-After` (the one parser, for every adapter's
headers) and, for the httpx-based ones (Prometheus, Unleash, LaunchDarkly), saying why a
connection failed in words a responder understands."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC

import httpx


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After of an httpx response in seconds (see `parse_retry_after`)."""
    return parse_retry_after(response.headers.get("retry-after"))


def header(headers: object, name: str) -> object | None:
    """`name`'s value in any header mapping (case-insensitive; a list's first value), or None:
    the SDKs hand headers over as dicts, urllib3 and CaseInsensitiveDicts, or lists."""
    if not isinstance(headers, Mapping):
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            found: object = value[0] if isinstance(value, list | tuple) and value else value
            return found
    return None


def parse_retry_after(raw: object) -> float | None:
    """A Retry-After value in seconds, for every adapter: delta-seconds or an HTTP date
    (RFC 9110, 10.2.3); None when absent, unreadable or not finite (a hostile `inf` must not
    park a retry for ever). Never negative."""
    if raw is None:
        return None
    text = str(raw).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def connect_reason(error: BaseException) -> str:
    """The OS' reason under httpx's "All connection attempts failed": "connection refused"."""
    seen: BaseException | None = error
    reason = str(error)
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, OSError) and seen.strerror:
            reason = seen.strerror
        seen = seen.__cause__ or seen.__context__
    return reason
