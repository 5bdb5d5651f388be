"""What the httpx-based adapters (Prometheus, Unleash, LaunchDarkly) share: reading
`Retry-After` and saying why a connection failed in words a responder understands."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC

import httpx


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


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
