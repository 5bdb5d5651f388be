"""Seed data: the users, escalation policies, on-calls, services and Events API integrations
a test (or the demo) sets up before rollbot talks to the sim, shaped as PagerDuty's REST
API answers them.
"""

from __future__ import annotations

from datetime import datetime

from bot.sim.pagerduty.account import Account
from bot.sim.pagerduty.model import API_HOST, WEB_HOST, Integration, OnCall, pd_id, reference

__all__ = ["SeedData"]


class SeedData:
    """`PagerDutySim`'s seeding methods (a mixin over the sim's account)."""

    _account: Account

    def add_service(
        self, id: str, name: str, *, description: str = "", escalation_policy_id: str = ""
    ) -> None:
        """A service, shaped like REST v2 ``GET /services/{id}``'s ``service``."""
        with self._account.lock:
            state = self._account.state
            state.services[id] = {
                "id": id,
                "type": "service",
                "summary": name,
                "self": f"{API_HOST}/services/{id}",
                "html_url": f"{WEB_HOST}/services/{id}",
                "name": name,
                "description": description,
                "status": "active",
                "alert_creation": "create_alerts_and_incidents",
                "escalation_policy": reference(
                    "escalation_policy",
                    escalation_policy_id,
                    state.policies.get(escalation_policy_id, ""),
                ),
                "teams": [],
            }

    def add_user(
        self,
        id: str,
        name: str,
        email: str,
        *,
        time_zone: str = "Etc/UTC",
        role: str = "user",
        job_title: str = "",
    ) -> None:
        with self._account.lock:
            self._account.state.users[id] = {
                "id": id,
                "type": "user",
                "summary": name,
                "self": f"{API_HOST}/users/{id}",
                "html_url": f"{WEB_HOST}/users/{id}",
                "name": name,
                "email": email,
                "time_zone": time_zone,
                "color": "green",
                "role": role,
                "avatar_url": f"https://secure.gravatar.com/avatar/{id.lower()}.png?d=mm&r=PG",
                "description": "",
                "invitation_sent": False,
                "job_title": job_title,
                "teams": [],
                "contact_methods": [
                    {
                        "id": f"PC{id[1:]}",
                        "type": "email_contact_method_reference",
                        "summary": "Default",
                        "self": f"{API_HOST}/users/{id}/contact_methods/PC{id[1:]}",
                        "html_url": None,
                    }
                ],
                "notification_rules": [],
                "coordinated_incidents": [],
            }

    def add_escalation_policy(self, id: str, name: str) -> None:
        with self._account.lock:
            self._account.state.policies[id] = name

    def set_oncall(
        self,
        escalation_policy_id: str,
        user_ids: list[str] | tuple[str, ...],
        level: int = 1,
        *,
        schedule_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Put `user_ids` on call for the policy's `level`, replacing who was on it.

        `start`/`end` None mean a permanent on-call (a user target of the escalation rule);
        with `schedule_id`, the entries come from that schedule.
        """
        with self._account.lock:
            state = self._account.state
            unknown = [u for u in user_ids if u not in state.users]
            if unknown:
                raise KeyError(f"unknown PagerDuty users {unknown}: add_user them first")
            state.policies.setdefault(escalation_policy_id, f"{escalation_policy_id} policy")
            if schedule_id is not None:
                state.schedules.setdefault(schedule_id, f"{schedule_id} rotation")
            state.oncalls = [
                o
                for o in state.oncalls
                if not (o.escalation_policy_id == escalation_policy_id and o.level == level)
            ]
            state.oncalls.extend(
                OnCall(escalation_policy_id, u, level, schedule_id, start, end) for u in user_ids
            )

    def add_integration(self, routing_key: str, service_id: str) -> str:
        """An Events API v2 integration on `service_id` (which must exist, with an
        escalation policy); events sent with `routing_key` open incidents there. Returns
        the integration's id."""
        with self._account.lock:
            state = self._account.state
            service = state.services.get(service_id)
            if service is None:
                raise KeyError(f"unknown PagerDuty service {service_id!r}: add_service it first")
            if not service["escalation_policy"]["id"]:
                raise ValueError(f"service {service_id!r} has no escalation policy")
            integration = Integration(pd_id("P"), routing_key, service_id)
            state.integrations[routing_key] = integration
            return integration.id
