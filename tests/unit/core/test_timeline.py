"""bot.core.timeline: the card's thread in plain words (issue 14).

Aspects, each a table over the states it ranges over:
- `reason_words`: Argo's reasons as words, an unknown CamelCase reason split, other text
  as it is;
- `message_words`: a reason prefix dropped, the controller's "Rollout aborted update to
  revision N" dropped on an aborted Rollout, a pause reason said already dropped;
- `state_line`: one line per state saying phase, where and why once; for every Rollout
  fixture (Argo's own test data), no Argo reason as code and no repeated word run;
- `action_line`: each action's verified result in words; an unverified one says what is
  still missing;
- `recovered_line`: an action read back after a restart says how long after it was asked,
  verified, or that it may never have been sent;
- `explains`: an abort explains every aborted state (in flight and after), nothing else;
  another action only its verified state, and only once verified.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from bot.core import rollouts, timeline
from bot.core.model import AnalysisStatus, RolloutAction, RolloutState, Verification
from tests.plugins.fixtures import rollout_fixture_paths
from tests.states import NOW, PAUSED_CANARY

PAUSED = dataclasses.replace(
    PAUSED_CANARY,
    message="InconclusiveAnalysisRun",
    step_index=5,
    step_count=9,
    pause_reasons=("InconclusiveAnalysisRun",),
    canary_image="registry.example.com/payment-router:1.13.0",
    stable_image="registry.example.com/payment-router:1.12.4",
    analysis=AnalysisStatus("payment-router-42-5", "Inconclusive", "p95 400 ms"),
    created_at=NOW,
)
ABORTING = dataclasses.replace(PAUSED, aborted=True, canary_weight=0)
ABORTED = dataclasses.replace(
    ABORTING,
    phase="Degraded",
    message="RolloutAborted: Rollout aborted update to revision 42",
    step_index=0,
    controller_pause=False,
    pause_reasons=(),
)
PROGRESSING = dataclasses.replace(
    PAUSED,
    phase="Progressing",
    message="",
    step_index=6,
    canary_weight=50,
    controller_pause=False,
    pause_reasons=(),
    analysis=None,
)
HELD = dataclasses.replace(PROGRESSING, phase="Paused", paused=True)
NEXT = dataclasses.replace(PROGRESSING, step_index=7, canary_weight=75)
BLUE_GREEN = dataclasses.replace(
    PAUSED,
    strategy="blueGreen",
    step_index=None,
    canary_weight=0,
    message="BlueGreenPause",
    pause_reasons=("BlueGreenPause",),
    analysis=None,
)
FULL = dataclasses.replace(
    PROGRESSING, phase="Healthy", step_index=9, canary_weight=100, current_pod_hash="6f7c9b8d4"
)


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("InconclusiveAnalysisRun", "an inconclusive analysis run"),
        ("CanaryPauseStep", "a pause step"),
        ("BlueGreenPause", "the pause before the blue-green switch"),
        ("ProgressDeadlineExceeded", "the progress deadline passed"),
        ("RolloutAborted", "aborted"),
        ("SomeNewReason", "some new reason"),
        ("Rollout is paused", "Rollout is paused"),
        ("", ""),
    ],
)
def test_reason_words(reason: str, words: str) -> None:
    assert timeline.reason_words(reason) == words


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (PAUSED, ""),  # the pause reason, said already
        (dataclasses.replace(PAUSED, pause_reasons=()), "an inconclusive analysis run"),
        (ABORTED, ""),  # "Rollout aborted update to revision 42": the line says aborted
        (dataclasses.replace(ABORTED, message="RolloutAborted: Rollout is aborted"), ""),
        (
            dataclasses.replace(
                ABORTED, message="RolloutAborted: Rollout aborted update to revision 42: p95 high"
            ),
            "p95 high",
        ),
        (
            dataclasses.replace(PROGRESSING, message="ProgressDeadlineExceeded: RS timed out"),
            "RS timed out",
        ),
        (
            dataclasses.replace(PROGRESSING, message="ProgressDeadlineExceeded"),
            "the progress deadline passed",
        ),
    ],
)
def test_message_words(state: RolloutState, words: str) -> None:
    assert timeline.message_words(state) == words


@pytest.mark.parametrize(
    ("state", "line"),
    [
        (PAUSED, "Paused at step 5/9, canary 25%: an inconclusive analysis run"),
        (
            ABORTING,
            "Paused: aborted, all traffic on stable revision 41; an inconclusive analysis run",
        ),
        (ABORTED, "Degraded: aborted, all traffic on stable revision 41 · analysis inconclusive"),
        (
            dataclasses.replace(ABORTED, stable_revision=None),
            "Degraded: aborted, all traffic on the stable ReplicaSet · analysis inconclusive",
        ),
        (PROGRESSING, "Progressing at step 6/9, canary 50%"),
        (BLUE_GREEN, "Paused, canary 0%: the pause before the blue-green switch"),
        (
            dataclasses.replace(PROGRESSING, message="<!here> & *bold*"),
            "Progressing at step 6/9, canary 50%: &lt;!here&gt; &amp; *bold*",
        ),
    ],
)
def test_state_line(state: RolloutState, line: str) -> None:
    assert timeline.state_line(state) == line


ARGO_REASON = re.compile(r"\b(?:[A-Z][a-z]+){2,}\b")


@pytest.mark.parametrize("path", rollout_fixture_paths(), ids=lambda p: p.name)
def test_no_fixture_s_line_says_a_reason_as_code(path) -> None:
    state = rollouts.parse_rollout(yaml.safe_load(path.read_text()))
    line = timeline.state_line(state)
    head = line.split(":", 1)[0]
    assert not ARGO_REASON.search(head), line
    for reason in (*timeline.REASONS, *state.pause_reasons):
        if reason:
            assert reason not in line, line
    assert "aborted: aborted" not in line and line.count("aborted") <= 1, line


def verified(seconds: float = 0.8) -> Verification:
    return Verification(True, (("status.abort=true", True),), seconds)


@pytest.mark.parametrize(
    ("action", "before", "after", "line"),
    [
        (
            RolloutAction.ABORT,
            PAUSED,
            ABORTED,
            "Aborted by <@U0X>: all traffic back on stable revision 41, verified in 0.8 s",
        ),
        (
            RolloutAction.RETRY,
            ABORTED,
            dataclasses.replace(PROGRESSING, step_index=0, canary_weight=10),
            "Retried by <@U0X>: the update to revision 42 starts again from the first step, "
            "verified in 0.8 s",
        ),
        (
            RolloutAction.PROMOTE,
            PAUSED,
            PROGRESSING,
            "Promoted by <@U0X>: now at step 6/9, canary 50%, verified in 0.8 s",
        ),
        (
            RolloutAction.PROMOTE,
            PAUSED,
            FULL,
            "Promoted by <@U0X>: revision 42 is fully rolled out, verified in 0.8 s",
        ),
        (
            RolloutAction.PROMOTE_FULL,
            PAUSED,
            dataclasses.replace(PROGRESSING, step_index=9, canary_weight=100),
            "Fully promoted by <@U0X>: every remaining step skipped, all traffic going to "
            "revision 42, verified in 0.8 s",
        ),
        (
            RolloutAction.PAUSE,
            PROGRESSING,
            HELD,
            "Paused by <@U0X>: held at step 6/9, canary 50%, verified in 0.8 s",
        ),
    ],
)
def test_action_line(
    action: RolloutAction, before: RolloutState, after: RolloutState, line: str
) -> None:
    made = timeline.action_line(
        action, actor_id="U0X", verification=verified(), before=before, after=after
    )
    assert made == line


def test_an_unverified_action_says_what_is_missing() -> None:
    checks = (("status.abort=true", True), ("phase=Degraded", False), ("canary weight 0", False))
    made = timeline.action_line(
        RolloutAction.ABORT,
        actor_id="U0X",
        verification=Verification(False, checks, 30.0),
        before=PAUSED,
        after=ABORTING,
        waited=30.2,
    )
    assert made == (
        "Abort by <@U0X> sent, but NOT verified after 30.2 s: still missing phase=Degraded, "
        "canary weight 0"
    )


def test_an_action_read_back_after_a_restart_says_so() -> None:
    verified_late = Verification(True, (("status.abort=true", True),), 4.2)
    assert timeline.recovered_line(
        RolloutAction.ABORT, actor_id="U0X", verification=verified_late, after=ABORTED
    ) == (
        "Aborted by <@U0X>: all traffic back on stable revision 41, verified 4.2 s after it "
        "was asked (rollbot restarted before it could check)"
    )
    missing = Verification(False, (("step advanced or pause cleared", False),), 4.2)
    assert timeline.recovered_line(
        RolloutAction.PROMOTE, actor_id="U0X", verification=missing, after=PAUSED
    ) == (
        "Promote by <@U0X> NOT verified: rollbot restarted before it could check, and 4.2 s "
        "after it was asked the Rollout still misses step advanced or pause cleared. It may "
        "never have been sent: ask again if it is still needed"
    )


# (action, before, after or None while in flight, state seen by the watch, explained?)
EXPLAINS = [
    (RolloutAction.ABORT, PAUSED, None, ABORTING, True),
    (RolloutAction.ABORT, PAUSED, None, PAUSED, False),
    (RolloutAction.ABORT, PAUSED, ABORTED, ABORTED, True),
    (RolloutAction.ABORT, PAUSED, ABORTED, dataclasses.replace(ABORTED, message="x"), True),
    (RolloutAction.ABORT, PAUSED, ABORTED, PROGRESSING, False),
    (RolloutAction.PROMOTE, PAUSED, None, PROGRESSING, False),
    (RolloutAction.PROMOTE, PAUSED, PROGRESSING, PROGRESSING, True),
    (RolloutAction.PROMOTE, PAUSED, PROGRESSING, NEXT, False),
    (RolloutAction.PROMOTE, PAUSED, PROGRESSING, ABORTED, False),
    (
        RolloutAction.PROMOTE,
        PAUSED,
        PROGRESSING,
        dataclasses.replace(PROGRESSING, revision=43),
        False,
    ),
    (RolloutAction.RETRY, ABORTED, PROGRESSING, PROGRESSING, True),
    (RolloutAction.RETRY, ABORTED, PROGRESSING, ABORTED, False),
    (RolloutAction.PAUSE, PROGRESSING, HELD, HELD, True),
    (RolloutAction.PAUSE, PROGRESSING, HELD, PROGRESSING, False),
    (RolloutAction.PROMOTE_FULL, PAUSED, FULL, FULL, True),
]


@pytest.mark.parametrize(("action", "before", "after", "state", "expected"), EXPLAINS)
def test_explains(
    action: RolloutAction,
    before: RolloutState,
    after: RolloutState | None,
    state: RolloutState,
    expected: bool,
) -> None:
    assert timeline.explains(action, before=before, after=after, state=state) is expected
