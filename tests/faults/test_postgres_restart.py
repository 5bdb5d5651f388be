"""Fault 5 (issue 15): PostgreSQL restarted under load.

Two real `rollbot serve` replicas (a leader and a standby) on one real PostgreSQL. While
Alertmanager webhooks arrive one after another, PostgreSQL is stopped and started again
(`pg_ctl stop -m fast`, then `start`); an Abort is clicked while it is down and clicked
again once it is back, as a responder would.

Checked against the sims' and the database's own records:
- no lost webhook: every alert the test sent is, in the end, accepted (a webhook answered
  503 while the database was down is sent again, as Alertmanager does) and processed — the
  inbox has no pending row and the card counts every alert firing;
- no duplicate action: exactly one PATCH of `status.abort` reached the Kubernetes sim and
  one abort succeeded in the audit log;
- the replicas recover without being restarted: both processes are the ones started (same
  PIDs, still running), one of them leads (`/readyz` 200), and a webhook sent after the
  restart is processed.

Figures: `webhooks_sent`, `answered_503_while_down` (refused, then delivered again),
`lost` (alerts sent that no webhook processed without error carries, from the inbox),
`webhooks_processed_twice` (alerts in more than one processed webhook), `cards`,
`messages_posted_twice` (a message key in Slack more than once), `abort_patches`,
`db_down_s` (how long PostgreSQL was down).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot.sim import alerts as sim_alerts
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, SimWorld
from tests.e2e.serving import Served, leading, start
from tests.helpers import eventually

pytestmark = [pytest.mark.timeout(180), pytest.mark.peer("postgres")]

WEBHOOKS = 30
RESTART_AFTER = 10  # webhooks accepted before PostgreSQL is stopped


def _alert(i: int) -> dict[str, Any]:
    return sim_alerts.webhook(
        [
            sim_alerts.alert(
                f"RollbotLoad{i:03d}",
                service="payment-router",
                status="firing",
                labels={"slo": "error_rate"},
                summary=f"load alert {i}",
            )
        ]
    )


def _lines(card: dict[str, Any] | None) -> list[str]:
    """The card's texts (header, incident line, alerts), for a failure's message."""
    out = []
    for block in (card or {}).get("blocks") or []:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"][:200])
        for e in block.get("elements") or []:
            text = e.get("text")
            out.append((text.get("text", "") if isinstance(text, dict) else str(text))[:200])
    return out


def _inbox(url: str) -> list[tuple[Any, ...]]:
    """The inbox's rows (id, processed, error, the alert names), for a failure's message."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, processed_at IS NOT NULL, error, body FROM webhook_inbox")
            ).all()
    finally:
        engine.dispose()
    return [
        (r[0], r[1], r[2], [a["labels"]["alertname"] for a in json.loads(r[3])["alerts"]])
        for r in rows
    ]


def _figure(name: str, value: object) -> None:
    print(f"FIGURE {name}={value}")


async def _deliver(url: str, payload: dict[str, Any], refused: list[int]) -> None:
    """Send until 200, as Alertmanager retries a 5xx; each refusal is counted."""
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            try:
                response = await sim_alerts.send(
                    f"{url}/webhooks/alertmanager", ALERTMANAGER_TOKEN, payload, client=client
                )
            except httpx.TransportError:
                refused.append(0)
            else:
                if response.status_code == 200:
                    return
                assert response.status_code == 503, response.text  # retryable, never 500
                refused.append(response.status_code)
            await asyncio.sleep(0.1)  # Alertmanager's own backoff, compressed


async def _ready(served: Served) -> bool:
    """Ready and leading (a standby is Ready too)."""
    return await leading(served.url)


def _pending(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL")
                ).scalar_one()
            )
    finally:
        engine.dispose()


