"""Fixtures of the adapters' tests: the Kubernetes sim with frequent bookmarks (`sim`; a
module with another sim names its own) and the Kubernetes adapter over it (`kube`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.adapters.kubernetes import KubeRollouts
from bot.sim.kube import KubeSim
from tests.integration.adapters.kube import make


@pytest.fixture
def sim(kube_sim: KubeSim) -> KubeSim:
    """The shared sim (tests/plugins/kube.py), with frequent bookmarks."""
    kube_sim.bookmark_interval = 0.2
    return kube_sim


@pytest.fixture
async def kube(kubeconfig: Path) -> AsyncIterator[KubeRollouts]:
    adapter = make(kubeconfig)
    yield adapter
    adapter.close()
