"""A bare Git repository driven through the real `git` CLI: what the code-host sims
(GitHub, GitLab) and the Argo CD sync loop read and write.

The sims never fake Git: a branch is a ref in a real bare repository, a merge is
`git merge` in a throwaway worktree (a real merge commit, or a refusal on a conflict), and
what a revision holds is `git show <rev>:<path>`. rollbot itself reaches the same repository
only over smart HTTP (`bot.sim.git.http`), as it would a real host.

Every call is synchronous (`subprocess.run`), with a fixed identity and dates taken from
the environment, so a test's history is reproducible; the sims call it from their own
threads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BareRepo", "Commit", "GitError", "MergeConflict"]

#: Who writes the sims' own commits (the seed history, merges) unless told otherwise.
SIM_AUTHOR = ("Config Bot", "configs@example.com")


class GitError(RuntimeError):
    """A git command failed; `stderr` says why."""

    def __init__(self, args: list[str], code: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited {code}: {stderr.strip()}")
        self.code = code
        self.stderr = stderr


class MergeConflict(GitError):
    """The merge did not apply cleanly; nothing was written."""


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    message: str  # the whole message: subject, blank line, body


def _env(author: tuple[str, str] = SIM_AUTHOR) -> dict[str, str]:
    name, email = author
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "HOME"}
    env.update(
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        HOME=tempfile.gettempdir(),
    )
    return env


class BareRepo:
    """A bare repository at `path` (see `create`). Thread-safe: one writer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()

    # ── making one ──

    @classmethod
    def create(
        cls,
        path: Path,
        files: Mapping[str, str],
        *,
        branch: str = "main",
        message: str = "Initial configuration",
        author: tuple[str, str] = SIM_AUTHOR,
    ) -> BareRepo:
        """A new bare repository whose `branch` has one commit holding `files`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        _git(["init", "--bare", "--quiet", f"--initial-branch={branch}", str(path)], cwd=None)
        repo = cls(path)
        repo.commit_files(branch, files, message, author=author)
        return repo

    # ── reading ──

    def run(self, *args: str, author: tuple[str, str] = SIM_AUTHOR, check: bool = True) -> str:
        """`git --git-dir=<path> <args>`'s stdout."""
        return _git(["--git-dir", str(self.path), *args], cwd=None, author=author, check=check)

    def head(self, branch: str) -> str | None:
        """The sha `branch` points at, None when there is no such branch."""
        out = self.run(
            "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False
        )
        return out.strip() or None

    def branches(self) -> dict[str, str]:
        out = self.run("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def commit(self, rev: str) -> Commit:
        out = self.run("show", "-s", "--format=%H%n%P%n%an%n%ae%n%B", rev)
        sha, parents, name, email, *message = out.split("\n")
        return Commit(sha, tuple(parents.split()), name, email, "\n".join(message).strip())

    def commits(self, base: str, head: str) -> list[Commit]:
        """The commits on `head` not on `base`, oldest first."""
        out = self.run("rev-list", "--reverse", f"{base}..{head}")
        return [self.commit(sha) for sha in out.split()]

    def show(self, rev: str, path: str) -> str | None:
        """The file `path` as `rev` has it, None when it has no such file."""
        try:
            return self.run("show", f"{rev}:{path}")
        except GitError:
            return None

    def diff(self, base: str, head: str) -> str:
        """The unified diff from the merge base of `base` and `head` to `head` (what a pull
        request shows)."""
        return self.run("diff", f"{base}...{head}")

    def is_ancestor(self, ancestor: str, rev: str) -> bool:
        code = subprocess.run(
            ["git", "--git-dir", str(self.path), "merge-base", "--is-ancestor", ancestor, rev],
            env=_env(),
            capture_output=True,
        ).returncode
        return code == 0

    # ── writing ──

    def commit_files(
        self,
        branch: str,
        files: Mapping[str, str | None],
        message: str,
        *,
        author: tuple[str, str] = SIM_AUTHOR,
        start: str | None = None,
    ) -> str:
        """Commit `files` (path → content; None deletes) on `branch` (made from `start`, or
        empty, when it does not exist); the new commit's sha."""
        with self._lock, self._worktree(branch, start=start, author=author) as tree:
            for name, content in files.items():
                target = tree / name
                if content is None:
                    _git(["rm", "--quiet", "--", name], cwd=tree, author=author)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
                _git(["add", "--", name], cwd=tree, author=author)
            _git(["commit", "--quiet", "--allow-empty", "-m", message], cwd=tree, author=author)
            _git(
                ["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], cwd=tree, author=author
            )
            return _git(["rev-parse", "HEAD"], cwd=tree, author=author).strip()

    def merge(
        self,
        base: str,
        head: str,
        message: str,
        *,
        author: tuple[str, str] = SIM_AUTHOR,
        squash: bool = False,
    ) -> str:
        """Merge branch `head` into branch `base` with a merge commit (`squash`: one commit
        with `head`'s changes), as a code host's merge button does; the new sha of `base`.
        MergeConflict when it does not apply cleanly (nothing is written)."""
        with self._lock, self._worktree(base, author=author) as tree:
            _git(["fetch", "--quiet", "origin", f"refs/heads/{head}"], cwd=tree, author=author)
            args = (
                ["merge", "--quiet", "--squash"]
                if squash
                else ["merge", "--quiet", "--no-ff", "-m", message]
            )
            try:
                _git([*args, "FETCH_HEAD"], cwd=tree, author=author)
            except GitError as err:
                raise MergeConflict(args, err.code, err.stderr) from None
            if squash:
                _git(["commit", "--quiet", "-m", message], cwd=tree, author=author)
            _git(["push", "--quiet", "origin", f"HEAD:refs/heads/{base}"], cwd=tree, author=author)
            return _git(["rev-parse", "HEAD"], cwd=tree, author=author).strip()

    def delete_branch(self, branch: str) -> None:
        self.run("update-ref", "-d", f"refs/heads/{branch}")

    # ── helpers ──

    class _Tree:
        def __init__(self, repo: BareRepo, branch: str, start: str | None, author: tuple[str, str]):
            self.repo, self.branch, self.start, self.author = repo, branch, start, author
            self.dir: Path | None = None

        def __enter__(self) -> Path:
            self.dir = Path(tempfile.mkdtemp(prefix="sim-git-"))
            author = self.author
            _git(["init", "--quiet", str(self.dir)], cwd=None, author=author)
            _git(["remote", "add", "origin", str(self.repo.path)], cwd=self.dir, author=author)
            source = self.branch if self.repo.head(self.branch) else self.start
            if source is not None:
                _git(["fetch", "--quiet", "origin", source], cwd=self.dir, author=author)
                _git(
                    ["checkout", "--quiet", "-B", "work", "FETCH_HEAD"], cwd=self.dir, author=author
                )
            else:
                _git(["checkout", "--quiet", "--orphan", "work"], cwd=self.dir, author=author)
            return self.dir

        def __exit__(self, *exc: object) -> None:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)

    def _worktree(self, branch: str, *, start: str | None = None, author: tuple[str, str]) -> _Tree:
        return BareRepo._Tree(self, branch, start, author)


def _git(
    args: list[str],
    *,
    cwd: Path | None,
    author: tuple[str, str] = SIM_AUTHOR,
    check: bool = True,
) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=_env(author), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise GitError(args, done.returncode, done.stderr)
    return done.stdout
