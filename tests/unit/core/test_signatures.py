"""PagerDuty v3 webhook signatures: verify over the raw body, rotation, forgeries."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.signatures import (
    pagerduty_signature,
    parse_signatures,
    split_secrets,
    verify_pagerduty,
)

BODY = b'{"event":{"id":"01","event_type":"incident.acknowledged"}}'


def _sig(secret: str, body: bytes = BODY) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signature_is_hmac_sha256_hex_of_the_raw_body() -> None:
    assert pagerduty_signature("s3cret", BODY) == _sig("s3cret")


@pytest.mark.parametrize(
    ("header", "secrets", "ok"),
    [
        (_sig("a"), ["a"], True),
        (_sig("a"), ["b"], False),
        (_sig("a"), ["b", "a"], True),  # rollbot configured with old and new secrets
        (f"{_sig('new')},{_sig('old')}", ["old"], True),  # PagerDuty rotating: two signatures
        (f"{_sig('new')}, {_sig('old')}", ["new"], True),
        (_sig("a").upper().replace("V1=", "v1="), ["a"], True),  # hex case does not matter
        ("v0=" + _sig("a")[3:], ["a"], False),  # another scheme
        ("", ["a"], False),
        (None, ["a"], False),
        (_sig("a"), [], False),  # no secret configured: nothing verifies
        (_sig(""), [""], False),  # an empty secret never counts
        ("v1=", ["a"], False),
        ("garbage", ["a"], False),
    ],
)
def test_verify(header: str | None, secrets: list[str], ok: bool) -> None:
    assert verify_pagerduty(BODY, header, secrets) is ok


def test_a_changed_body_does_not_verify() -> None:
    assert not verify_pagerduty(BODY + b" ", _sig("a"), ["a"])
    assert not verify_pagerduty(BODY.replace(b"01", b"02"), _sig("a"), ["a"])


@given(st.binary(max_size=256), st.text(min_size=1, max_size=40))
def test_any_body_round_trips_and_any_flip_fails(body: bytes, secret: str) -> None:
    header = pagerduty_signature(secret, body)
    assert verify_pagerduty(body, header, [secret])
    assert not verify_pagerduty(body + b"x", header, [secret])


def test_parse_and_split() -> None:
    assert parse_signatures("v1=AB, v0=cd,v1=ef") == ["ab", "ef"]
    assert split_secrets(" old , new ,, ") == ["old", "new"]
    assert split_secrets(None) == []
