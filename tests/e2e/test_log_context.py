"""Log lines that say which request and which action they belong to (issue 16).

rollbot served over the sims, its log lines written as `rollbot serve --log-format json`
writes them (bot.runtime.logs' JSON formatter, context fields, redaction), captured here.

Aspects under test:
- an Abort clicked on the card (a signed Slack request, then the work it queues, on
  workers a status command started) writes
  one JSON line for the action with its service, action, actor (``slack:<user id>``, no
  name), the idempotency key it claimed (the one audited) and the request id of the
  Slack request that asked for it (the one answered in ``X-Request-Id``);
- over Socket Mode, the same Abort's line carries the id of the envelope that brought it;
- ``X-Request-Id``: a short safe id given by the caller is kept and answered; one too long
  or with other characters (it would be written into every line) is replaced by a new
  one; without one, each request gets its own.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bot.runtime import log_redaction, logs
from bot.sim.harness import ONCALL, SimWorld

pytestmark = pytest.mark.timeout(90)

NEW_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The root logger's lines, at INFO, as `rollbot serve --log-format json` writes them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter("json"))
    handler.addFilter(logs.ContextFields())
    handler.addFilter(log_redaction.RedactTokens())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_an_abort_writes_a_json_line_with_its_request_and_action(tmp_path, json_log) -> None:
    async with SimWorld(speed=600, workdir=tmp_path) as world:
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=40,
            what="the card with Abort",
        )
        # A status command first: its request starts the work queue's workers, and the
        # abort's work must still carry the abort's own request id.
        status = await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router").send()
        await world.wait_for(lambda: world.slack.responses, what="the status answer")
        response = await world.click(card, "rollout_abort")
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        assert NEW_ID.fullmatch(request_id) and request_id != status.headers["x-request-id"]

        def action_lines() -> list[dict[str, Any]]:
            return [r for r in json_log() if r["logger"] == "bot.actions.pipeline"]

        await world.wait_for(action_lines, timeout=30, what="the action's log line")
        (entry,) = [
            r for r in await world.rollbot.store.audit_entries() if r.entry.action == "abort"
        ]
    (line,) = action_lines()
    assert line["level"] == "INFO"
    assert line["message"] == "abort on payment-router: succeeded"
    assert line["service"] == "payment-router"
    assert line["action"] == "abort"
    assert line["actor"] == "slack:U0ONCALL"
    assert line["action_key"] == entry.entry.detail["idempotency_key"]
    assert line["request_id"] == request_id  # through Bolt's listener and the work queue


async def test_an_abort_over_socket_mode_carries_its_envelope_id(tmp_path, json_log) -> None:
    async with SimWorld(speed=600, workdir=tmp_path, slack_mode="socket") as world:
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=60,
            what="the card with Abort",
        )
        await world.click(card, "rollout_abort")

        def action_lines() -> list[dict[str, Any]]:
            return [r for r in json_log() if r["logger"] == "bot.actions.pipeline"]

        await world.wait_for(action_lines, timeout=30, what="the action's log line")
        (click,) = [e for e in world.slack.socket.envelopes if e.type == "interactive"]
    (line,) = action_lines()
    assert (line["action"], line["service"]) == ("abort", "payment-router")
    assert line["request_id"] == click.envelope_id


async def test_a_request_id_is_kept_only_when_short_and_safe(tmp_path) -> None:
    async with (
        SimWorld(speed=600, workdir=tmp_path) as world,
        httpx.AsyncClient(base_url=world.url, timeout=10) as client,
    ):

        async def answered(given: str | bytes | None) -> str:
            headers = {"X-Request-Id": given} if given is not None else {}
            response = await client.get("/healthz", headers=headers)
            assert response.status_code == 200
            return response.headers["x-request-id"]

        assert await answered("lb-7f3a.2_B") == "lb-7f3a.2_B"
        assert await answered("a" * 64) == "a" * 64
        for unsafe in ("a" * 65, "two words", "id;drop", "ünïcode".encode(), ""):
            assert NEW_ID.fullmatch(await answered(unsafe)), unsafe
        first, second = await answered(None), await answered(None)
        assert NEW_ID.fullmatch(first) and NEW_ID.fullmatch(second) and first != second
