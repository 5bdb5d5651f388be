"""POST /webhooks/pagerduty: PagerDuty v3 webhooks and Incident Workflow actions (issue 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from bot.app import Rollbot


def pagerduty_routes(rollbot: Rollbot) -> list[BaseRoute]:
    """The PagerDuty webhook's routes."""
    return []
