"""Runbook pages over HTTP, without a browser: httpx against the bot in a SimWorld.

The bot, the Kubernetes API with the Argo Rollouts controller and the Slack Web API run
for real on loopback (bot/sim/harness.py); `server.public_url` is the bot's own URL
(SimWorld binds the bot's socket first; links read `public_url` at each issue).

Aspects under test:
- every answer carries the security headers (CSP without scripts, nosniff, no-referrer,
  no-store, no framing), the 404 and the refusals included;
- an unknown service: 404 listing the known ones, with links; a hostile name is escaped;
- without a token: the runbook rendered, the live Rollout, the flags, the note on how to
  get a signed link, and no form and no cookie;
- with a signed link: the page names the responder, "valid until … UTC, single use", an
  Abort form with the token and the CSRF token, the `rollbot_csrf` cookie (HttpOnly,
  SameSite=Strict, Path=/runbooks/); no Tier 2 form without a flag provider;
- a POST with the right token, cookie and field: 303 to the result page, which says
  aborted and verified and shows the state after it; the Rollout is aborted, audited as
  `runbook:U0ONCALL:…`; a second POST with the same token: 410 "already used", nothing
  executed twice; the page for the used link: 410 with the renew button;
- refused, and nothing executed: a forged or tampered token (403, no renew), a link for
  another service (403), a missing or mismatched CSRF token (403; the link still works
  afterwards), a foreign Origin (403), an unknown action (400), an expired link (410 with
  "Send me a fresh link in Slack"), which sends one DM with a working fresh link, once;
- someone not on call and not an owner: the responder refuses (403 naming who may);
- with a flag provider, Tier 2 from the page: only the flip that fits is offered (Open
  while the circuit is off), and it flips once, read back and audited;
- `/rollback payment-router runbook` answers the asker with a working link; without a
  link key it says what is missing;
- key rotation (`new,old`): new links are signed with the new key, a link and a page
  (its CSRF token) from before the rotation still act; once the old key is dropped, its
  links are refused as not valid (bad signature);
- a runbook full of XSS renders as text; so do a hostile user name in a link's claims
  (signed, expired and wrong-service pages), action and Origin; the metrics count pages
  and refused link uses.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.core import links
from bot.runbooks.links import issue_runbook_link
from bot.sim.harness import ONCALL, OUTSIDER, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim

pytestmark = pytest.mark.timeout(90)

SECRET = "runbook-link-key-for-tests-0123456789"
SERVICE = "payment-router"
CIRCUIT = "payments.new-router.circuit-open"
ABORT_PATCH_PATH = "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payment-router/status"


@pytest.fixture
async def world(tmp_path):
    async with SimWorld(
        speed=600,
        workdir=tmp_path,
        env={"ROLLBOT_SERVER__LINK_SECRET": SECRET},
        extra_services={
            "checkout": {
                "namespace": "payments",
                "rollout": "checkout",
                "channel": "#payments-deploys",
            }
        },
    ) as w:
        assert w.rollbot.settings.server.public_url == w.url
        yield w


@pytest.fixture
async def client(world):
    async with httpx.AsyncClient(base_url=world.url, timeout=30) as c:
        yield c


def link_for(
    world: SimWorld,
    user: tuple[str, str] = ONCALL,
    *,
    service: str = SERVICE,
    name: str = "On-call Engineer",
    now: datetime | None = None,
) -> str:
    url = issue_runbook_link(world.rollbot.settings, service, user[0], name, now=now)
    assert url is not None
    return url


def token_of(url: str) -> str:
    return url.split("token=", 1)[1]


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "no CSRF field on the page"
    return match.group(1)


def assert_secure_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # default-src 'none': no script at all
    assert re.search(r"style-src 'nonce-[\w-]+'", csp)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    if response.headers.get("content-type", "").startswith("text/html"):
        assert "<script" not in response.text.lower()
        nonce = re.search(r"'nonce-([\w-]+)'", csp)
        assert nonce and f'<style nonce="{nonce.group(1)}">' in response.text


async def executed(world: SimWorld) -> tuple[int, list]:
    patches = [r for r in world.kube.requests if r.method == "PATCH"]
    entries = [
        r for r in await world.rollbot.store.audit_entries() if r.entry.actor.startswith("runbook:")
    ]
    return len(patches), entries


async def post_action(
    client: httpx.AsyncClient, token: str, csrf: str | None, action: str = "abort", **headers: str
) -> httpx.Response:
    data = {"token": token, "action": action}
    if csrf is not None:
        data["csrf"] = csrf
    return await client.post(f"/runbooks/{SERVICE}/actions", data=data, headers=headers)


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ── reading ────────────────────────────────────────────────────────────────────────────


async def test_unknown_service_is_404_listing_the_known(client):
    response = await client.get("/runbooks/nope")
    assert response.status_code == 404
    assert_secure_headers(response)
    assert '<a href="/runbooks/checkout">checkout</a>' in response.text
    assert '<a href="/runbooks/payment-router">payment-router</a>' in response.text
    hostile = await client.get("/runbooks/%22%3E%3Cscript%3Ealert(1)")
    assert hostile.status_code == 404
    assert_secure_headers(hostile)
    assert "<script>" not in hostile.text and "&lt;script&gt;" in hostile.text
    deeper = await client.get("/runbooks/a/b/c")
    assert deeper.status_code == 404
    assert_secure_headers(deeper)
    index = await client.get("/runbooks")
    assert index.status_code == 200
    assert_secure_headers(index)
    assert '<a href="/runbooks/payment-router">payment-router</a>' in index.text


async def test_read_only_page_shows_runbook_state_and_how_to_act(world, client):
    await world.wait_for_card()  # the canary has paused at 25 % (the live state shown)
    response = await client.get(f"/runbooks/{SERVICE}")
    assert response.status_code == 200
    assert_secure_headers(response)
    text = response.text
    assert "payment-router — rollback runbook" in text  # the Markdown, rendered
    assert "<table>" in text and "|---|" not in text
    assert "Live Rollout" in text and "Paused" in text and "Canary weight" in text
    assert "payments.new-router.circuit-open" in text and "no flag provider configured" in text
    assert "/rollback payment-router runbook" in text
    assert "<form" not in text
    assert "set-cookie" not in response.headers


async def test_signed_page_names_the_responder_and_offers_abort(world, client):
    url = link_for(world)
    response = await client.get(url)
    assert response.status_code == 200
    assert_secure_headers(response)
    claims = links.verify(SECRET.encode(), token_of(url), now=datetime.now(UTC))
    assert (
        f"Signed link for On-call Engineer, valid until {claims.expires_at:%H:%M} UTC, single use"
    ) in response.text
    assert "Abort (Tier 1)" in response.text
    assert 'name="action" value="abort"' in response.text
    assert 'value="circuit-open"' not in response.text  # no flag provider in this world
    assert "Circuit breaker (Tier 2): not available here" in response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"rollbot_csrf={csrf_of(response)};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/runbooks/" in cookie
    assert "Secure" not in cookie  # public_url is http here


# ── acting ─────────────────────────────────────────────────────────────────────────────


async def test_abort_once_then_the_link_is_used(world, client):
    url = link_for(world)
    page = await client.get(url)
    response = await post_action(client, token_of(url), csrf_of(page), origin=world.url)
    assert response.status_code == 303
    assert_secure_headers(response)
    location = response.headers["location"]
    assert location.startswith(f"/runbooks/{SERVICE}?done=abort&token=")

    result = await client.get(location)
    assert result.status_code == 200
    assert_secure_headers(result)
    assert "Abort (Tier 1): succeeded" in result.text
    assert "Aborted <code>payments/payment-router</code>" in result.text
    assert "verified in" in result.text
    assert "Degraded" in result.text  # the state read after the abort
    assert "<form" not in result.text

    rollout = world.kube.get("rollouts", "payments", "payment-router")
    assert rollout["status"]["abort"] is True
    patches, entries = await executed(world)
    assert patches == 1
    (entry,) = entries
    assert entry.entry.actor == "runbook:U0ONCALL:On-call Engineer"
    assert entry.entry.action == "abort" and entry.entry.result == "succeeded"

    again = await post_action(client, token_of(url), csrf_of(page), origin=world.url)
    assert again.status_code == 410
    assert_secure_headers(again)
    assert "Link already used at" in again.text
    assert "Send me a fresh link in Slack" in again.text
    assert await executed(world) == (1, entries)

    reopened = await client.get(url)
    assert reopened.status_code == 410
    assert "Link already used at" in reopened.text
    assert 'action="/runbooks/payment-router/renew"' in reopened.text
    assert 'action="/runbooks/payment-router/actions"' not in reopened.text

    metrics = (await client.get("/metrics")).text
    assert metric(metrics, "rollbot_runbook_links_refused_total", reason="used") == 2
    assert metric(metrics, "rollbot_runbook_requests_total", kind="action", status="303") == 1
    assert metric(metrics, "rollbot_runbook_requests_total", kind="result", status="200") == 1


async def test_forged_and_tampered_tokens_are_403_and_run_nothing(world, client):
    forged = links.issue(
        b"not-the-key",
        service=SERVICE,
        user_id=ONCALL[0],
        user_name="On-call Engineer",
        issued_at=datetime.now(UTC),
        ttl=timedelta(minutes=15),
        nonce="forged-nonce-123",
    )
    good = token_of(link_for(world))
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for token in (forged, tampered, "garbage"):
        page = await client.get(f"/runbooks/{SERVICE}", params={"token": token})
        assert page.status_code == 403
        assert_secure_headers(page)
        assert "This link is not valid" in page.text
        assert "fresh link" not in page.text  # nothing signed to renew
        fake_csrf = links.csrf_token(b"not-the-key", "forged-nonce-123")
        client.cookies.set("rollbot_csrf", fake_csrf, path="/runbooks/")
        response = await post_action(client, token, fake_csrf)
        assert response.status_code == 403
        assert "Nothing was done" in response.text
    assert await executed(world) == (0, [])
    metrics = (await client.get("/metrics")).text
    assert metric(metrics, "rollbot_runbook_links_refused_total", reason="bad-signature") == 4
    assert metric(metrics, "rollbot_runbook_links_refused_total", reason="malformed") == 2


async def test_link_for_another_service_is_refused(world, client):
    url = link_for(world, service="checkout")
    page = await client.get(f"/runbooks/{SERVICE}", params={"token": token_of(url)})
    assert page.status_code == 403
    assert "This link is for another service" in page.text
    assert f'href="/runbooks/checkout?token={token_of(url)}"' in page.text
    own = await client.get(url)  # its own page works (the Rollout is missing: said so)
    assert own.status_code == 200 and "Rollout state unavailable" in own.text
    assert "Abort (Tier 1): not available" in own.text
    nonce = links.verify(SECRET.encode(), token_of(url), now=datetime.now(UTC)).nonce
    csrf = links.csrf_token(SECRET.encode(), nonce)  # the cookie set by its own page
    assert client.cookies.get("rollbot_csrf") == csrf
    response = await post_action(client, token_of(url), csrf)
    assert response.status_code == 403
    assert "This link is for another service" in response.text
    assert await executed(world) == (0, [])


async def test_csrf_missing_or_mismatched_is_refused_and_the_link_survives(world, client):
    url = link_for(world)
    page = await client.get(url)
    csrf = csrf_of(page)
    token = token_of(url)

    missing_field = await post_action(client, token, None)
    assert missing_field.status_code == 403
    assert_secure_headers(missing_field)
    assert "security check failed" in missing_field.text
    mismatched = await post_action(client, token, csrf[:-1] + ("A" if csrf[-1] != "A" else "B"))
    assert mismatched.status_code == 403
    client.cookies.clear()
    no_cookie = await post_action(client, token, csrf)
    assert no_cookie.status_code == 403
    client.cookies.set("rollbot_csrf", "forged", path="/runbooks/")
    wrong_cookie = await post_action(client, token, csrf)
    assert wrong_cookie.status_code == 403
    assert await executed(world) == (0, [])

    client.cookies.clear()
    again = await client.get(url)  # the link was not used up by the refusals
    assert again.status_code == 200
    ok = await post_action(client, token, csrf_of(again))
    assert ok.status_code == 303
    metrics = (await client.get("/metrics")).text
    assert metric(metrics, "rollbot_runbook_links_refused_total", reason="csrf") == 4


async def test_foreign_origin_and_unknown_action_are_refused(world, client):
    url = link_for(world)
    page = await client.get(url)
    csrf = csrf_of(page)
    evil = await post_action(client, token_of(url), csrf, origin="https://evil.example")
    assert evil.status_code == 403
    assert "came from another site" in evil.text
    referer = await post_action(client, token_of(url), csrf, referer="https://evil.example/x")
    assert referer.status_code == 403
    unknown = await post_action(client, token_of(url), csrf, action="promote-full")
    assert unknown.status_code == 400
    assert await executed(world) == (0, [])
    null_origin = await post_action(client, token_of(url), csrf, origin="null")
    assert null_origin.status_code == 303  # what a browser sends under no-referrer


async def test_expired_link_offers_a_fresh_one_in_slack_once(world, client):
    url = link_for(world, now=datetime.now(UTC) - timedelta(hours=1))
    page = await client.get(url)
    assert page.status_code == 410
    assert_secure_headers(page)
    assert "This link has expired" in page.text
    assert "Send me a fresh link in Slack" in page.text
    assert "payment-router — rollback runbook" in page.text  # still readable
    csrf = csrf_of(page)
    refused = await post_action(client, token_of(url), csrf)
    assert refused.status_code == 410
    assert await executed(world) == (0, [])

    renew = await client.post(
        f"/runbooks/{SERVICE}/renew", data={"token": token_of(url), "csrf": csrf}
    )
    assert renew.status_code == 200
    assert_secure_headers(renew)
    assert "sent <strong>On-call Engineer</strong> a fresh signed link" in renew.text
    dms = world.slack.direct_messages(ONCALL[0])
    assert len(dms) == 1
    fresh = re.search(r"<(http[^|>]+)\|open the runbook page>", dms[0]["text"])
    assert fresh and fresh.group(1).startswith(f"{world.url}/runbooks/{SERVICE}?token=")
    assert "single use" in dms[0]["text"]

    twice = await client.post(
        f"/runbooks/{SERVICE}/renew", data={"token": token_of(url), "csrf": csrf}
    )
    assert twice.status_code == 410
    assert "already sent" in twice.text
    assert len(world.slack.direct_messages(ONCALL[0])) == 1
    assert (await client.get(fresh.group(1))).status_code == 200


async def test_someone_not_allowed_is_refused_by_the_responder(world, client):
    url = link_for(world, OUTSIDER, name="Someone Else")
    page = await client.get(url)
    assert page.status_code == 200  # the link proves who; the responder decides may
    response = await post_action(client, token_of(url), csrf_of(page))
    assert response.status_code == 403
    assert_secure_headers(response)
    assert "Not authorised" in response.text
    assert "S0PAYMENTS" in response.text or "on call" in response.text.lower()
    patches, entries = await executed(world)
    assert patches == 0
    assert [e.entry.result for e in entries] == ["refused"]
    assert world.kube.get("rollouts", "payments", "payment-router")["status"].get("abort") in (
        None,
        False,
    )


async def test_circuit_open_from_the_page_with_a_flag_provider(tmp_path):
    with LaunchDarklySim() as flags:
        flags.add_flag("default", CIRCUIT, on=False)
        settings = {
            "flags": {
                "provider": "launchdarkly",
                "url": flags.url,
                "project": "default",
                "environment": "production",
            }
        }
        env = {"ROLLBOT_SERVER__LINK_SECRET": SECRET, "ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN}
        async with (
            SimWorld(speed=600, workdir=tmp_path, settings=settings, env=env) as world,
            httpx.AsyncClient(base_url=world.url, timeout=30) as client,
        ):
            url = link_for(world)
            page = await client.get(url)
            assert 'name="action" value="circuit-open"' in page.text
            assert 'value="circuit-close"' not in page.text  # it is off: only Open fits
            response = await post_action(client, token_of(url), csrf_of(page), "circuit-open")
            assert response.status_code == 303
            result = await client.get(response.headers["location"])
            assert "Open the circuit (Tier 2): succeeded" in result.text
            assert f"Opened the circuit <code>{CIRCUIT}</code>" in result.text
            assert flags.is_on("default", CIRCUIT)
            assert len([c for c in flags.requests if c.method == "PATCH"]) == 1
            _, entries = await executed(world)
            assert [(e.entry.action, e.entry.result) for e in entries] == [
                ("circuit-open", "succeeded")
            ]


async def test_link_key_rotation_keeps_earlier_links_until_the_old_key_is_dropped(world, client):
    before = link_for(world)  # signed with SECRET, its page opened before the rotation
    page = await client.get(before)
    unused = link_for(world)
    new_key = "the-new-link-key-after-rotation-0123456789"
    world.rollbot.settings.server.link_secret = f"{new_key},{SECRET}"  # read at each request

    acted = await post_action(client, token_of(before), csrf_of(page), origin=world.url)
    assert acted.status_code == 303  # the old link and its page's CSRF token still work
    assert (await client.get(unused)).status_code == 200
    fresh = link_for(world)
    claims = links.verify(new_key.encode(), token_of(fresh), now=datetime.now(UTC))
    assert claims.user_id == ONCALL[0]  # signed with the first key
    assert (await client.get(fresh)).status_code == 200

    world.rollbot.settings.server.link_secret = new_key  # the old key dropped
    dropped = await client.get(unused)
    assert dropped.status_code == 403 and "This link is not valid" in dropped.text
    assert "signed with another key" in dropped.text
    assert (await client.get(fresh)).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert metric(metrics, "rollbot_runbook_links_refused_total", reason="bad-signature") == 1


# ── Slack ──────────────────────────────────────────────────────────────────────────────


async def test_slash_command_issues_a_link_to_the_asker(world, client):
    await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router runbook").send()
    body = await world.wait_for(
        lambda: next(
            (r.body for r in world.slack.responses if "runbook page" in r.body.get("text", "")),
            None,
        ),
        timeout=10,
        what="the link reply",
    )
    assert body["response_type"] == "ephemeral"
    assert "single use" in body["text"] and "On-call Engineer" in body["text"]
    url = re.search(r"<(http[^|>]+)\|open the runbook page>", body["text"]).group(1)
    page = await client.get(url)
    assert page.status_code == 200
    assert "Signed link for On-call Engineer, valid until" in page.text


async def test_slash_command_without_a_link_key_says_what_is_missing(tmp_path):
    # Neither a link key nor a public URL (SimWorld sets one by default).
    unset = {"server": {"public_url": None}}
    async with SimWorld(speed=600, workdir=tmp_path, settings=unset) as world:
        world.rollbot.settings.server.public_url = None  # neither is set: both are named
        await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router runbook").send()
        text = await world.wait_for(
            lambda: "\n".join(json.dumps(r.body) for r in world.slack.responses),
            timeout=10,
            what="the reply",
        )
        assert "ROLLBOT_SERVER__LINK_SECRET" in text and "server.public_url" in text
        async with httpx.AsyncClient(base_url=world.url) as client:
            page = await client.get(f"/runbooks/{SERVICE}", params={"token": "x.y"})
            assert page.status_code == 200 and "Signed links are off" in page.text
            assert "<form" not in page.text


# ── XSS ────────────────────────────────────────────────────────────────────────────────

XSS_RUNBOOK = """---
service: "<script>alert('fm')</script>"
---
# Runbook <script>alert(1)</script>

