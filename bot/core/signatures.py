"""Webhook signatures: PagerDuty v3 (``X-PagerDuty-Signature``), pure and constant-time.

PagerDuty signs the raw request body with HMAC-SHA256 under the subscription's secret and
sends ``v1=<hex>``; while a secret is rotated it sends several, comma-separated. A request
is authentic when any signature verifies under any configured secret. Comparisons use
`hmac.compare_digest`, and every pair is compared (no early exit that would time which one
matched).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SCHEME = "v1"


def pagerduty_signature(secret: str, body: bytes) -> str:
    """The header value PagerDuty would send for `body` under `secret`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def parse_signatures(header: str | None) -> list[str]:
    """The hex digests of the ``v1=`` signatures in the header (other schemes ignored)."""
    if not header:
        return []
    found = []
    for part in header.split(","):
        scheme, sep, value = part.strip().partition("=")
        if sep and scheme == SCHEME and value:
            found.append(value.strip().lower())
    return found


def verify_pagerduty(body: bytes, header: str | None, secrets: Iterable[str]) -> bool:
    """True when a ``v1=`` signature in `header` is the HMAC of `body` under a secret."""
    given = parse_signatures(header)
    ok = False
    for secret in secrets:
        if not secret:
            continue
        expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        for digest in given:
            ok |= hmac.compare_digest(expected, digest)
    return ok


def split_secrets(value: str | None) -> list[str]:
    """A comma-separated secret setting (old and new during a rotation) as a list."""
    return [s.strip() for s in (value or "").split(",") if s.strip()]
