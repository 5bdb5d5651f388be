"""Incidents: every signal about a service's revision (the watch's verdict, SLO alerts)
becomes one incident, shown on one card."""

from bot.incidents.engine import IncidentEngine

__all__ = ["IncidentEngine"]
