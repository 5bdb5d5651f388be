"""Signals correlated into incidents: one per service and Rollout revision.

Pure: an incident and a signal in, the next incident and what changed out. The caller keeps
the incident (store) and posts `Change.text` as one thread line when there is a change.

States::

    (none) ──firing──► OPEN ──last firing signal resolves──► RECOVERING ──quiet period──► RESOLVED
                        ▲                                         │                          │
                        └──────────── a signal fires again ───────┴──────────────────────────┘

- OPEN while any signal fires; RECOVERING when none fires any more (alerts resolved, the
  Rollout mitigated by an abort); RESOLVED once RECOVERING has lasted the quiet period
  (`tick`); any signal firing again reopens the same incident (same revision, same card).
- A repeated firing of an already-firing signal changes nothing and returns no `Change`:
  an alert storm of 1,000 repeats is one thread line, not 1,000. A new signal (a new
  fingerprint, or one that had resolved) firing while OPEN is one line; a firing signal
  resolving while others still fire is one line; every state change is one line.
- An incident of another revision (or service, or Rollout) passed in is left alone: the
  signal starts a new incident for its own revision.
- A non-firing signal with no incident yields a RESOLVED incident that never opened
  (`seen` empty) and no change: nothing to post, nothing worth storing.
- An alert's message that arrives after a newer one about the same alert is stale and
  changes nothing. Alertmanager names an occurrence by its `startsAt` (a repeat, and the
  resolve, carry the same; firing again after a resolve is a new one, later): a firing of
  an occurrence that has resolved, or of an older one, and a resolve of an older one, are
  left out (`alert_starts` keeps the latest occurrence per key). Deliveries reach rollbot
  out of order when one replica stored a webhook for the leader's replay while the next
  went to the leader, or when a replay follows a restart.

    open_or_update(incident, signal, …) -> (Incident, Change | None)
    is_repeat(incident, signal, starts)  -> bool     (open_or_update would change nothing)
    tick(incident, now=, quiet_period=)  -> (Incident, Change | None)
    rollout_signal(service, state, trouble, now) -> Signal      (the watch's verdict)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.core.model import (
    Incident,
    IncidentState,
    RolloutState,
    Signal,
    Trouble,
    TroubleKind,
)

ROLLOUT_KEY = "rollout"


class ChangeKind(enum.StrEnum):
    OPENED = "opened"  # the first firing signal
    SIGNAL_FIRING = "signal-firing"  # another signal fires while OPEN
    SIGNAL_RESOLVED = "signal-resolved"  # a firing signal resolved, others still fire
    RECOVERING = "recovering"  # OPEN → RECOVERING: nothing fires any more
    REOPENED = "reopened"  # RECOVERING or RESOLVED → OPEN
    RESOLVED = "resolved"  # RECOVERING → RESOLVED after the quiet period


@dataclass(frozen=True, slots=True)
class Change:
    """What changed, worth exactly one line in the incident's thread."""

    kind: ChangeKind
    text: str
    key: str | None = None  # the signal that caused it (None for `tick`)

    @property
    def state_changed(self) -> bool:
        return self.kind in (
            ChangeKind.OPENED,
            ChangeKind.RECOVERING,
            ChangeKind.REOPENED,
            ChangeKind.RESOLVED,
        )


def _earliest(current: datetime | None, signal: Signal) -> datetime | None:
    started = signal.alert.starts_at if signal.alert is not None else None
    if started is None:
        return current
    return started if current is None or started < current else current


def _summaries_with(incident: Incident, signal: Signal) -> tuple[tuple[str, str], ...]:
    kept = tuple((k, s) for k, s in incident.summaries if k != signal.key)
    return (*kept, (signal.key, signal.summary))


def _summaries_without(incident: Incident, key: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, s) for k, s in incident.summaries if k != key)


def _source(signal: Signal) -> str:
    return "Rollout" if signal.source == "watch" else "alert"


def _same_target(
    incident: Incident, signal: Signal, namespace: str, rollout: str, revision: int
) -> bool:
    return (
        incident.service == signal.service
        and incident.namespace == namespace
        and incident.rollout == rollout
        and incident.revision == revision
    )


def open_or_update(
    incident: Incident | None,
    signal: Signal,
    *,
    namespace: str,
    rollout: str,
    revision: int,
    now: datetime,
) -> tuple[Incident, Change | None]:
    """Apply one signal to the incident of `signal.service` at Rollout `revision`."""
    if incident is None or not _same_target(incident, signal, namespace, rollout, revision):
        incident = Incident(
            service=signal.service,
            namespace=namespace,
            rollout=rollout,
            revision=revision,
            state=IncidentState.RESOLVED,
            opened_at=now,
            changed_at=now,
            firing=frozenset(),
            seen=frozenset(),
            first_breach_at=None,
        )
    if _stale(incident, signal):
        return incident, None
    incident = _with_occurrence(incident, signal)
    if signal.firing:
        return _firing(incident, signal, now)
    return _resolved(incident, signal, now)


def is_repeat(incident: Incident | None, signal: Signal, starts: Mapping[str, datetime]) -> bool:
    """Whether `signal` repeats what `incident` holds: an alert firing already, of the
    occurrence applied last (`starts`: ``dict(incident.alert_starts)``, built once for a
    webhook's many alerts). `open_or_update` returns such a signal's incident unchanged,
    with no change; this tells it at once, where an alert storm's resends would otherwise
    cost a pass over every alert of the incident each."""
    if incident is None or not signal.firing or signal.key not in incident.firing:
        return False
    started = signal.alert.starts_at if signal.alert is not None else None
    return started is None or starts.get(signal.key) == started


