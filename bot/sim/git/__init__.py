"""Real Git for the sims: bare repositories driven by the `git` CLI (`repo`) and served over
smart HTTP by `git http-backend` (`http`). See each module."""

from bot.sim.git.http import DEFAULT_TOKEN, GitHttpServer, git_http_available
from bot.sim.git.repo import BareRepo, Commit, GitError, MergeConflict

__all__ = [
    "DEFAULT_TOKEN",
    "BareRepo",
    "Commit",
    "GitError",
    "GitHttpServer",
    "MergeConflict",
    "git_http_available",
]
