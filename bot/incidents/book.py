"""The incidents themselves, by card key: written by the incident engine, read by whoever
needs the service's open incident (PagerDuty, the runbook pages).

A book of its own, handed to each at construction, so readers need not hold the engine
(and the engine, which tells PagerDuty of every change, need not be built after them).
Held in memory by the leader, as the incidents are today.
"""

from __future__ import annotations

from bot.core.model import Incident, IncidentState

__all__ = ["IncidentBook"]


class IncidentBook:
    def __init__(self) -> None:
        self.by_key: dict[str, Incident] = {}

    def open_incident(self, service: str) -> Incident | None:
        """The service's newest incident that is not resolved, or None."""
        live = [
            i
            for i in self.by_key.values()
            if i.service == service and i.state is not IncidentState.RESOLVED
        ]
        return max(live, key=lambda i: i.opened_at, default=None)
