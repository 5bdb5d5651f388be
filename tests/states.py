"""One Rollout state the unit and security tests start from: payment-router's canary
(revision 42 over stable 41) paused at 25 % on step 3/8, its analysis running, as the
watch reads it at `NOW`. Tests derive the states they need with `dataclasses.replace`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.model import AnalysisStatus, RolloutState

__all__ = ["NOW", "PAUSED_CANARY"]

NOW = datetime(2024, 5, 14, 14, 3, 12, tzinfo=UTC)

PAUSED_CANARY = RolloutState(
    namespace="payments",
    name="payment-router",
    uid="u-1",
    revision=42,
    phase="Paused",
    message="CanaryPauseStep",
    step_index=3,
    step_count=8,
    canary_weight=25,
    set_weight=25,
    aborted=False,
    aborted_at=None,
    paused=False,
    controller_pause=True,
    pause_reasons=("CanaryPauseStep",),
    progressing_reason="RolloutPaused",
    stable_rs="6f7c9b8d4",
    current_pod_hash="58c4d7f9b",
    canary_image="registry.example.com/payment-router:1.8.0",
    stable_image="registry.example.com/payment-router:1.7.3",
    stable_revision=41,
    analysis=AnalysisStatus("payment-router-42-3", "Running", ""),
    created_at=NOW - timedelta(minutes=12, seconds=5),
    resource_version="1001",
    generation=7,
    strategy="canary",
)
