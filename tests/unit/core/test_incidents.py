"""bot.core.incidents: signals correlated into one incident per service and revision.

Aspects under test:
- lifecycle table: opened, another signal firing, a signal resolving while others fire,
  open → recovering, recovering → resolved after the quiet period (not before), reopen
  from recovering and from resolved; each change is exactly one `Change`;
- storms: 1,000 alerts of repeats and distinct fingerprints for one service make one
  incident, with a change only on the first sight of each fingerprint and on state changes;
  a random interleaving (hypothesis) keeps the invariants (state agrees with `firing`,
  `firing` ⊆ `seen`, a repeat is never a change);
- watch and alert signals for the same revision land in one incident; another revision
  starts a new one and leaves the old one alone;
- resolves for unknown keys and with no incident change nothing;
- first_breach_at is the earliest startsAt of the alerts;
- an alert's message older than one applied (a late repeat of a resolved occurrence, a
  resolve or firing of an older occurrence) is stale: nothing changes; a new occurrence
  reopens; the watch's signal has no occurrence;
- rollout_signal: firing for trouble that still hurts, not for an aborted (mitigated)
  Rollout or one without trouble, on every Rollout fixture too.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core import incidents, rollouts
from bot.core.alerts import alert_signal
from bot.core.incidents import Change, ChangeKind
from bot.core.model import (
    Alert,
    Incident,
    IncidentState,
    RolloutState,
    Signal,
    Trouble,
    TroubleKind,
)
from tests.plugins.fixtures import load_fixture, rollout_fixture_paths

T0 = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
QUIET = timedelta(minutes=5)
SVC, NS, RO, REV = "payment-router", "payments", "payment-router", 42


def sig(
    key: str, firing: bool = True, *, at: datetime = T0, source: str = "alertmanager"
) -> Signal:
    return Signal(SVC, source, key, firing, f"{key} summary", at)


def apply(
    incident: Incident | None, signal: Signal, now: datetime = T0, revision: int = REV
) -> tuple[Incident, Change | None]:
    return incidents.open_or_update(
        incident, signal, namespace=NS, rollout=RO, revision=revision, now=now
    )


def run(
    steps: list[tuple[str, bool]], start: Incident | None = None
) -> tuple[Incident, list[Change | None]]:
    incident, changes = start, []
    for i, (key, firing) in enumerate(steps):
        incident, change = apply(incident, sig(key, firing), T0 + timedelta(seconds=i))
        changes.append(change)
    assert incident is not None
    return incident, changes


# (signals in order, expected state after, expected change kinds per step)
LIFECYCLE = [
    ([("a", True)], IncidentState.OPEN, [ChangeKind.OPENED]),
    ([("a", True), ("a", True)], IncidentState.OPEN, [ChangeKind.OPENED, None]),
    (
        [("a", True), ("b", True)],
        IncidentState.OPEN,
        [ChangeKind.OPENED, ChangeKind.SIGNAL_FIRING],
    ),
    (
        [("a", True), ("b", True), ("a", False)],
        IncidentState.OPEN,
        [ChangeKind.OPENED, ChangeKind.SIGNAL_FIRING, ChangeKind.SIGNAL_RESOLVED],
    ),
    (
        [("a", True), ("a", False)],
        IncidentState.RECOVERING,
        [ChangeKind.OPENED, ChangeKind.RECOVERING],
    ),
    (
        [("a", True), ("a", False), ("a", False)],
        IncidentState.RECOVERING,
        [ChangeKind.OPENED, ChangeKind.RECOVERING, None],
    ),
    (
        [("a", True), ("a", False), ("a", True)],
        IncidentState.OPEN,
        [ChangeKind.OPENED, ChangeKind.RECOVERING, ChangeKind.REOPENED],
    ),
    (
        [("a", True), ("a", False), ("b", True)],
        IncidentState.OPEN,
        [ChangeKind.OPENED, ChangeKind.RECOVERING, ChangeKind.REOPENED],
    ),
    (
        [("a", True), ("b", True), ("b", False), ("b", True)],
        IncidentState.OPEN,
        [
            ChangeKind.OPENED,
            ChangeKind.SIGNAL_FIRING,
            ChangeKind.SIGNAL_RESOLVED,
            ChangeKind.SIGNAL_FIRING,
        ],
    ),
    ([("a", True), ("zzz", False)], IncidentState.OPEN, [ChangeKind.OPENED, None]),
]


@pytest.mark.parametrize(("steps", "state", "kinds"), LIFECYCLE)
def test_lifecycle(
    steps: list[tuple[str, bool]], state: IncidentState, kinds: list[ChangeKind | None]
) -> None:
    incident, changes = run(steps)
    assert incident.state is state
    assert [c.kind if c else None for c in changes] == kinds
    for change in changes:
        if change is not None:
            assert change.text and "\n" not in change.text
    last: dict[str, bool] = {}
    for key, firing in steps:
        last[key] = firing
    expected_firing = {k for k, f in last.items() if f}
    assert incident.firing == expected_firing
    assert dict(incident.summaries).keys() == expected_firing


def test_opened_change_names_service_and_revision() -> None:
    incident, change = apply(None, sig("f01341052d6b3406"))
    assert change == Change(
        ChangeKind.OPENED,
        "Incident opened for `payment-router` revision 42 (alert): f01341052d6b3406 summary",
        "f01341052d6b3406",
    )
    assert change.state_changed
    assert incident.card_key == "payments/payment-router@42"
    assert incident.opened_at == incident.changed_at == T0


def test_resolve_then_quiet_period_then_resolved_then_reopen() -> None:
    incident, _ = apply(None, sig("a"))
    incident, change = apply(incident, sig("a", False), T0 + timedelta(minutes=1))
    assert change is not None and change.kind is ChangeKind.RECOVERING
    recovering_since = T0 + timedelta(minutes=1)
    assert incident.changed_at == recovering_since

    for quiet in (timedelta(0), QUIET - timedelta(seconds=1)):
        same, change = incidents.tick(incident, now=recovering_since + quiet, quiet_period=QUIET)
        assert same is incident and change is None

    resolved, change = incidents.tick(incident, now=recovering_since + QUIET, quiet_period=QUIET)
    assert resolved.state is IncidentState.RESOLVED
    assert change == Change(ChangeKind.RESOLVED, "Resolved — nothing fired for 5 min")
    assert incidents.tick(resolved, now=T0 + timedelta(hours=3), quiet_period=QUIET)[1] is None

    reopened, change = apply(resolved, sig("a"), T0 + timedelta(hours=1))
    assert reopened.state is IncidentState.OPEN
    assert change is not None and change.kind is ChangeKind.REOPENED
    assert "was resolved" in change.text
    assert reopened.opened_at == T0  # the same incident, not a new one
    assert reopened.card_key == incident.card_key

    # and through the whole cycle once more
    again, change = apply(reopened, sig("a", False), T0 + timedelta(hours=2))
    assert again.state is IncidentState.RECOVERING
    done, change = incidents.tick(again, now=T0 + timedelta(hours=2, minutes=5), quiet_period=QUIET)
    assert done.state is IncidentState.RESOLVED and change is not None


def test_tick_leaves_open_incidents_alone() -> None:
    incident, _ = apply(None, sig("a"))
    assert incidents.tick(incident, now=T0 + timedelta(days=1), quiet_period=QUIET) == (
        incident,
        None,
    )


def test_tick_with_zero_quiet_period_resolves_at_once() -> None:
    incident, _ = run([("a", True), ("a", False)])
    resolved, change = incidents.tick(incident, now=incident.changed_at, quiet_period=timedelta(0))
    assert resolved.state is IncidentState.RESOLVED and change is not None


def test_alert_storm_is_one_incident_with_changes_only_on_news() -> None:
    rng = random.Random(1234)
    fingerprints = [f"{i:016x}" for i in range(40)]
    incident: Incident | None = None
    changes: list[Change] = []
    first_sights: list[str] = []
    for i in range(1000):
        key = rng.choice(fingerprints)
        if key not in first_sights:
            first_sights.append(key)
        alert = Alert(
            fingerprint=key,
            name="HighErrorRate",
            status="firing",
            labels={"alertname": "HighErrorRate", "service": SVC, "pod": key},
            annotations={"summary": "error rate above 2 %"},
            starts_at=T0 + timedelta(seconds=int(key, 16)),
            ends_at=None,
        )
        incident, change = apply(
            incident, alert_signal(SVC, alert, now=T0), T0 + timedelta(seconds=i)
        )
        if change is not None:
            changes.append(change)
    assert incident is not None
    assert incident.state is IncidentState.OPEN
    assert len(first_sights) == len(fingerprints)
    assert [c.key for c in changes] == first_sights
    assert [c.kind for c in changes] == [ChangeKind.OPENED] + [ChangeKind.SIGNAL_FIRING] * 39
    assert incident.firing == incident.seen == frozenset(fingerprints)
    assert incident.first_breach_at == T0  # fingerprint 0 started first
    assert incident.opened_at == T0

    # the storm ends: every alert resolves, repeatedly; one line each, then recovering
    resolved_changes = []
    for i in range(1000):
        key = fingerprints[i % len(fingerprints)]
        incident, change = apply(incident, sig(key, False), T0 + timedelta(hours=1, seconds=i))
        if change is not None:
            resolved_changes.append(change)
    assert len(resolved_changes) == 40
    assert [c.kind for c in resolved_changes] == [ChangeKind.SIGNAL_RESOLVED] * 39 + [
        ChangeKind.RECOVERING
    ]
    assert incident.state is IncidentState.RECOVERING and not incident.firing


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.booleans()), max_size=60))
def test_any_interleaving_keeps_the_invariants(steps: list[tuple[str, bool]]) -> None:
    incident: Incident | None = None
    for i, (key, firing) in enumerate(steps):
        before = incident
        incident, change = apply(incident, sig(key, firing), T0 + timedelta(seconds=i))
        if before is not None and firing and key in before.firing:
            assert change is None and incident is before
        if before is not None and not firing and key not in before.firing:
            assert change is None and incident is before
        assert incident.firing <= incident.seen
        assert (incident.state is IncidentState.OPEN) == bool(incident.firing)
        if change is not None and change.state_changed:
            assert incident.changed_at == T0 + timedelta(seconds=i)


def alert_sig(key: str, firing: bool, started: int) -> Signal:
    alert = Alert(
        fingerprint=key,
        name="HighErrorRate",
        status="firing" if firing else "resolved",
        labels={"alertname": "HighErrorRate", "service": SVC, "pod": key},
        annotations={},
        starts_at=T0 + timedelta(seconds=started),
        ends_at=None,
    )
    return alert_signal(SVC, alert, now=T0)


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.booleans(), st.integers(0, 3)), max_size=60))
def test_a_repeat_is_exactly_what_changes_nothing(steps: list[tuple[str, bool, int]]) -> None:
    """is_repeat (the storm's shortcut) never skips a signal that would change something."""
    incident: Incident | None = None
    for i, (key, firing, started) in enumerate(steps):
        signal = alert_sig(key, firing, started)
        starts = dict(incident.alert_starts) if incident is not None else {}
        repeat = incidents.is_repeat(incident, signal, starts)
        updated, change = apply(incident, signal, T0 + timedelta(seconds=i))
        if repeat:
            assert updated is incident and change is None
        incident = updated


def test_watch_and_alert_for_the_same_revision_are_one_incident() -> None:
    state = rollouts.parse_rollout(
        load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
    )
    trouble = Trouble(TroubleKind.INCONCLUSIVE, "Analysis was inconclusive — paused at 1/8")
    watch = incidents.rollout_signal(SVC, state, trouble, T0)
    incident, change = apply(None, watch)
    assert change is not None and change.kind is ChangeKind.OPENED and "(Rollout)" in change.text

    alert = sig("f01341052d6b3406", at=T0 + timedelta(seconds=30))
    incident, change = apply(incident, alert, T0 + timedelta(seconds=30))
    assert change is not None and change.kind is ChangeKind.SIGNAL_FIRING
    assert incident.firing == {"rollout", "f01341052d6b3406"}

    # the abort mitigates the Rollout, the alert resolves: recovering, one incident throughout
    aborted = incidents.rollout_signal(
        SVC, _with(state, aborted=True), Trouble(TroubleKind.ABORTED, "aborted"), T0
    )
    incident, change = apply(incident, aborted, T0 + timedelta(minutes=1))
    assert change is not None and change.kind is ChangeKind.SIGNAL_RESOLVED
    incident, change = apply(incident, sig("f01341052d6b3406", False), T0 + timedelta(minutes=2))
    assert change is not None and change.kind is ChangeKind.RECOVERING
    assert incident.card_key == "payments/payment-router@42"
    assert incident.seen == {"rollout", "f01341052d6b3406"}


def test_another_revision_starts_a_new_incident() -> None:
    old, _ = apply(None, sig("a"))
    new, change = apply(old, sig("a"), T0 + timedelta(hours=1), revision=43)
    assert change is not None and change.kind is ChangeKind.OPENED
    assert new.revision == 43 and new.opened_at == T0 + timedelta(hours=1)
    assert old.revision == REV and old.state is IncidentState.OPEN  # untouched


def test_a_resolve_without_an_incident_opens_nothing() -> None:
    incident, change = apply(None, sig("a", False))
    assert change is None
    assert incident.state is IncidentState.RESOLVED and not incident.seen
    incident, change = apply(incident, sig("a"), T0 + timedelta(minutes=3))
    assert change is not None and change.kind is ChangeKind.OPENED
    assert incident.opened_at == T0 + timedelta(minutes=3)


def test_first_breach_is_the_earliest_alert_start() -> None:
    def alert_sig(key: str, minutes: int) -> Signal:
        alert = Alert(
            key, "X", "firing", {"alertname": "X"}, {}, T0 + timedelta(minutes=minutes), None
        )
        return alert_signal(SVC, alert, now=T0)

    incident, _ = apply(None, sig("rollout", source="watch"))
    assert incident.first_breach_at is None  # the watch has no startsAt
    incident, _ = apply(incident, alert_sig("b", 5))
    incident, _ = apply(incident, alert_sig("c", -3))
    incident, _ = apply(incident, alert_sig("d", 10))
    assert incident.first_breach_at == T0 - timedelta(minutes=3)


def occurrence(key: str, firing: bool, started_minute: int) -> Signal:
    """An alert's message about its occurrence that started at T0 + `started_minute`."""
    alert = Alert(
        key,
        "X",
        "firing" if firing else "resolved",
        {"alertname": "X"},
        {},
        T0 + timedelta(minutes=started_minute),
        None,
    )
    return alert_signal(SVC, alert, now=T0)


# (messages in the order they arrive: key, firing, occurrence start) → the state after, and
# whether the last one changed anything. Alertmanager names an occurrence by its startsAt:
# repeats and the resolve carry it; firing again after a resolve starts a new, later one.
STALE = [
    # the resolve overtaken by a late repeat of the firing it ended: the repeat is stale
    ([("a", True, 0), ("a", False, 0), ("a", True, 0)], IncidentState.RECOVERING, False),
    # a new occurrence after the resolve reopens
    ([("a", True, 0), ("a", False, 0), ("a", True, 7)], IncidentState.OPEN, True),
    # a resolve of an older occurrence, after the new one fired: stale
    ([("a", True, 0), ("a", False, 0), ("a", True, 7), ("a", False, 0)], IncidentState.OPEN, False),
    # a firing of an older occurrence after a newer one resolved: stale
    ([("a", True, 7), ("a", False, 7), ("a", True, 0)], IncidentState.RECOVERING, False),
    # the resolve of the current occurrence still resolves
    ([("a", True, 0), ("a", True, 0), ("a", False, 0)], IncidentState.RECOVERING, True),
    # another alert is not affected by a's occurrences
    ([("a", True, 5), ("a", False, 5), ("b", True, 0)], IncidentState.OPEN, True),
]


@pytest.mark.parametrize(("messages", "state", "changed"), STALE)
def test_a_message_older_than_one_applied_is_stale(
    messages: list[tuple[str, bool, int]], state: IncidentState, changed: bool
) -> None:
    incident: Incident | None = None
    change: Change | None = None
    for i, (key, firing, started) in enumerate(messages):
        before = incident
        incident, change = apply(incident, occurrence(key, firing, started), T0 + timedelta(i))
    assert incident is not None and incident.state is state
    assert (change is not None) is changed
    if not changed:
        assert incident == before  # a stale message leaves the incident as it was


def test_the_watch_s_signal_has_no_occurrence() -> None:
    incident, _ = apply(None, sig("rollout", source="watch"))
    incident, _ = apply(incident, sig("rollout", False, source="watch"))
    incident, change = apply(incident, sig("rollout", source="watch"))
    assert change is not None and change.kind is ChangeKind.REOPENED
    assert incident.alert_starts == ()


# ── rollout_signal ───────────────────────────────────────────────────────────


def _with(state: RolloutState, **changes: Any) -> RolloutState:
    from dataclasses import replace

    return replace(state, **changes)


BASE = rollouts.parse_rollout(
    load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
)


@pytest.mark.parametrize(
    ("kind", "aborted", "firing"),
    [
        (TroubleKind.ANALYSIS_FAILED, False, True),
        (TroubleKind.ANALYSIS_FAILED, True, False),
        (TroubleKind.INCONCLUSIVE, False, True),
        (TroubleKind.PROGRESS_DEADLINE, False, True),
        (TroubleKind.DEGRADED, False, True),
        (TroubleKind.INVALID_SPEC, False, True),
        (TroubleKind.ABORTED, True, False),
        (None, False, False),
        (None, True, False),
    ],
)
def test_rollout_signal(kind: TroubleKind | None, aborted: bool, firing: bool) -> None:
    trouble = Trouble(kind, f"{kind} summary") if kind is not None else None
    signal = incidents.rollout_signal(SVC, _with(BASE, aborted=aborted), trouble, T0)
    assert (signal.key, signal.source, signal.service, signal.at) == ("rollout", "watch", SVC, T0)
    assert signal.firing is firing
    assert signal.alert is None
    if trouble is not None:
        assert signal.summary == trouble.summary
    else:
        assert BASE.key in signal.summary


@pytest.mark.parametrize("path", rollout_fixture_paths(), ids=lambda p: p.name)
def test_rollout_signal_on_every_fixture(path: Any) -> None:
    import yaml

    state = rollouts.parse_rollout(yaml.safe_load(path.read_text()))
    trouble = rollouts.trouble(state)
    signal = incidents.rollout_signal(SVC, state, trouble, T0)
    if state.aborted or trouble is None:
        assert not signal.firing
    else:
        assert signal.firing
