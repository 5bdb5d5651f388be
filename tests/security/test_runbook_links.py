"""Issue 12, findings 4 and 14: signed runbook links go to their person only, never reach
a log line, survive a refusal, and are never built from a request's Host header.

- 4: the on-call acknowledges in PagerDuty (the signed v3 webhook, through the real
  `/webhooks/pagerduty` route): their link arrives as a Slack DM to their Slack id, and no
  note on the incident (nor anything else in PagerDuty or in the channel) holds the URL or
  the token; the incident's note says a link was sent by DM. The same acknowledgement
  delivered again (a new `X-Webhook-Id`: the signature covers only the body) sends no
  second DM. Without `server.public_url` the DM says why there is no link.
- 4: `rollbot serve` as its own process, its real uvicorn access log on disk, in the text
  format and in JSON (`--log-format json`: every line one JSON object, the access lines
  with their request id and path): requests carrying a token (`?token=`, the
  post/redirect/get result URL, a token as a path segment) are logged, the token never
  is; rollbot's own log lines and exception tracebacks through the logging `bot.cli`
  configures are redacted the same way, in both formats.
- 14: a POST refused by the responder (the owners group could not be read) is shown (403)
  and audited, and leaves the link unused: the same link works once its person may act.
- 14: without `server.public_url`, with `Host: evil.example`: the renew button issues no
  link and says why, nothing anywhere holds evil.example, the slash command says why,
  the log says it once (at start), and `rollbot check-config` reports it.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core import links
from bot.runbooks.links import issue_runbook_link
from bot.settings import check_config, load_settings
from bot.sim.harness import CHANNEL_ID, ONCALL, OUTSIDER, PD_ONCALL, SimWorld
from bot.web.runbook_guard import CSRF_COOKIE
from tests.e2e.serving import ROOT, serve
from tests.helpers import eventually, free_port

pytestmark = pytest.mark.timeout(120)

SECRET = "security-link-key-0123456789abcdef"
SERVICE = "payment-router"
KEY = "rollbot/payment-router/payments/payment-router@42"
LINK = re.compile(r"<(http[^|>]+)\|open the runbook page>")


def _link_dms(world: SimWorld, user: str) -> list[str]:
    return [
        m["text"] for m in world.slack.direct_messages(user) if "/runbooks/" in m.get("text", "")
    ]


async def _inbox_settled(world: SimWorld, timeout: float = 30) -> None:
    """Every stored webhook delivery has been processed (positive evidence, not a sleep)."""

    async def settled() -> bool:
        return not await world.rollbot.store.pending_webhooks()

    await eventually(settled, timeout=timeout, what="every webhook delivery processed")


# ── 4: the acknowledger's link is theirs alone ──────────────────────────────────────────


async def test_the_acknowledgers_link_goes_by_dm_and_no_note_holds_it() -> None:
    async with SimWorld(speed=600, pagerduty=True) as world:
        await world.wait_for_card()
        incident = await world.wait_for(
            lambda: world.pd.incident_by_key(KEY), timeout=30, what="the PagerDuty incident"
        )
        world.pd.acknowledge(incident["id"], PD_ONCALL)  # a signed v3 webhook to rollbot

        dms = await world.wait_for(
            lambda: _link_dms(world, ONCALL[0]), timeout=30, what="the link, by Slack DM"
        )
        assert len(dms) == 1
        url = LINK.search(dms[0])
        assert url and url.group(1).startswith(f"{world.url}/runbooks/{SERVICE}?token=")
        token = url.group(1).split("token=", 1)[1]
        assert "single use" in dms[0]

        sent = await world.wait_for(
            lambda: [n for n in world.pd.notes(incident["id"]) if "direct message" in n["content"]],
            timeout=30,
            what="the note saying a link was sent by DM",
        )
        assert "On-call Engineer" in sent[0]["content"]
        # Nobody else sees the link: not the incident (notes, events), not the channel.
        in_pagerduty = json.dumps([world.pd.notes(incident["id"]), world.pd.events()])
        assert token not in in_pagerduty and "token=" not in in_pagerduty
        assert token not in json.dumps(world.slack.messages(CHANNEL_ID))
        assert token not in json.dumps(world.slack.ephemerals)

        async with httpx.AsyncClient(timeout=30) as client:
            page = await client.get(url.group(1))
            assert page.status_code == 200
            assert "Signed link for On-call Engineer" in page.text

            # The same acknowledgement again, under a new X-Webhook-Id (the signature
            # covers only the body): processed or not, no second DM, no second note.
            ack = next(d for d in world.pd.deliveries() if d.event_type == "incident.acknowledged")
            again = await client.post(
                f"{world.url}/webhooks/pagerduty",
                content=ack.body,
                headers={**ack.headers, "X-Webhook-Id": "redelivered-by-hand"},
            )
        assert again.status_code in (200, 202)
        await _inbox_settled(world)
        assert len(_link_dms(world, ONCALL[0])) == 1
        notes = [n for n in world.pd.notes(incident["id"]) if "direct message" in n["content"]]
        assert len(notes) == 1


async def test_without_public_url_the_acknowledger_is_told_why_and_gets_no_link() -> None:
    async with SimWorld(
        speed=600, pagerduty=True, settings={"server": {"public_url": None}}
    ) as world:
        assert world.rollbot.settings.server.public_url is None
        await world.wait_for_card()
        incident = await world.wait_for(
            lambda: world.pd.incident_by_key(KEY), timeout=30, what="the PagerDuty incident"
        )
        world.pd.acknowledge(incident["id"], PD_ONCALL)
        told = await world.wait_for(
            lambda: [
                m["text"]
                for m in world.slack.direct_messages(ONCALL[0])
                if "server.public_url" in m.get("text", "")
            ],
            timeout=30,
            what="the DM saying why there is no link",
        )
        assert "No signed runbook link for you" in told[0]
        assert "token=" not in json.dumps(world.slack.direct_messages(ONCALL[0]))
        await _inbox_settled(world)
        assert not any("token=" in n["content"] for n in world.pd.notes(incident["id"]))


# ── 4: no token in any log line ─────────────────────────────────────────────────────────


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def _wait_serving(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    async with httpx.AsyncClient(timeout=5) as client:

        async def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"rollbot serve exited:\n{_tail(log)}")
            try:
                return (await client.get(f"{url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(
            healthy, timeout=60, interval=0.05, what=lambda: f"rollbot serve up:\n{_tail(log)}"
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _access_lines(text: str, log_format: str) -> list[str]:
    """The access-log lines of the runbook and health requests; in JSON, every line of the
    log must be one JSON object (uvicorn's own lines included) and each access line names
    its request (`bot.web.observe`)."""
    if log_format == "text":
        return [
            line
            for line in text.splitlines()
            if '"GET /runbooks/' in line or '"GET /healthz?' in line
        ]
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(r, dict) and r.get("level") and r.get("logger") for r in records)
    access = [
        r
        for r in records
        if r["logger"] == "uvicorn.access"
        and str(r.get("http_path", "")).startswith(("/runbooks/", "/healthz?"))
    ]
    assert all(r["http_method"] == "GET" and re.fullmatch(r"[0-9a-f]{32}", r["request_id"])
               for r in access), access  # fmt: skip
    return [f"{r['http_path']} {r['http_status']} | {r['message']}" for r in access]


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_access_log_of_rollbot_serve_never_holds_a_token(
    tmp_path: Path, log_format: str
) -> None:
    # The port is in the settings (the links' public URL) before the process starts, so
    # `tests.e2e.serving.start` (which retries on another port) does not fit: a port taken
    # in between fails this test with "address already in use" in the log.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with SimWorld(
        speed=600,
        start_bot=False,
        workdir=tmp_path,
        env={"ROLLBOT_SERVER__LINK_SECRET": SECRET},
        settings={"server": {"public_url": url}},
    ) as world:
        settings = load_settings(world.config_path, environ=world.bot_env)
        link = issue_runbook_link(settings, SERVICE, ONCALL[0], "On-call Engineer")
        assert link is not None and link.startswith(url)
        token = link.split("token=", 1)[1]
        log = tmp_path / "serve.log"
        proc = serve(world, port, log, log_format=log_format)
        try:
            await _wait_serving(proc, url, log)
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                assert (await client.get(link)).status_code == 200
                await client.get(f"/runbooks/{SERVICE}", params={"done": "abort", "token": token})
                await client.get(f"/runbooks/{token}")  # a token pasted as a path segment
                await client.get("/healthz", params={"t": token})

            await world.wait_for(
                lambda: len(_access_lines(log.read_text(), log_format)) >= 4,
                timeout=30,
                what="the access log lines of the four requests",
            )
        finally:
            _stop(proc)
        text = log.read_text()
        claims, mac = token.split(".")
        assert token not in text and mac not in text and claims not in text, text[-3000:]
        lines = "\n".join(_access_lines(text, log_format))
        assert f"GET /runbooks/{SERVICE}?token=[redacted]" in lines
        assert "done=abort&token=[redacted]" in lines
        assert "GET /healthz?t=[redacted]" in lines
        assert '"GET /runbooks/[redacted] HTTP/1.1" 404' in lines
        if log_format == "json":
            assert f"/runbooks/{SERVICE}?token=[redacted] 200 |" in lines
            assert "/runbooks/[redacted] 404 |" in lines


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_rollbots_own_log_lines_and_tracebacks_are_redacted(
    tmp_path: Path, log_format: str
) -> None:
    """The logging `rollbot` configures (bot.cli), in a process of its own: a line of
    rollbot's, a third-party line, an exception's traceback and an access-log record (its
    path in the record's args) each carry a token. Text: the access record through
    uvicorn's own formatter, as uvicorn configures it by default; JSON: as `rollbot serve`
    leaves uvicorn's loggers (no config of their own, so to the root logger's handler)."""
    token = links.issue(
        SECRET.encode(),
        service=SERVICE,
        user_id=ONCALL[0],
        user_name="On-call Engineer",
        issued_at=datetime.now(UTC),
        ttl=timedelta(minutes=15),
        nonce=secrets.token_urlsafe(18),
    )
    uvicorn_setup = (
        "from uvicorn.config import Config, LOGGING_CONFIG\n"
        'Config(app=lambda *a: None, log_config=LOGGING_CONFIG, log_level="info")'
        if log_format == "text"
        else ""
    )
    script = f"""
import logging, sys
from bot.cli import main
from bot.runtime import logs
main(["check-config", "--config", sys.argv[1]])  # sets up logging as every command does
logs.configure({log_format!r})  # as `rollbot serve --log-format` does
token = {token!r}
url = "https://rollbot.example/runbooks/payment-router?token=" + token
logging.getLogger("bot.web.runbooks").info("sent %s to U0ONCALL", url)
logging.getLogger("slack_sdk.web").warning("body: text=" + url)
try:
    raise RuntimeError("could not open " + url)
except RuntimeError:
    logging.getLogger("bot.paging").exception("link not sent")
logging.getLogger("slack_sdk.web").info("sent", extra={{"link": url}})
{uvicorn_setup}
logging.getLogger("uvicorn.access").info(
    '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
    "/runbooks/payment-router?done=abort&token=" + token, "1.1", 303,
)
print("done", flush=True)
"""
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "rollbot.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "done" in run.stdout
    for part in (token, *token.split(".")):
        assert part not in out, out
    if log_format == "json":
        # check-config's own report (printed, not logged) is not a log line
        records = [json.loads(line) for line in run.stderr.splitlines() if line[:1] == "{"]
        by_logger = {r["logger"]: r for r in records if r["level"] != "DEBUG"}
        assert set(by_logger) >= {"bot.web.runbooks", "slack_sdk.web", "bot.paging"}
        assert by_logger["bot.paging"]["exc_info"].startswith("Traceback")
        assert "RuntimeError: could not open" in by_logger["bot.paging"]["exc_info"]
        (extra,) = [r for r in records if "link" in r]
        assert extra["link"].endswith("?token=[redacted]")
        (access,) = [r for r in records if r["logger"] == "uvicorn.access"]
        assert access["http_path"] == "/runbooks/payment-router?done=abort&token=[redacted]"
        assert (access["client"], access["http_method"], access["http_status"]) == (
            "127.0.0.1:5000",
            "GET",
            303,
        )
        out = "\n".join(f"{r['message']}\n{r.get('exc_info', '')}" for r in records)
    assert "sent https://rollbot.example/runbooks/payment-router?token=[redacted]" in out
    assert "body: text=https://rollbot.example/runbooks/payment-router?token=[redacted]" in out
    assert "RuntimeError: could not open https://rollbot.example/" in out
    assert '"GET /runbooks/payment-router?done=abort&token=[redacted] HTTP/1.1" 303' in out


# ── 14: a refusal does not use the link up ─────────────────────────────────────────────


async def test_a_refused_post_leaves_the_link_usable_for_a_later_allowed_one(tmp_path):
    # The owners group cannot be read at first (it does not exist yet in Slack): only a
    # confirmed on-call could act, so the responder refuses. Then it can, with the person in.
    late_group = "S0LATERGRP"
    async with SimWorld(
        speed=600,
        workdir=tmp_path,
        env={"ROLLBOT_SERVER__LINK_SECRET": SECRET},
        settings={"services": {SERVICE: {"owners": {"slack_usergroup": late_group}}}},
    ) as world:
        url = issue_runbook_link(world.rollbot.settings, SERVICE, OUTSIDER[0], "Someone Else")
        assert url is not None
        token = url.split("token=", 1)[1]
        async with httpx.AsyncClient(base_url=world.url, timeout=30) as client:
            page = await client.get(url)
            assert page.status_code == 200
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            form = {"token": token, "csrf": csrf, "action": "abort"}
            refused = await client.post(f"/runbooks/{SERVICE}/actions", data=form)
            assert refused.status_code == 403
            assert "Not authorised" in refused.text
            audit = [r.entry for r in await world.rollbot.store.audit_entries()]
            assert [(e.actor.split(":")[0], e.action, e.result) for e in audit] == [
                ("runbook", "abort", "refused")
            ]
            assert not any(r.method == "PATCH" for r in world.kube.requests)

            # The group is readable now, with the person in it: the same link works, once.
            world.slack.add_usergroup(late_group, "payments-owners", [OUTSIDER[0]])
            allowed = await client.post(f"/runbooks/{SERVICE}/actions", data=form)
            assert allowed.status_code == 303, allowed.text
            assert "still unused" in refused.text  # the refusal said so
            result = await client.get(allowed.headers["location"])
            assert "Abort (Tier 1): succeeded" in result.text
            assert world.kube.get("rollouts", "payments", SERVICE)["status"].get("abort") is True
            audit = [r.entry for r in await world.rollbot.store.audit_entries()]
            assert [(e.action, e.result) for e in audit] == [
                ("abort", "refused"),
                ("abort", "succeeded"),
            ]
            assert audit[1].actor.startswith(f"runbook:{OUTSIDER[0]}")
            used = await client.post(f"/runbooks/{SERVICE}/actions", data=form)
            assert used.status_code == 410


# ── 14: no public_url, no link; never one built from Host ───────────────────────────────


async def test_without_public_url_no_link_is_built_from_the_host_header(tmp_path, caplog):
    caplog.set_level("INFO")
    async with SimWorld(
        speed=600,
        workdir=tmp_path,
        env={"ROLLBOT_SERVER__LINK_SECRET": SECRET},
        settings={"server": {"public_url": None}},
    ) as world:
        assert world.rollbot.settings.server.public_url is None
        secret = SECRET.encode()
        nonce = secrets.token_urlsafe(18)
        expired = links.issue(
            secret,
            service=SERVICE,
            user_id=ONCALL[0],
            user_name="On-call Engineer",
            issued_at=datetime.now(UTC) - timedelta(hours=1),
            ttl=timedelta(minutes=15),
            nonce=nonce,
        )
        csrf = links.csrf_token(secret, nonce)
        evil = {"Host": "evil.example", "Cookie": f"{CSRF_COOKIE}={csrf}"}
        answers: list[httpx.Response] = []
        async with httpx.AsyncClient(base_url=world.url, timeout=30) as client:
            page = await client.get(f"/runbooks/{SERVICE}", params={"token": expired}, headers=evil)
            answers.append(page)
            renew = await client.post(
                f"/runbooks/{SERVICE}/renew", data={"token": expired, "csrf": csrf}, headers=evil
            )
            answers.append(renew)
        assert renew.status_code == 409
        assert "server.public_url" in renew.text
        assert "fresh link sent" not in renew.text.lower()

        await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router runbook").send()
        reply = await world.wait_for(
            lambda: [r.body for r in world.slack.responses if "public_url" in json.dumps(r.body)],
            timeout=10,
            what="the slash command saying why there is no link",
        )
        assert "token=" not in json.dumps(reply)

        for answer in answers:
            assert "evil.example" not in answer.text
            assert "evil.example" not in json.dumps(dict(answer.headers))
        said = json.dumps(
            [c.body for c in world.slack.calls] + [r.body for r in world.slack.responses]
        )
        assert "evil.example" not in said
        assert not _link_dms(world, ONCALL[0])
        # The log warns once (at start), not at every refusal.
        why = [
            r
            for r in caplog.records
            if r.levelno >= logging.WARNING and "server.public_url" in r.getMessage()
        ]
        assert len(why) == 1 and why[0].name == "bot.web.runbooks"


def test_check_config_requires_public_url_for_signed_links(tmp_path: Path) -> None:
    config = tmp_path / "rollbot.yaml"
    config.write_text(json.dumps({"services": {}}))
    env: dict[str, Any] = {
        "ROLLBOT_SLACK__BOT_TOKEN": "xoxb-1",
        "ROLLBOT_SLACK__SIGNING_SECRET": "s",
        "ROLLBOT_SERVER__LINK_SECRET": SECRET,
    }
    problems = {p.key_path: p.message for p in check_config(config, environ=env)}
    assert "server.public_url" in problems
    assert "link" in problems["server.public_url"]

    config.write_text(json.dumps({"services": {}, "server": {"public_url": "https://rb.example"}}))
    problems = {p.key_path: p.message for p in check_config(config, environ=env)}
    assert "server.public_url" not in problems
    # No link key: the pages are read-only by choice, and public_url is not required.
    del env["ROLLBOT_SERVER__LINK_SECRET"]
    config.write_text(json.dumps({"services": {}}))
    problems = {p.key_path: p.message for p in check_config(config, environ=env)}
    assert "server.public_url" not in problems
