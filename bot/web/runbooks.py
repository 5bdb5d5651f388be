"""Runbook pages: GET /runbooks/{service} and its signed-link actions (issue 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from bot.app import Rollbot


def runbook_routes(rollbot: Rollbot) -> list[BaseRoute]:
    """The runbook pages' routes."""
    return []
