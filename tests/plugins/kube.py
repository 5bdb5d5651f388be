"""Fixtures for the Kubernetes API sim and the Argo Rollouts controller sim.

* ``kube_sim``: a started :class:`bot.sim.kube.KubeSim` (function scope), stopped afterwards;
* ``kubeconfig``: a kubeconfig file pointing at it;
* ``fake_clock`` / ``argo``: an :class:`bot.sim.argo.ArgoController` on ``kube_sim`` whose
  clock only moves when the test calls ``fake_clock.advance(seconds)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sim.argo import ArgoController
from bot.sim.kube import KubeSim
from tests.helpers import FakeClock


@pytest.fixture
def kube_sim() -> Iterator[KubeSim]:
    sim = KubeSim().start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def kubeconfig(kube_sim: KubeSim, tmp_path: Path) -> Path:
    return kube_sim.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def argo(kube_sim: KubeSim, fake_clock: FakeClock) -> Iterator[ArgoController]:
    controller = ArgoController(kube_sim, clock=fake_clock)
    try:
        yield controller
    finally:
        controller.stop()
