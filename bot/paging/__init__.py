"""PagerDuty, both ways: incidents and notes out, webhooks and workflows in."""

from bot.paging.engine import PagingEngine

__all__ = ["PagingEngine"]
