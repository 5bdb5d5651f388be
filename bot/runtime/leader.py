"""Active/standby between replicas: one database lease, `leader`, says who acts.

Every replica serves every request from its start (bot.web.app): a Slack click or command
and a runbook page are executed where they arrive (exactly once across replicas by the
action's claim in the database), and a webhook is stored wherever it arrives. Only the
holder of the lease runs the loops: the watch, the incident ticker, the PagerDuty outbox,
the scheduler, the inbox replays (which process the webhooks a standby stored) and the
recovery of actions left running. `/readyz` does not depend on the lease (`problem` is
None for a standby), so a rolling update of two replicas completes; only a replica that
lost the lease and is stopping is not Ready.

The lease lasts `ttl` seconds of database time and is renewed every third of it. The
leader also keeps a local deadline (its last successful renewal + `ttl`, on the monotonic
clock): past it, it stops leading at once (`fenced`), whatever the database says, so a
stalled or cut-off leader never runs the loops alongside the one that took over. A leader
that loses the lease does not try to hand its memory over: it stops, and the process
exits to come back as a standby (`on_lost`). A graceful stop releases the lease, so a
standby takes over at its next try instead of after `ttl`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LEASE_NAME = "leader"


class Role(enum.Enum):
    STARTING = "starting"  # not asked yet (the app's lifespan has not run)
    STANDBY = "standby"
    LEADER = "leader"
    LOST = "lost"  # held it, lost it: stopped for good


def holder_id() -> str:
    """This replica's name on the lease: host (the pod's name), pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leadership:
    def __init__(
        self,
        store: Any,  # bot.store.SqlStore: acquire_lease, release_lease, lease_holder
        *,
        ttl: float = 15.0,
        holder: str | None = None,
        name: str = LEASE_NAME,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.holder = holder or holder_id()
        self.name = name
        self.role = Role.STARTING
        self._now = monotonic
        self._deadline = 0.0

    @property
    def every(self) -> float:
        return self.ttl / 3

    @property
    def leading(self) -> bool:
        """True while this replica holds the lease and its last renewal is recent enough."""
        return self.role is Role.LEADER and self._now() < self._deadline

    @property
    def fenced(self) -> bool:
        """True when this replica must not run the loops nor process the webhooks it stores
        (standby, lost, or past its deadline). Before the lifespan ran (tests serving
        without it) it is not fenced."""
        return self.role is not Role.STARTING and not self.leading

    async def try_acquire(self) -> bool:
        """One attempt; True when this replica leads now. Database errors count as no."""
        asked = self._now()
        try:
            won = bool(await self.store.acquire_lease(self.name, self.holder, ttl=self.ttl))
        except Exception as err:  # noqa: BLE001 - a database hiccup is a "not now"
            log.warning("leader lease: could not ask the database: %r", err)
            won = False
        if won:
            if self.role is not Role.LEADER:
                log.info("leader lease taken by %s (ttl %.1f s)", self.holder, self.ttl)
            self.role = Role.LEADER
            self._deadline = asked + self.ttl
        elif self.role is Role.STARTING:
            self.role = Role.STANDBY
        return won

    async def wait_until_leader(self) -> None:
        """Ask every third of the ttl until this replica leads."""
        while True:
            if await self.try_acquire():
                return
            await asyncio.sleep(self.every)  # polling the database: no event to wait on

    async def keep(self) -> None:
        """Renew every third of the ttl; return once the lease is lost (refused, or not
        renewed before the local deadline). The role is then LOST."""
        while True:
            await asyncio.sleep(self.every)
            asked = self._now()
            try:
                won = bool(await self.store.acquire_lease(self.name, self.holder, ttl=self.ttl))
            except Exception as err:  # noqa: BLE001 - retried until the deadline
                log.warning("leader lease: renewal failed: %r", err)
                if self._now() >= self._deadline:
                    break
                continue
            if not won:
                log.critical("leader lease: taken by another replica")
                break
            self._deadline = asked + self.ttl
            if self._now() >= self._deadline:  # the renewal itself took longer than the ttl
                break
        self.role = Role.LOST

    async def release(self) -> None:
        """Give the lease up (a graceful stop): a standby takes over at its next try."""
        if self.role is not Role.LEADER:
            return
        self.role = Role.STANDBY
        self._deadline = 0.0
        try:
            await self.store.release_lease(self.name, self.holder)
        except Exception as err:  # noqa: BLE001 - it expires by itself after the ttl
            log.warning("leader lease: could not release it: %r", err)

    async def problem(self) -> str | None:
        """Why this replica must not take traffic, for /readyz; None if it may. A standby
        may: it answers every request, only the loops are the leader's (bot.web.app).
        A replica that lost the lease is stopping (`keep` returned)."""
        if self.role is Role.LOST:
            return "lost the leader lease: stopping"
        return None

    async def holder_now(self) -> str | None:
        """Who holds the lease now, and until when (a standby's log line); None: nobody."""
        try:
            held = await self.store.lease_holder(self.name)
        except Exception:  # noqa: BLE001 - a report, never raises
            return None
        if held is None:
            return None
        who, until = held
        return f"{who} (lease until {until:%H:%M:%S} UTC)"