async def test_postgres_restarted_under_load(
    postgres_server: Any, postgres_db_url: str, tmp_path: Path
) -> None:
    async with SimWorld(speed=600, start_bot=False, database_url=postgres_db_url) as world:
        a = await start(world, tmp_path / "a.log")
        b: Served | None = None
        try:
            await eventually(lambda: _ready(a), timeout=30, what="a leading")
            b = await start(world, tmp_path / "b.log")
            world.attach_bot(a.url)
            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
                timeout=60,
                what="the card with Abort (Tier 1)",
            )
            refused: list[int] = []
            for i in range(RESTART_AFTER):
                await _deliver(a.url, _alert(i), refused)

            # PostgreSQL goes away under load: the next webhooks and an Abort arrive.
            stopped = time.monotonic()
            await asyncio.to_thread(postgres_server.stop)
            sending = asyncio.create_task(
                _deliver_all(a.url, range(RESTART_AFTER, WEBHOOKS), refused)
            )
            click = await world.click(card, "rollout_abort")
            assert click.status_code == 200  # acked: the work runs after the answer
            await eventually(lambda: len(refused) > 0, timeout=20, what="a webhook refused")
            await asyncio.to_thread(postgres_server.start)
            down = time.monotonic() - stopped
            await asyncio.wait_for(sending, timeout=60)

            # The responder clicks again once things answer (the first click may have
            # failed while the database was down, or may have worked).
            await world.click(card, "rollout_abort")
            await world.wait_for(
                lambda: "Aborted, verified" in json.dumps(world.card(), ensure_ascii=False),
                timeout=40,
                what="the abort verified on the card",
            )
            # After the restart, one more webhook: processed by the same processes.
            await _deliver(a.url, _alert(WEBHOOKS), refused)
            total = WEBHOOKS + 1

            def all_firing() -> bool:
                text = json.dumps(world.card(), ensure_ascii=False)
                return f"{total} alerts firing" in text or f"({total})" in text

            await eventually(
                all_firing,
                timeout=60,
                interval=0.05,
                what=lambda: (
                    f"{total} alerts on the card: {_lines(world.card())}; "
                    f"inbox: {_inbox(postgres_db_url)}"
                ),
            )

            async def drained() -> bool:
                return await asyncio.to_thread(_pending, postgres_db_url) == 0

            await eventually(drained, timeout=30, what="the inbox drained")
            patches = [
                r
                for r in world.kube.requests
                if r.method == "PATCH" and "abort" in json.dumps(r.body)
            ]
            # From the database's own inbox: every alert sent is in a webhook processed
            # without error (lost: those that are not), and no alert's webhook was
            # processed twice; from Slack's: one card, and no message posted twice.
            sent = {f"RollbotLoad{i:03d}" for i in range(total)}
            processed = [names for _, done, error, names in _inbox(postgres_db_url) if done]
            processed_errors = [r for r in _inbox(postgres_db_url) if r[1] and r[2]]
            seen = Counter(name for names in processed for name in names)
            lost = len(sent - set(seen))
            twice = sum(n - 1 for n in seen.values())
            messages = world.slack.messages(CHANNEL_ID)
            cards = [m for m in messages if m.get("thread_ts") in (None, m["ts"])]
            keys = Counter(
                (m.get("metadata") or {}).get("event_payload", {}).get("key") for m in messages
            )
            reposted = sum(n - 1 for key, n in keys.items() if key is not None)
            _figure("webhooks_sent", total)
            _figure("answered_503_while_down", len(refused))
            _figure("lost", lost)
            _figure("webhooks_processed_twice", twice)
            _figure("cards", len(cards))
            _figure("messages_posted_twice", reposted)
            _figure("abort_patches", len(patches))
            _figure("db_down_s", f"{down:.1f}")
            assert lost == 0, sent - set(seen)
            assert twice == 0 and processed_errors == [], (seen, processed_errors)
            assert len(cards) == 1 and reposted == 0, [m["text"][:60] for m in messages]
            assert len(patches) == 1, patches
            assert a.proc.poll() is None and b.proc.poll() is None  # never restarted
            assert await _ready(a) or await _ready(b)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(postgres_server.start)
            if b is not None:
                b.stop()
            a.stop()


async def _deliver_all(url: str, indexes: range, refused: list[int]) -> None:
    for i in indexes:
        await _deliver(url, _alert(i), refused)
