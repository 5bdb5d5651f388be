"""The repositories the code-host sims' tests and their adapters' tests share: a bare
repository whose `main` holds a service's kustomization and whose revert branch changes it
(what rollbot would have pushed), served over smart HTTP for GitHub's tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.sim.git import BareRepo, GitHttpServer

KUSTOMIZATION = "apps/payment-router/kustomization.yaml"


def revert_repo(path: Path, branch: str, before: str, after: str, message: str) -> BareRepo:
    """A bare repository at `path`: `main` with the kustomization `before`, `branch` from
    it with `after`."""
    repo = BareRepo.create(path, {KUSTOMIZATION: before})
    repo.commit_files(branch, {KUSTOMIZATION: after}, message, start="main")
    return repo


@contextmanager
def served_revert_repo(root: Path, branch: str) -> Iterator[GitHttpServer]:
    """`revert_repo` as the repository `configs` of a smart-HTTP server under `root`."""
    with GitHttpServer(root) as server:
        revert_repo(server.root / "configs.git", branch, "a: 1\n", "a: 0\n", "Revert")
        yield server
