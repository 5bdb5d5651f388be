"""PagerDuty, both ways.

engine.py   PagingEngine: incidents and notes out through the durable outbox, v3
            webhooks back to the card and its thread, runbook links on acknowledgement
actions.py  PagerDutyActions: acknowledging from Slack, Incident Workflow buttons run
            through the responder
inbox.py    deliveries stored but never processed, replayed by the leader
"""

from bot.paging.actions import PagerDutyActions
from bot.paging.engine import PagingEngine, dedup_key, parse_dedup_key

__all__ = ["PagerDutyActions", "PagingEngine", "dedup_key", "parse_dedup_key"]
