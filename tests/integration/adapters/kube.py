"""What the Kubernetes adapter's tests share (test_kubernetes.py, test_kube_informer.py):
the adapter over the sim with short timeouts (conftest.py makes the fixtures of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.adapters.kubernetes import KubeRollouts


def make(kubeconfig: Path, **kw: Any) -> KubeRollouts:
    """The adapter over `kubeconfig`, with timeouts and backoff short enough for tests."""
    options: dict[str, Any] = {
        "request_timeout": 2.0,
        "watch_timeout_seconds": 30,
        "watch_read_timeout": 2.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "cursor_interval": 0.0,
    }
    options.update(kw)
    return KubeRollouts.from_kubeconfig(kubeconfig=str(kubeconfig), **options)