def _stale(incident: Incident, signal: Signal) -> bool:
    """Whether the signal is an alert's message older than one already applied."""
    started = signal.alert.starts_at if signal.alert is not None else None
    if started is None:
        return False
    latest = dict(incident.alert_starts).get(signal.key)
    if latest is None or started > latest:
        return False
    if started < latest:
        return True
    # The same occurrence: its firing is stale once it has resolved (no longer firing).
    return signal.firing and signal.key not in incident.firing and signal.key in incident.seen


def _with_occurrence(incident: Incident, signal: Signal) -> Incident:
    started = signal.alert.starts_at if signal.alert is not None else None
    if started is None:
        return incident
    starts = dict(incident.alert_starts)
    if starts.get(signal.key) == started:
        return incident
    starts[signal.key] = started
    return replace(incident, alert_starts=tuple(sorted(starts.items())))


def _firing(incident: Incident, signal: Signal, now: datetime) -> tuple[Incident, Change | None]:
    key = signal.key
    if key in incident.firing:
        return incident, None  # a repeat: the storm stops here
    updated = replace(
        incident,
        firing=incident.firing | {key},
        seen=incident.seen | {key},
        first_breach_at=_earliest(incident.first_breach_at, signal),
        summaries=_summaries_with(incident, signal),
    )
    label = _source(signal)
    if incident.state is IncidentState.OPEN:
        count = len(updated.firing)
        return updated, Change(
            ChangeKind.SIGNAL_FIRING,
            f"Also firing ({label}): {signal.summary} — {count} signals firing",
            key,
        )
    if not incident.seen:
        opened = replace(updated, state=IncidentState.OPEN, opened_at=now, changed_at=now)
        return opened, Change(
            ChangeKind.OPENED,
            f"Incident opened for `{incident.service}` revision {incident.revision} "
            f"({label}): {signal.summary}",
            key,
        )
    was = incident.state.value
    reopened = replace(updated, state=IncidentState.OPEN, changed_at=now)
    return reopened, Change(
        ChangeKind.REOPENED, f"Reopened (was {was}) — firing again ({label}): {signal.summary}", key
    )


def _resolved(incident: Incident, signal: Signal, now: datetime) -> tuple[Incident, Change | None]:
    key = signal.key
    if key not in incident.firing:
        return incident, None  # not firing before (or never seen): nothing changes
    remaining = incident.firing - {key}
    updated = replace(
        incident,
        firing=remaining,
        seen=incident.seen | {key},
        summaries=_summaries_without(incident, key),
    )
    label = _source(signal)
    if remaining:
        return updated, Change(
            ChangeKind.SIGNAL_RESOLVED,
            f"No longer firing ({label}): {signal.summary} — {len(remaining)} still firing",
            key,
        )
    recovering = replace(updated, state=IncidentState.RECOVERING, changed_at=now)
    return recovering, Change(
        ChangeKind.RECOVERING,
        f"Recovering — no longer firing ({label}): {signal.summary}; nothing fires any more, "
        "the incident resolves after a quiet period",
        key,
    )


def tick(
    incident: Incident, *, now: datetime, quiet_period: timedelta
) -> tuple[Incident, Change | None]:
    """RECOVERING for at least `quiet_period` → RESOLVED; anything else is left as is."""
    if incident.state is not IncidentState.RECOVERING:
        return incident, None
    quiet = now - incident.changed_at
    if quiet < quiet_period:
        return incident, None
    resolved = replace(incident, state=IncidentState.RESOLVED, changed_at=now)
    return resolved, Change(
        ChangeKind.RESOLVED,
        f"Resolved — nothing fired for {_duration(quiet)}",
    )


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# ── the watch's own signal ───────────────────────────────────────────────────

# Trouble that still hurts while the Rollout is not aborted: traffic is (partly) on the
# new version and nothing has sent it back.
_HURTING = frozenset(
    {
        TroubleKind.ANALYSIS_FAILED,
        TroubleKind.INCONCLUSIVE,
        TroubleKind.PROGRESS_DEADLINE,
        TroubleKind.DEGRADED,
        TroubleKind.INVALID_SPEC,
    }
)


def rollout_signal(
    service: str, state: RolloutState, trouble: Trouble | None, now: datetime
) -> Signal:
    """The watch's verdict on a Rollout, keyed "rollout".

    Firing while the Rollout is in trouble that still hurts: a failed analysis the
    controller has not aborted yet, an inconclusive analysis holding it paused, a progress
    deadline, Degraded (or an invalid spec) without an abort. An aborted Rollout is
    mitigated — all traffic is on stable — so its signal does not fire, whatever the
    trouble says; a Rollout without trouble does not fire either.
    """
    firing = trouble is not None and not state.aborted and trouble.kind in _HURTING
    if trouble is not None:
        summary = trouble.summary
    elif state.aborted:
        summary = f"Rollout `{state.key}` is aborted: traffic is on the stable version"
    else:
        summary = f"Rollout `{state.key}` revision {state.revision} is {state.phase}"
    return Signal(
        service=service, source="watch", key=ROLLOUT_KEY, firing=firing, summary=summary, at=now
    )
