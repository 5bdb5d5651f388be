"""Alertmanager deliveries in the webhook inbox: the source they are stored under, and their
replay by the leader (a replica that answered 200 died before processing them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container
from datetime import timedelta
from typing import Any

from bot.core.alerts import MalformedWebhook, parse_webhook
from bot.core.model import Alert
from bot.runtime.inbox import replay_inbox

__all__ = ["SOURCE", "OnAlerts", "replay_alerts"]

SOURCE = "alertmanager"

OnAlerts = Callable[[list[Alert], dict[str, Any]], Awaitable[None]]


async def replay_alerts(
    *,
    store: Any,
    on_alerts: OnAlerts,
    limit: int = 100,
    skip: Container[int] = (),
    min_age: timedelta = timedelta(0),
) -> int:
    """Process Alertmanager rows stored but never processed. Returns how many were
    replayed; a row that no longer parses is marked with the reason. `store` is a
    `bot.store.SqlStore` (``pending_webhooks``); `skip`, `min_age`: see `replay_inbox`."""

    async def process(parsed: tuple[list[Alert], dict[str, Any]]) -> None:
        await on_alerts(*parsed)

    return await replay_inbox(
        store,
        SOURCE,
        parse=lambda body: parse_webhook(body.encode("utf-8")),
        process=process,
        malformed=MalformedWebhook,
        limit=limit,
        skip=skip,
        min_age=min_age,
    )
