"""The Rollout watch's events become card, incident and release updates.

    Kubernetes informer (bot.adapters.kube_informer) ─► RolloutWatch.on_event
        ─► refresh(namespace, name): the Rollout's state from the informer's cache
            ─► incidents.on_rollout(state)   the incident and its card (bot.incidents)
            ─► the circuit breaker, read once a card exists (bot.actions)
            ─► releases.on_rollout(service, state)   the release's phase (bot.releases)

An event about a ReplicaSet or AnalysisRun counts for the Rollout that owns it. Each event
is handled in a task of its own, so a slow card update never stalls the watch; refreshes of
one Rollout are serialised and coalesced (one at a time, re-run once if more came in).
Only the leader runs the watch (bot.wiring).

What it promises: every change is followed by a read of the Rollout as it is then, from
the cache the watch itself keeps (`cached_state`: no request to the API server per event;
the adapter resumes from its last resourceVersion after a drop and lists again after a
410), so the engines are handed the latest state within a reconnect's delay, and every
state that lasts longer than that. A state overwritten before it could be read may be
skipped: the engines are told where the Rollout is, not every step it passed through.
Each read is logged at DEBUG with its resourceVersion (`rollout`, `resource_version`
fields); tests/faults/test_watch_drops.py holds it to this under dropped watches and 410s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from bot.cards import card_key
from bot.core.errors import RollbotError
from bot.core.model import RolloutState
from bot.core.ports import WatchEvent
from bot.runtime.metrics import Metrics

__all__ = ["RolloutWatch", "watched_namespaces"]

log = logging.getLogger(__name__)


class RolloutReader(Protocol):
    async def cached_state(self, namespace: str, name: str) -> RolloutState: ...

    async def watch(self, namespaces: list[str], on_event: Any) -> None: ...


class CardIndex(Protocol):
    def service_for(self, namespace: str, name: str) -> str | None: ...

    def circuit_known(self, service: str) -> bool: ...


class OnRollout(Protocol):
    async def on_rollout(self, state: RolloutState) -> None: ...


class OnServiceRollout(Protocol):
    async def on_rollout(self, service: str, state: RolloutState) -> None: ...


class CardStore(Protocol):
    async def get_card(self, key: str) -> Any: ...


class CircuitReader(Protocol):
    async def read_circuit(self, service: str) -> Any: ...


def watched_namespaces(configured: Iterable[str], service_namespaces: Iterable[str]) -> list[str]:
    """`kubernetes.namespaces` when set, else every namespace the catalog names."""
    listed = list(configured)
    return listed or sorted(set(service_namespaces))


class RolloutWatch:
    def __init__(
        self,
        *,
        namespaces: list[str],
        rollouts: RolloutReader,
        cards: CardIndex,
        incidents: OnRollout,
        releases: OnServiceRollout,
        card_store: CardStore,
        circuits: CircuitReader,
        metrics: Metrics,
    ) -> None:
        self.namespaces = namespaces
        self.rollouts = rollouts
        self.cards = cards
        self.incidents = incidents
        self.releases = releases
        self.card_store = card_store
        self.circuits = circuits
        self.metrics = metrics
        self.error: str | None = None  # the last watch error, until the next event
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[tuple[str, str], bool] = {}

    async def run(self) -> None:
        """Watch until cancelled (the adapter reconnects and re-lists on its own)."""
        await self.rollouts.watch(self.namespaces, self._dispatch)

    async def _dispatch(self, event: WatchEvent) -> None:
        # Card updates must not stall the watch: an event about a catalogued Rollout is
        # handled in its own task, serialised per Rollout by refresh(); the others (most of
        # a big cluster's) end here, with no task.
        key = self._rollout_of(event)
        if key is None:
            return
        task = asyncio.create_task(self.refresh(*key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_event(self, event: WatchEvent) -> None:
        key = self._rollout_of(event)
        if key is not None:
            await self.refresh(*key)

    def _rollout_of(self, event: WatchEvent) -> tuple[str, str] | None:
        """Count the event; the catalogued Rollout it is about, or None."""
        self.metrics.watch_events.labels(event.kind, event.type).inc()
        self.metrics.watch_healthy.set(1)
        self.error = None
        meta = event.object.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if event.kind == "Rollout":
            if event.type == "DELETED":
                return None
            name = meta.get("name", "")
        else:
            owners = [o for o in meta.get("ownerReferences") or [] if o.get("kind") == "Rollout"]
            if not owners:
                return None
            name = owners[0].get("name", "")
        if self.cards.service_for(namespace, name) is None:
            return None
        return namespace, name

    async def on_error(self, message: str) -> None:
        """The adapter's report of a degraded watch (once per outage; it retries)."""
        self.metrics.watch_errors.inc()
        self.metrics.watch_healthy.set(0)
        self.error = message
        log.warning("watch degraded: %s", message)

    async def refresh(self, namespace: str, name: str) -> None:
        """Coalesce bursts: one refresh at a time per Rollout, re-run once if more came in
        (a call while one runs only asks for that re-run)."""
        key = (namespace, name)
        if key in self._pending:
            self._pending[key] = True
            return
        self._pending[key] = False
        try:
            while True:
                try:
                    state = await self.rollouts.cached_state(namespace, name)
                    log.debug(
                        "read %s/%s at resourceVersion %s: revision %s, %s, step %s%s, analysis %s",
                        namespace,
                        name,
                        state.resource_version,
                        state.revision,
                        state.phase,
                        state.step_label,
                        ", aborted" if state.aborted else "",
                        state.analysis.status if state.analysis else "none",
                        extra={
                            "rollout": f"{namespace}/{name}",
                            "resource_version": state.resource_version,
                        },
                    )
                    await self.incidents.on_rollout(state)
                    await self._show_circuit(namespace, name, state)
                    service = self.cards.service_for(namespace, name)
                    if service is not None:
                        await self.releases.on_rollout(service, state)
                except RollbotError as err:
                    log.warning(
                        "could not refresh the card of %s/%s: %s", namespace, name, err.message
                    )
                except Exception:  # boundary: nobody awaits this task; keep the re-run below
                    log.exception("could not refresh the card of %s/%s", namespace, name)
                if not self._pending.get(key):
                    break
                self._pending[key] = False
        finally:
            self._pending.pop(key, None)

    @property
    def refreshing(self) -> bool:
        return bool(self._pending)

    async def _show_circuit(self, namespace: str, name: str, state: RolloutState) -> None:
        """Once a card exists, read the service's breaker so the card shows it (once)."""
        service = self.cards.service_for(namespace, name)
        if service is None or self.cards.circuit_known(service):
            return
        if await self.card_store.get_card(card_key(state)) is not None:
            await self.circuits.read_circuit(service)

    async def close(self) -> None:
        """Cancel the event tasks and wait for them to unwind: one cancelled inside a
        database transaction must have rolled it back before the leader lease is released,
        or SQLite keeps the write lock and the release waits out the 30 s busy timeout."""
        refreshing = list(self._tasks)
        for task in refreshing:
            task.cancel()
        await asyncio.gather(*refreshing, return_exceptions=True)
