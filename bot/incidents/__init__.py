"""Incidents: every signal about a service's revision (the watch's verdict, SLO alerts)
becomes one incident, shown on one card.

    engine.py  IncidentEngine: signals in, incidents and cards out, the quiet-period ticker
    book.py    IncidentBook: the incidents by card key, and each service's open one
    inbox.py   Alertmanager deliveries stored but never processed, replayed by the leader
"""

from bot.incidents.book import IncidentBook
from bot.incidents.engine import IncidentEngine, IncidentListener

__all__ = ["IncidentBook", "IncidentEngine", "IncidentListener"]
