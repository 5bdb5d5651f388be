"""bot.core.links: signed, short-lived runbook links for a named responder.

Aspects under test:
- a token round-trips its claims (service, user id and name, issue and expiry times,
  nonce), unicode names included; its format is base64url(canonical JSON) "." base64url(MAC),
  the MAC as the module docstring writes it (itsdangerous' Signer, SHA-256, "hmac" key
  derivation, the link label as salt);
- rotation: with several keys the first signs and any one verifies, so a link signed with
  the old key works while the new key is first and is a `bad-signature` once the old key
  is dropped; the CSRF token follows the same rule; an empty key list or key is refused;
- tampering with any character of a token, or signing with another key, is refused as
  `bad-signature` or `malformed`, never accepted and never reported as expired; a MAC
  spelt another way (the unused bits of its last character) is refused too;
- the expiry boundary: valid up to the last microsecond before `exp`, `expired` at `exp`,
  and an expired token still says who it was for (`.claims`), only when its MAC is good;
- garbage (empty, one part, three parts, too long, a good MAC over a non-JSON body) is
  `malformed`;
- the CSRF token is bound to the nonce and the key, differs from the link's MAC, and
  `csrf_ok` wants every value present and equal (a non-ASCII value is refused, not an error);
- `issue` refuses naive datetimes, weak nonces, empty keys and a zero lifetime;
- `validity` and `runbook_url`, as messages and pages show them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import Signer

from bot.core import links

SECRET = b"a-test-key-of-reasonable-length-0123456789"
NEW = b"the-new-key-after-rotation-0123456789abcdef"
T0 = datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC)
TTL = timedelta(minutes=15)
NONCE = "n0nce-abcdefgh-1234"
B64_ALPHABET = string.ascii_letters + string.digits + "-_"


def make(**kw: object) -> str:
    args: dict[str, object] = {
        "service": "payment-router",
        "user_id": "U0ONCALL",
        "user_name": "On-call Engineer",
        "issued_at": T0,
        "ttl": TTL,
        "nonce": NONCE,
    }
    args.update(kw)
    return links.issue(SECRET, **args)  # type: ignore[arg-type]


def test_round_trip_and_format():
    token = make()
    claims = links.verify(SECRET, token, now=T0 + timedelta(minutes=1))
    assert claims == links.LinkClaims(
        service="payment-router",
        user_id="U0ONCALL",
        user_name="On-call Engineer",
        issued_at=T0,
        expires_at=T0 + TTL,
        nonce=NONCE,
    )
    body, mac = token.split(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert json.loads(raw) == {
        "v": 1,
        "svc": "payment-router",
        "sub": "U0ONCALL",
        "name": "On-call Engineer",
        "iat": int(T0.timestamp()),
        "exp": int((T0 + TTL).timestamp()),
        "nonce": NONCE,
    }
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    assert links.expiry(T0, TTL) == claims.expires_at
    assert len(mac) == 43 and "=" not in token  # 32-byte HMAC-SHA256, unpadded
    key = hmac.new(SECRET, b"rollbot-link.v2", hashlib.sha256).digest()
    expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == mac
    assert set(token) <= set(B64_ALPHABET + ".")  # safe in a URL as it is


@given(name=st.text(max_size=60), service=st.from_regex(r"[a-z0-9][a-z0-9-]{0,30}", fullmatch=True))
@settings(max_examples=100, deadline=None)
def test_round_trip_any_name(name, service):
    claims = links.verify(SECRET, make(user_name=name, service=service), now=T0)
    assert claims.user_name == name and claims.service == service


def test_other_key_is_a_bad_signature():
    with pytest.raises(links.LinkError) as err:
        links.verify(b"another-key", make(), now=T0)
    assert err.value.reason == "bad-signature"
    assert err.value.claims is None


def test_every_single_character_change_is_refused():
    token = make()
    for i, original in enumerate(token):
        for replacement in {"A", "B", "_", "-", ".", "0", "=", "%"} - {original}:
            tampered = token[:i] + replacement + token[i + 1 :]
            with pytest.raises(links.LinkError) as err:
                links.verify(SECRET, tampered, now=T0)
            assert err.value.reason in ("bad-signature", "malformed"), (i, replacement)
            assert err.value.claims is None


@given(
    data=st.data(),
    change=st.sampled_from(["replace", "insert", "delete", "swap-parts", "append"]),
)
@settings(max_examples=400, deadline=None)
def test_tampering_is_never_accepted(data, change):
    token = make()
    i = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.characters(codec="utf-8"))
    if change == "replace":
        tampered = token[:i] + char + token[i + 1 :]
    elif change == "insert":
        tampered = token[:i] + char + token[i:]
    elif change == "delete":
        tampered = token[:i] + token[i + 1 :]
    elif change == "append":
        tampered = token + char
    else:
        body, mac = token.split(".")
        tampered = f"{mac}.{body}"
    if tampered == token:
        return
    with pytest.raises(links.LinkError) as err:
        links.verify(SECRET, tampered, now=T0)
    assert err.value.reason in ("bad-signature", "malformed")


def test_a_longer_lifetime_cannot_be_forged_by_editing_the_claims():
    body, mac = make().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["exp"] += 86400
    forged = (
        base64.urlsafe_b64encode(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
        .rstrip(b"=")
        .decode()
    )
    with pytest.raises(links.LinkError) as err:
        links.verify(SECRET, f"{forged}.{mac}", now=T0)
    assert err.value.reason == "bad-signature"


def test_expiry_boundary():
    token = make()
    expires = T0 + TTL
    assert links.verify(SECRET, token, now=expires - timedelta(microseconds=1)).nonce == NONCE
    for now in (expires, expires + timedelta(days=3)):
        with pytest.raises(links.LinkError) as err:
            links.verify(SECRET, token, now=now)
        assert err.value.reason == "expired"
        assert err.value.claims is not None
        assert err.value.claims.user_id == "U0ONCALL"  # who to send a fresh one to
        assert "02:15 UTC" in err.value.message


@given(seconds=st.integers(1, 86400), offset=st.integers(-5, 5))
@settings(max_examples=200, deadline=None)
def test_expiry_boundary_any_lifetime(seconds, offset):
    token = make(ttl=timedelta(seconds=seconds))
    now = T0 + timedelta(seconds=seconds + offset)
    if offset < 0:
        assert links.verify(SECRET, token, now=now).expires_at == T0 + timedelta(seconds=seconds)
    else:
        with pytest.raises(links.LinkError) as err:
            links.verify(SECRET, token, now=now)
        assert err.value.reason == "expired"


def test_expired_and_tampered_is_a_bad_signature_not_expired():
    token = make()
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(links.LinkError) as err:
        links.verify(SECRET, tampered, now=T0 + timedelta(days=1))
    assert err.value.reason in ("bad-signature", "malformed")
    assert err.value.claims is None


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", ".", "abc.", ".abc", "a b.c", "x" * 3000, "é.é", "abc.def\n"],
)
def test_garbage_is_malformed_or_bad(token):
    with pytest.raises(links.LinkError) as err:
        links.verify(SECRET, token, now=T0)
    assert err.value.reason in ("malformed", "bad-signature")


def test_good_mac_over_unreadable_claims_is_malformed():
    for body in (
        base64.urlsafe_b64encode(b"not json").rstrip(b"=").decode(),
        base64.urlsafe_b64encode(b'{"v":2}').rstrip(b"=").decode(),
        base64.urlsafe_b64encode(b'{"v":1,"svc":1}').rstrip(b"=").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").rstrip(b"=").decode(),
    ):
        token = Signer(SECRET, salt=links.LINK_SALT, **links.SIGNER_OPTIONS).sign(body)
        with pytest.raises(links.LinkError) as err:
            links.verify(SECRET, token.decode(), now=T0)
        assert err.value.reason == "malformed", body


def test_a_mac_spelt_another_way_is_refused():
    # 43 base64url characters carry 258 bits for a 256-bit MAC: the last character's two
    # low bits are unused, so a lenient decoder reads four spellings as one MAC.
    body, mac = make().split(".")
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    index = alphabet.index(mac[-1])
    for other in (index ^ 1, index ^ 2, index ^ 3):
        respelt = mac[:-1] + alphabet[other]
        assert base64.urlsafe_b64decode(respelt + "=") == base64.urlsafe_b64decode(mac + "=")
        with pytest.raises(links.LinkError) as err:
            links.verify(SECRET, f"{body}.{respelt}", now=T0)
        assert err.value.reason == "bad-signature"


def test_csrf_token_is_bound_to_nonce_and_key():
    token = make()
    csrf = links.csrf_token(SECRET, NONCE)
    key = hmac.new(SECRET, b"rollbot-csrf.v2", hashlib.sha256).digest()
    expected = hmac.new(key, NONCE.encode(), hashlib.sha256).digest()
    assert csrf == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    assert csrf != links.csrf_token(SECRET, NONCE + "x")
    assert csrf != links.csrf_token(b"other-key", NONCE)
    assert csrf != token.split(".")[1]
    assert links.csrf_ok(SECRET, NONCE, csrf, csrf)
    assert not links.csrf_ok(SECRET, NONCE, csrf, None)
    assert not links.csrf_ok(SECRET, NONCE, None, csrf)
    assert not links.csrf_ok(SECRET, NONCE, csrf, csrf[:-1] + "A")
    assert not links.csrf_ok(SECRET, NONCE, "", "")
    assert not links.csrf_ok(SECRET, NONCE)
    assert not links.csrf_ok(SECRET, NONCE, "é" * 43, "é" * 43)


# ── rotation ───────────────────────────────────────────────────────────────────────────


def test_an_old_link_verifies_while_the_new_key_is_first_and_not_after_it_is_dropped():
    old_token = make()  # signed before the rotation, with SECRET alone
    claims = links.verify([NEW, SECRET], old_token, now=T0)
    assert claims.user_id == "U0ONCALL" and claims.nonce == NONCE
    with pytest.raises(links.LinkError) as err:
        links.verify([NEW], old_token, now=T0)
    assert err.value.reason == "bad-signature" and err.value.claims is None
    # Still who it was for when it has expired, under either key of the list.
    with pytest.raises(links.LinkError) as err:
        links.verify([NEW, SECRET], old_token, now=T0 + TTL)
    assert err.value.reason == "expired" and err.value.claims == claims


def test_new_links_are_signed_with_the_first_key():
    token = links.issue(
        [NEW, SECRET],
        service="payment-router",
        user_id="U0ONCALL",
        user_name="On-call Engineer",
        issued_at=T0,
        ttl=TTL,
        nonce=NONCE,
    )
    assert links.verify([NEW], token, now=T0).nonce == NONCE
    assert links.verify(NEW, token, now=T0).nonce == NONCE
    with pytest.raises(links.LinkError) as err:
        links.verify([SECRET], token, now=T0)
    assert err.value.reason == "bad-signature"


def test_the_csrf_token_rotates_the_same_way():
    old = links.csrf_token(SECRET, NONCE)  # a page opened before the rotation
    new = links.csrf_token([NEW, SECRET], NONCE)
    assert new == links.csrf_token(NEW, NONCE) != old
    assert links.csrf_ok([NEW, SECRET], NONCE, old, old)
    assert links.csrf_ok([NEW, SECRET], NONCE, new, new)
    assert not links.csrf_ok([NEW, SECRET], NONCE, old, new)  # both values must agree
    assert not links.csrf_ok([NEW], NONCE, old, old)


@pytest.mark.parametrize("keys", [[], [NEW, b""], b""])
def test_no_key_or_an_empty_key_signs_and_verifies_nothing(keys):
    with pytest.raises(ValueError, match="empty secret"):
        links.issue(
            keys, service="s", user_id="U", user_name="n", issued_at=T0, ttl=TTL, nonce=NONCE
        )
    with pytest.raises(ValueError, match="empty secret"):
        links.verify(keys, make(), now=T0)


@pytest.mark.parametrize(
    ("kw", "what"),
    [
        ({"issued_at": datetime(2026, 11, 22, 2, 0)}, "timezone-aware"),
        ({"nonce": "short"}, "nonce"),
        ({"nonce": "has spaces in it"}, "nonce"),
        ({"ttl": timedelta(0)}, "ttl"),
    ],
)
def test_issue_refuses_bad_input(kw, what):
    with pytest.raises(ValueError, match=what):
        make(**kw)


def test_issue_refuses_an_empty_key():
    with pytest.raises(ValueError):
        links.issue(
            b"",
            service="s",
            user_id="U",
            user_name="n",
            issued_at=T0,
            ttl=TTL,
            nonce=NONCE,
        )


def test_validity_and_url():
    link = links.IssuedLink(
        url="https://rollbot.example.com/runbooks/payment-router?token=t",
        service="payment-router",
        user_id="U0ONCALL",
        user_name="On-call Engineer",
        expires_at=T0 + TTL,
        ttl=TTL,
    )
    assert links.validity(link) == "valid 15 minutes (until 02:15 UTC), single use"
    short = dataclasses.replace(link, ttl=timedelta(seconds=40), expires_at=T0)
    assert links.validity(short) == "valid 1 minute (until 02:00 UTC), single use"
    assert (
        links.runbook_url("https://rollbot.example.com/", "payment-router", "a.b")
        == "https://rollbot.example.com/runbooks/payment-router?token=a.b"
    )


def test_redact_hides_tokens_wherever_they_stand():
    token = links.issue(
        SECRET,
        service="payment-router",
        user_id="U0ONCALL",
        user_name="On-call Engineer",
        issued_at=T0,
        ttl=TTL,
        nonce=NONCE,
    )
    cases = {
        f"GET /runbooks/payment-router?token={token} HTTP/1.1": (
            "GET /runbooks/payment-router?token=[redacted] HTTP/1.1"
        ),
        f"/runbooks/payment-router?done=abort&token={token}": (
            "/runbooks/payment-router?done=abort&token=[redacted]"
        ),
        f"/runbooks/{token}": "/runbooks/[redacted]",  # pasted as a path segment
        f"<https://rb.example/x?t={token}|open>": "<https://rb.example/x?t=[redacted]|open>",
        "token=abc&csrf=def&action=abort": "token=[redacted]&csrf=[redacted]&action=abort",
    }
    for text, redacted in cases.items():
        assert links.redact(text) == redacted
    for untouched in ("verified in t=1.2 s", "status.abort=true", "plain text"):
        assert links.redact(untouched) == untouched
