"""Signed, short-lived links for a named responder (the runbook pages' buttons).

A link proves *who it was issued to*, for *which service*, and *until when*; it grants
nothing by itself: the responder still authorises the named person (on call / owners),
exactly as for a Slack click. Single use is enforced by the caller (an insert-once record
of the nonce in the store); this module is pure.

    token  = b64url(claims JSON) "." b64url(HMAC-SHA256(K, b64url(claims JSON)))
    K      = HMAC-SHA256(secret, "rollbot-link.v2")
    claims = {"v": 1, "svc": SERVICE, "sub": SLACK_USER_ID, "name": DISPLAY_NAME,
              "iat": EPOCH_S, "exp": EPOCH_S, "nonce": NONCE}
    csrf   = b64url(HMAC-SHA256(HMAC-SHA256(secret, "rollbot-csrf.v2"), NONCE))

Signing is itsdangerous' (a `Serializer` over a `Signer` with SHA-256 and its "hmac" key
derivation, the label as salt); the claims codec is ours: canonical JSON (sorted keys, no
spaces, UTF-8) as strict base64url without padding. The MAC covers the encoded claims
exactly as sent, so changing any character of the token either breaks the encoding
(`malformed`) or the MAC (`bad-signature`). Expiry is ours too (to the microsecond, not
itsdangerous' whole-second age): reported only for a good MAC, and still saying whom the
link was for (`LinkError.claims`), so a page can offer to send that person a fresh link.
The CSRF token of a page is the link's nonce signed under its own label, never equal to
the link's MAC.

Several keys, for rotation (`Keys`): the first signs, every one verifies. To rotate, put
the new key first and keep the old one after it for a link's lifetime, then drop it.
itsdangerous wants the list the other way round (oldest first, the last signs): `_keyring`
turns it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from itsdangerous import BadPayload, BadSignature, Serializer, Signer

from bot.core import mrkdwn

VERSION = 1
MAX_TOKEN_LENGTH = 2048  # a link is a URL; anything longer is not ours
LINK_SALT = b"rollbot-link.v2"
CSRF_SALT = b"rollbot-csrf.v2"
SIGNER_OPTIONS: dict[str, Any] = {"key_derivation": "hmac", "digest_method": hashlib.sha256}
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")

Reason = Literal["malformed", "bad-signature", "expired"]
Keys = bytes | Sequence[bytes]  # one key, or several: the first signs, any one verifies


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a verified link says: for whom, for which service, valid when."""

    service: str
    user_id: str  # Slack user id: what the responder authorises
    user_name: str  # shown on the page ("Signed link for On-call Engineer")
    issued_at: datetime
    expires_at: datetime
    nonce: str  # single-use key

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class LinkError(Exception):
    """A link that cannot be used. `reason`: malformed | bad-signature | expired.

    `claims` is set only when the MAC is good (expired), so a caller never trusts claims
    it did not sign."""

    def __init__(self, reason: Reason, message: str, *, claims: LinkClaims | None = None) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.claims = claims


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A link handed to a person: the URL and until when it works."""

    url: str
    service: str
    user_id: str
    user_name: str
    expires_at: datetime
    ttl: timedelta


def validity(link: IssuedLink) -> str:
    """What every message says of a link: "valid 15 minutes (until 02:15 UTC), single use"."""
    minutes = max(1, round(link.ttl.total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"valid {minutes} {unit} (until {link.expires_at:%H:%M} UTC), single use"


def message(link: IssuedLink, *, why: str = "") -> str:
    """The Slack text (mrkdwn) that hands a link to its person, in a DM or an ephemeral
    reply. `why` is rollbot's own mrkdwn; the person's name, which they choose in Slack, is
    escaped."""
    return (
        f":closed_lock_with_key: {why}Your signed link to the *{mrkdwn.escape(link.service)}* "
        f"runbook page: {mrkdwn.link(link.url, 'open the runbook page')} ({validity(link)}). "
        f"It is for {mrkdwn.escape(link.user_name)} only: its buttons act as you, and rollbot "
        "still checks that you may. Do not forward it."
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64url without padding: only the alphabet, and canonical (re-encodes to
    the same text), so two spellings of one value cannot both be accepted."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError("not base64url") from err
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _canonical(text: str) -> bool:
    try:
        _unb64(text)
    except ValueError:
        return False
    return True


def _keyring(keys: Keys) -> list[bytes]:
    """`keys` (rollbot's order: the first signs) in itsdangerous' order (the last signs)."""
    listed = [keys] if isinstance(keys, bytes) else list(keys)
    if not listed or not all(listed):
        raise ValueError("an empty secret signs nothing")
    return listed[::-1]


class _ClaimsCodec:
    """itsdangerous' payload serializer: claims <-> base64url(canonical JSON)."""

    @staticmethod
    def dumps(claims: dict[str, Any]) -> str:
        body = json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return _b64(body.encode("utf-8"))

    @staticmethod
    def loads(part: str) -> Any:
        return json.loads(_unb64(part).decode("utf-8"))


def _serializer(keys: Keys) -> Serializer[str]:
    return Serializer(
        _keyring(keys), salt=LINK_SALT, serializer=_ClaimsCodec, signer_kwargs=SIGNER_OPTIONS
    )


def _csrf_signer(keys: Keys) -> Signer:
    return Signer(_keyring(keys), salt=CSRF_SALT, **SIGNER_OPTIONS)


def _epoch(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return int(value.timestamp())


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def expiry(issued_at: datetime, ttl: timedelta) -> datetime:
    """When a link issued at `issued_at` for `ttl` stops working (whole seconds, as signed)."""
    return _at(_epoch(issued_at) + int(ttl.total_seconds()))


def issue(
    keys: Keys,
    *,
    service: str,
    user_id: str,
    user_name: str,
    issued_at: datetime,
    ttl: timedelta,
    nonce: str,
) -> str:
    """A token for `user_id` on `service`, valid from `issued_at` for `ttl` (whole seconds),
    signed with the first of `keys`.

    `nonce` must be unpredictable and unique (e.g. `secrets.token_urlsafe(16)`); it is the
    single-use key and the seed of the page's CSRF token."""
    serializer = _serializer(keys)
    if not _NONCE.match(nonce):
        raise ValueError("nonce: 8 to 128 base64url characters")
    seconds = int(ttl.total_seconds())
    if seconds <= 0:
        raise ValueError("ttl must be at least one second")
    iat = _epoch(issued_at)
    claims = {
        "v": VERSION,
        "svc": service,
        "sub": user_id,
        "name": user_name,
        "iat": iat,
        "exp": iat + seconds,
        "nonce": nonce,
    }
    return serializer.dumps(claims)


def _claims(data: Any) -> LinkClaims:
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError("unknown claims version")
    text = {k: data.get(k) for k in ("svc", "sub", "name", "nonce")}
    times = {k: data.get(k) for k in ("iat", "exp")}
    if not all(isinstance(v, str) for v in text.values()):
        raise ValueError("claims: text fields")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in times.values()):
        raise ValueError("claims: times")
    try:
        return LinkClaims(
            service=data["svc"],
            user_id=data["sub"],
            user_name=data["name"],
            issued_at=_at(data["iat"]),
            expires_at=_at(data["exp"]),
            nonce=data["nonce"],
        )
    except (OverflowError, OSError, ValueError) as err:
        raise ValueError("claims: times out of range") from err


def verify(keys: Keys, token: str, *, now: datetime) -> LinkClaims:
    """The claims of a token one of `keys` signed and that has not expired at `now`.

    Raises LinkError: `malformed` (not a token), `bad-signature` (not signed with any of
    these keys, or altered), `expired` (good signature, `now` >= its expiry; `.claims` set)."""
    serializer = _serializer(keys)
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise LinkError("malformed", "This is not a rollbot link (empty or too long).")
    part, dot, mac = token.partition(".")
    if not dot or not _B64URL.match(part) or not _B64URL.match(mac):
        raise LinkError("malformed", "This is not a rollbot link (its token is garbled).")
    try:
        if not _canonical(mac):  # itsdangerous decodes leniently: one spelling per MAC
            raise BadSignature("not canonical base64url")
        data = serializer.loads(token)
    except BadPayload as err:  # a good MAC over something that is not our claims
        cause = err.original_error or err
        raise LinkError("malformed", f"This link's claims are unreadable ({cause}).") from None
    except BadSignature:
        raise LinkError(
            "bad-signature",
            "This link's signature does not check out: it was altered, or signed with "
            "another key (rotated since it was issued?).",
        ) from None
    try:
        claims = _claims(data)
    except ValueError as err:
        raise LinkError("malformed", f"This link's claims are unreadable ({err}).") from None
    if claims.expired(now):
        raise LinkError(
            "expired",
            f"This link expired at {claims.expires_at:%H:%M} UTC ({claims.expires_at:%Y-%m-%d}).",
            claims=claims,
        )
    return claims


def csrf_token(keys: Keys, nonce: str) -> str:
    """The CSRF token of pages opened with the link whose nonce is `nonce` (signed with the
    first of `keys`)."""
    return _csrf_signer(keys).get_signature(nonce.encode("utf-8")).decode("ascii")


def csrf_ok(keys: Keys, nonce: str, *given: str | None) -> bool:
    """Whether every value in `given` (the form field, the cookie) is the same CSRF token
    of `nonce`, under any of `keys` (a page opened before a rotation still works): False
    when any is missing."""
    values = [(value or "").encode("utf-8") for value in given]
    if not values or not all(values):
        return False
    ok = True
    for value in values[1:]:
        ok &= hmac.compare_digest(values[0], value)
    token = values[0].decode("utf-8")
    return ok and _canonical(token) and _csrf_signer(keys).verify_signature(nonce, token)


# What a link token looks like wherever it is pasted: base64url of the claims' JSON
# ('{"exp":' encodes as "eyJ…"), a dot, the base64url MAC. JWTs match too: fine.
_TOKEN_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
# Any token-like query or form value: `?token=`, `&t=`, `access_token=`, `csrf=`.
_SECRET_VALUE = re.compile(r"(?i)((?:[?&;]|\b)(?:access_token|token|csrf)=|[?&;]t=)[^&;#\s\"'<>|]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with every link token replaced by "[redacted]": the value of any `token=`,
    `t=` (in a query), `access_token=` or `csrf=`, and anything shaped like a signed token
    wherever it stands (a path segment, a pasted URL). For log lines: a token in a log is
    a working key to whoever reads the log."""
    if "=" not in text and "eyJ" not in text:
        return text
    return _TOKEN_SHAPE.sub(REDACTED, _SECRET_VALUE.sub(rf"\1{REDACTED}", text))


def runbook_url(base_url: str, service: str, token: str) -> str:
    """`{base_url}/runbooks/{service}?token=…` (the token is base64url and a dot: URL-safe)."""
    return f"{base_url.rstrip('/')}/runbooks/{service}?token={token}"
