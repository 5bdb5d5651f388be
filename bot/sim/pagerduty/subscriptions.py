"""v3 webhook subscriptions, as a test sets them up: who receives the account's webhooks,
signed with which secret (and its rotation), and sending one again.

How the deliveries are built, signed and sent is webhooks.py's business; the account emits
them (account.py).
"""

from __future__ import annotations

from bot.sim.pagerduty.account import Account
from bot.sim.pagerduty.model import pd_id
from bot.sim.pagerduty.webhooks import (
    EMITTED_EVENT_TYPES,
    WEBHOOK_EVENT_TYPES,
    Delivery,
    Subscription,
    Verify,
)

__all__ = ["WebhookSubscriptions"]


class WebhookSubscriptions:
    """`PagerDutySim`'s webhook subscription methods (a mixin over the sim's account)."""

    _account: Account

    def subscribe(
        self,
        url: str,
        secret: str,
        *,
        event_types: list[str] | tuple[str, ...] | frozenset[str] | None = None,
        verify: Verify = True,
        service_id: str | None = None,
        custom_headers: dict[str, str] | None = None,
    ) -> str:
        """A v3 webhook subscription delivering to `url`, signed with `secret`; returns its
        id. `event_types` None: every incident event; `service_id`: a service filter;
        `verify`: the CA (bundle path or SSLContext) for an https receiver."""
        types = frozenset(event_types) if event_types is not None else EMITTED_EVENT_TYPES
        unknown = sorted(types - WEBHOOK_EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown webhook event types {unknown}")
        with self._account.lock:
            sub = Subscription(
                id=pd_id("P"),
                url=url,
                secrets=[secret],
                event_types=types,
                verify=verify,
                service_id=service_id,
                custom_headers=dict(custom_headers or {}),
            )
            self._account.state.subscriptions[sub.id] = sub
            return sub.id

    def unsubscribe(self, subscription_id: str) -> None:
        with self._account.lock:
            self._account.state.subscriptions.pop(subscription_id, None)

    def rotate_secret(self, subscription_id: str, new_secret: str) -> None:
        """Start a rotation: deliveries carry two signatures, the new secret's first, until
        `finish_rotation`."""
        with self._account.lock:
            sub = self._account.subscription_or_raise(subscription_id)
            sub.secrets = [new_secret, sub.secrets[0]]

    def finish_rotation(self, subscription_id: str) -> None:
        """End a rotation: only the new secret signs."""
        with self._account.lock:
            sub = self._account.subscription_or_raise(subscription_id)
            sub.secrets = sub.secrets[:1]

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again exactly as it was (same body, headers and X-Webhook-Id), as
        PagerDuty's at-least-once delivery may; returns the new delivery."""
        with self._account.lock:
            deliveries = self._account.state.deliveries
            original = next((d for d in deliveries if d.id == delivery_id), None)
            if original is None:
                raise KeyError(f"no delivery {delivery_id!r}")
            again = original.again()
            deliveries.append(again)
        self._account.sender.submit(again)
        return again
