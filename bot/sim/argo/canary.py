"""Canary math of the Argo Rollouts sim: durations, pod-template hashes, steps and weights.

Pure functions of a Rollout's spec and status, shared by the controller loop, the analysis
runs, the ReplicaSets and the status writer (and by the workbench, which shows the weight).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "HASH_LABEL",
    "REVISION",
    "current_weight",
    "parse_duration",
    "pod_template_hash",
    "rollout_revision",
    "rollout_steps",
]

REVISION = "rollout.argoproj.io/revision"
HASH_LABEL = "rollouts-pod-template-hash"
_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(value: str | int | None) -> float:
    """``2m`` / ``30s`` / ``1h30m`` / ``10`` (seconds) → seconds."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if value.isdigit():
        return float(value)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    pos = 0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            raise ValueError(f"invalid duration {value!r}")
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(value):
        raise ValueError(f"invalid duration {value!r}")
    return total


def pod_template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """A pod-template-hash shaped like ``controller.ComputeHash`` (fnv32a, safe-encoded)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    h = 0x811C9DC5
    for b in data + (str(collision_count).encode() if collision_count else b""):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHANUMS[ord(c) % len(_SAFE_ALPHANUMS)] for c in str(h))


def rollout_steps(ro: dict[str, Any]) -> list[dict[str, Any]]:
    """The Rollout's canary steps (none for a canary without steps)."""
    return ((ro["spec"].get("strategy") or {}).get("canary") or {}).get("steps") or []


def rollout_revision(ro: dict[str, Any]) -> int:
    """The Rollout's ``rollout.argoproj.io/revision`` annotation (0 when absent or garbled)."""
    try:
        return int((ro["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def current_weight(status: dict[str, Any], steps: list[dict[str, Any]], idx: int) -> int:
    """The canary weight at step `idx`: the last ``setWeight`` up to it; 0 when aborted or
    fully promoted."""
    if status.get("abort") or status.get("stableRS") == status.get("currentPodHash"):
        return 0
    weight = 0
    for step in steps[: idx + 1]:
        if "setWeight" in step:
            weight = int(step["setWeight"])
    return weight
