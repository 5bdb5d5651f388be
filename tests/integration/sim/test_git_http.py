"""The Git peer (bot/sim/git): bare repositories served by `git http-backend`, driven with the
real `git` CLI as a client.

Aspects under test:

- clone and push over smart HTTP with the token (HTTP Basic, any user name): the pushed
  commit is the branch's head in the bare repository, and `pushes()` records it;
- no credentials, or a wrong token → 401 with `WWW-Authenticate: Basic`, git says so, and
  nothing is written; `requests` never keeps the Authorization header;
- `fail_next(n, status)` answers the next n requests with that status, then serves again;
- `merge` of a branch that conflicts → MergeConflict, and neither branch moves;
- `merge` makes a real merge commit (two parents), `merge(squash=True)` one commit with
  the branch's changes and a single parent.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sim.git import DEFAULT_TOKEN, BareRepo, GitHttpServer, MergeConflict

AUTHOR = ("Someone", "someone@example.com")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "srv") as srv:
        yield srv


@pytest.fixture
def repo(server: GitHttpServer) -> BareRepo:
    return server.create_repo("configs", {"app/values.yaml": "replicas: 2\nimage: app:1.0\n"})


def _git(
    args: list[str], cwd: Path, *, url: str | None = None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`git <args>`, hermetic, the token (if any) in an extraHeader scoped to `url` through
    the environment."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(cwd),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
    }
    if token is not None and url is not None:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{url}.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_clone_and_push_with_the_token(
    server: GitHttpServer, repo: BareRepo, tmp_path: Path
) -> None:
    url = server.repo_url("configs")
    clone = tmp_path / "clone"
    done = _git(["clone", "--quiet", url, str(clone)], tmp_path, url=url, token=DEFAULT_TOKEN)
    assert done.returncode == 0, done.stderr
    assert (clone / "app/values.yaml").read_text() == "replicas: 2\nimage: app:1.0\n"

    (clone / "app/values.yaml").write_text("replicas: 3\nimage: app:1.0\n")
    assert _git(["commit", "--quiet", "-am", "Scale to 3"], clone).returncode == 0
    sha = _git(["rev-parse", "HEAD"], clone).stdout.strip()
    done = _git(["push", "--quiet", url, "HEAD:refs/heads/scale"], clone, url=url, token="x")
    assert done.returncode != 0  # a wrong token: refused
    assert repo.head("scale") is None
    done = _git(
        ["push", "--quiet", url, "HEAD:refs/heads/scale"], clone, url=url, token=DEFAULT_TOKEN
    )
    assert done.returncode == 0, done.stderr

    assert repo.head("scale") == sha
    assert repo.show("scale", "app/values.yaml") == "replicas: 3\nimage: app:1.0\n"
    assert repo.commit(sha).author_name == AUTHOR[0]
    assert len(server.pushes()) == 1
    assert {r.user for r in server.requests if r.status == 200} == {"x-access-token"}
    assert all("authorization" not in r.headers for r in server.requests)


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_no_token_or_a_wrong_one_is_401(
    server: GitHttpServer, repo: BareRepo, tmp_path: Path, token: str | None
) -> None:
    url = server.repo_url("configs")
    done = _git(["ls-remote", url], tmp_path, url=url, token=token)
    assert done.returncode != 0
    assert "terminal prompts disabled" in done.stderr  # git asked for a user name: 401
    assert [r.status for r in server.requests] == [401]
    assert server.requests[0].user is None
    assert "authorization" not in server.requests[0].headers
    head = _git(["ls-remote", url], tmp_path, url=url, token=DEFAULT_TOKEN)
    assert head.stdout.split()[0] == repo.head("main")


def test_fail_next_answers_the_status_then_serves(
    server: GitHttpServer, repo: BareRepo, tmp_path: Path
) -> None:
    url = server.repo_url("configs")
    server.fail_next(2, 503)
    for _ in range(2):
        done = _git(["ls-remote", url], tmp_path, url=url, token=DEFAULT_TOKEN)
        assert done.returncode != 0
        assert "The requested URL returned error: 503" in done.stderr
    done = _git(["ls-remote", url], tmp_path, url=url, token=DEFAULT_TOKEN)
    assert done.returncode == 0, done.stderr
    assert [r.status for r in server.requests][:2] == [503, 503]


def test_a_conflicting_merge_raises_and_writes_nothing(
    server: GitHttpServer, repo: BareRepo
) -> None:
    repo.commit_files(
        "feature", {"app/values.yaml": "replicas: 5\nimage: app:1.0\n"}, "five", start="main"
    )
    repo.commit_files("main", {"app/values.yaml": "replicas: 4\nimage: app:1.0\n"}, "four")
    before = repo.branches()
    with pytest.raises(MergeConflict):
        repo.merge("main", "feature", "Merge feature")
    assert repo.branches() == before
    assert repo.show("main", "app/values.yaml") == "replicas: 4\nimage: app:1.0\n"


def test_merge_commit_and_squash_merge(server: GitHttpServer, repo: BareRepo) -> None:
    base = repo.head("main")
    assert base is not None
    one = repo.commit_files("one", {"a.txt": "a\n"}, "add a", start="main")
    repo.commit_files("one", {"b.txt": "b\n"}, "add b")
    merged = repo.merge("main", "one", "Merge one", author=AUTHOR)
    commit = repo.commit(merged)
    assert len(commit.parents) == 2 and commit.parents[0] == base
    assert commit.message == "Merge one" and commit.author_name == AUTHOR[0]
    assert repo.is_ancestor(one, merged)

    two = repo.commit_files("two", {"c.txt": "c\n"}, "add c", start="main")
    repo.commit_files("two", {"d.txt": "d\n"}, "add d")
    squashed = repo.merge("main", "two", "Squash two", squash=True)
    commit = repo.commit(squashed)
    assert commit.parents == (merged,)
    assert commit.message == "Squash two"
    assert not repo.is_ancestor(two, squashed)
    assert repo.show("main", "c.txt") == "c\n" and repo.show("main", "d.txt") == "d\n"
    assert repo.head("main") == squashed