<img src=x onerror=alert(2)>

[click](javascript:alert(3)) and [ok](https://example.com)

| a | b |
|---|---|
| <iframe src=//evil> | [x](data:text/html,hi) |

```html" onload="alert(4)
</code></pre><script>alert(5)</script>
```
"""


async def test_hostile_runbook_renders_as_text(tmp_path: Path):
    runbook = tmp_path / "hostile.md"
    runbook.write_text(XSS_RUNBOOK)
    settings = {"services": {SERVICE: {"runbook": str(runbook)}}}
    async with (
        SimWorld(speed=600, workdir=tmp_path, settings=settings) as world,
        httpx.AsyncClient(base_url=world.url) as client,
    ):
        page = await client.get(f"/runbooks/{SERVICE}")
        assert page.status_code == 200
        assert_secure_headers(page)
        text = page.text.lower()
        for needle in ("<script", "<img", "<iframe", 'href="javascript', 'href="data:'):
            assert needle not in text, needle
        # every "<" of the runbook is escaped, so a real tag never carries a handler
        assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", text)
        assert "(javascript:alert(3))" in page.text  # a refused link shows as its text
        assert 'href="https://example.com"' in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def escaped(page: httpx.Response, marker: str) -> None:
    """`<script>marker</script>` is on the page as text, and no `<script` is raw."""
    assert "<script" not in page.text.lower()
    assert f"&lt;script&gt;{marker}&lt;/script&gt;" in page.text


async def test_hostile_values_from_the_link_and_the_request_are_escaped(world, client):
    name = "<script>name</script>"
    url = link_for(world, name=name)
    signed = await client.get(url)
    assert signed.status_code == 200
    escaped(signed, "name")
    csrf = csrf_of(signed)
    action = await post_action(client, token_of(url), csrf, action="<script>action</script>")
    assert action.status_code == 400
    escaped(action, "action")
    origin = await post_action(client, token_of(url), csrf, origin="https://<script>o</script>")
    assert origin.status_code == 403
    escaped(origin, "o")
    other = token_of(link_for(world, service="checkout", name=name))
    wrong = await client.get(f"/runbooks/{SERVICE}", params={"token": other})
    assert wrong.status_code == 403
    escaped(wrong, "name")
    expired = await client.get(
        link_for(world, name=name, now=datetime.now(UTC) - timedelta(hours=1))
    )
    assert expired.status_code == 410 and "Send me a fresh link in Slack" in expired.text
    escaped(expired, "name")
    assert await executed(world) == (0, [])


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", f"/runbooks/{SERVICE}", "GET, HEAD"),
        ("DELETE", f"/runbooks/{SERVICE}/actions", "POST"),
        ("PUT", "/runbooks", "GET, HEAD"),
        ("PATCH", "/runbooks/nope/deeper", "GET"),
    ],
)
async def test_other_methods_are_405_with_allow_and_the_security_headers(
    world, client, method, path, allow
):
    before = await executed(world)
    response = await client.request(method, path, data={"action": "abort"})
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert "Method not allowed" in response.text and f"{method} is not" in response.text
    assert_secure_headers(response)
    assert await executed(world) == before  # nothing ran
