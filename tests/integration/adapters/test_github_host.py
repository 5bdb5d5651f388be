"""GitHubHost (bot.adapters.github): githubkit against GitHubSim over HTTP, on a real bare
repository that rollbot's branches reach over smart HTTP.

Aspects under test:
- open_change: POST pulls then labels; find_change finds it by head (owner:branch,
  state=all), newest first; None for a branch without one; get_change maps the pull
  request (open, head sha, url, auto_merge);
- merge: a real merge commit in the bare repository whose message is the title and
  message given; the change comes back merged with that commit as merge_sha;
- branch protection: merge refused (405) → PermanentError naming what is required;
  merge_when_ready enables auto-merge through GraphQL (commitHeadline, commitBody); the
  sim merges once a second person approves and CI is green; with nothing to wait for
  (GitHub refuses auto-merge in clean status) it merges at once;
- a head moved by a push over HTTP → PermanentError (409) saying so;
- 5xx → TemporaryError (no retry by githubkit: one request); a bad token →
  PermanentError naming the host, the token never in the message; the token file is read
  at each call (rotation);
- a lost answer (the pull request made, the answer a 502): TemporaryError, then
  find_change finds it and open_change again returns it without a second one; a lost
  merge answer: merge again returns the merged change.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.github import GitHubHost
from bot.core.errors import Forbidden, PermanentError, TemporaryError
from bot.core.gitops import ChangeRequest
from bot.sim.git import BareRepo, GitHttpServer
from bot.sim.github import GitHubSim
from tests.integration.codehosts import served_revert_repo

TOKEN = "gh-sim-token"
REPO = "platform/configs"
BRANCH = "rollbot/revert/payment-router-r3-inc1"
LABELS = ("rollbot", "tier3-revert")


@pytest.fixture
def git(tmp_path: Path) -> Iterator[GitHttpServer]:
    with served_revert_repo(tmp_path / "git", BRANCH) as server:
        yield server


@pytest.fixture
def bare(git: GitHttpServer) -> BareRepo:
    return git.repo("configs")


@pytest.fixture
def sim(bare: BareRepo) -> Iterator[GitHubSim]:
    with GitHubSim(repos={REPO: bare}, token=TOKEN) as s:
        yield s


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "github-token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def host(sim: GitHubSim, token_file: Path) -> GitHubHost:
    return GitHubHost(token_file, base_url=sim.url)


def push_a_commit(git: GitHttpServer, tmp_path: Path) -> None:
    """Someone pushes one more commit to the revert branch over smart HTTP."""
    url = git.repo_url("configs").replace("://", f"://x-access-token:{git.token}@")
    clone = tmp_path / "clone"
    env = {"GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ident = ["-c", "user.name=m", "-c", "user.email=m@example.com"]
    subprocess.run(["git", "clone", "-q", "-b", BRANCH, url, str(clone)], check=True, env=env)
    (clone / "extra").write_text("x\n")
    subprocess.run(["git", "-C", str(clone), "add", "extra"], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), *ident, "commit", "-qm", "More"], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", BRANCH], check=True, env=env)


def rotate(token_file: Path, token: str) -> None:
    token_file.write_text(token + "\n")


async def open_revert(host: GitHubHost) -> ChangeRequest:
    return await host.open_change(
        REPO, head=BRANCH, base="main", title="Revert payment-router", body="Why", labels=LABELS
    )


async def test_open_label_find_and_merge(host: GitHubHost, sim: GitHubSim, bare: BareRepo) -> None:
    assert host.provider == "github"
    assert await host.find_change(REPO, BRANCH) is None
    opened = await open_revert(host)
    assert opened.number == 1 and opened.state == "open" and opened.head == BRANCH
    assert opened.head_sha == bare.head(BRANCH) and opened.base == "main"
    assert opened.url.endswith(f"/{REPO}/pull/1")
    assert [label["name"] for label in sim.pull(REPO, 1)["labels"]] == list(LABELS)
    posts = [(r.method, r.path) for r in sim.requests if r.method != "GET"]
    assert posts == [
        ("POST", f"/repos/{REPO}/pulls"),
        ("POST", f"/repos/{REPO}/issues/1/labels"),
    ]
    found = await host.find_change(REPO, BRANCH)
    assert found == opened
    listing = sim.requests_to("GET", f"/repos/{REPO}/pulls")[-1]
    assert listing.param("head") == f"platform:{BRANCH}" and listing.param("state") == "all"

    await host.comment(REPO, 1, "Approved by Bo from the card")
    assert sim.comments(REPO, 1) == ["Approved by Bo from the card"]

    before = bare.head("main")
    merged = await host.merge(
        REPO,
        1,
        sha=opened.head_sha,
        title="Tier 3 revert of payment-router (#1)",
        message="Incident: inc1\nRequested-by: al\nApproved-by: bo\n",
    )
    assert merged.state == "merged" and merged.merge_sha == bare.head("main")
    commit = bare.commit(bare.head("main") or "")
    assert commit.parents == (before, opened.head_sha)
    assert commit.message == (
        "Tier 3 revert of payment-router (#1)\n\nIncident: inc1\nRequested-by: al\nApproved-by: bo"
    )
    assert await host.get_change(REPO, 1) == merged
    assert await host.find_change(REPO, BRANCH) == merged


async def test_merge_refused_by_protection_names_what_is_required(
    host: GitHubHost, sim: GitHubSim
) -> None:
    opened = await open_revert(host)
    sim.protect(REPO, "main", approvals=1, checks=("ci",))
    with pytest.raises(PermanentError) as refused:
        await host.merge(REPO, opened.number, sha=opened.head_sha, title="T", message="M")
    assert "At least 1 approving review is required" in refused.value.message
    assert 'Required status check "ci" is expected' in refused.value.message
    assert (await host.get_change(REPO, opened.number)).state == "open"


async def test_auto_merge_then_approval_and_status_merge_it(
    host: GitHubHost, sim: GitHubSim, bare: BareRepo
) -> None:
    opened = await open_revert(host)
    sim.protect(REPO, "main", approvals=1, checks=("ci",))
    queued = await host.merge_when_ready(
        REPO,
        opened.number,
        sha=opened.head_sha,
        title="Tier 3 revert (#1)",
        message="Approved-by: bo\n",
    )
    assert queued.state == "open" and queued.auto_merge is True
    graphql = sim.requests_to("POST", "/graphql")
    assert len(graphql) == 1
    sent = graphql[0].body["variables"]["input"]
    assert sent["commitHeadline"] == "Tier 3 revert (#1)"
    assert sent["commitBody"] == "Approved-by: bo\n" and sent["mergeMethod"] == "MERGE"
    sim.approve(REPO, opened.number, "bo")
    sim.set_status(REPO, opened.head_sha, "ci", "success")
    done = await host.get_change(REPO, opened.number)
    assert done.state == "merged" and done.merge_sha == bare.head("main")
    assert bare.commit(done.merge_sha or "").message == "Tier 3 revert (#1)\n\nApproved-by: bo"


async def test_auto_merge_with_nothing_to_wait_for_merges_now(
    host: GitHubHost, sim: GitHubSim, bare: BareRepo
) -> None:
    opened = await open_revert(host)
    sim.protect(REPO, "main", approvals=0, checks=())
    done = await host.merge_when_ready(
        REPO, opened.number, sha=opened.head_sha, title="Title", message="Body\n"
    )
    assert done.state == "merged" and done.merge_sha == bare.head("main")
    assert [r.status for r in sim.requests_to("PUT", f"/repos/{REPO}/pulls/1/merge")] == [200]


async def test_moved_head_is_refused(
    host: GitHubHost, git: GitHttpServer, bare: BareRepo, tmp_path: Path
) -> None:
    opened = await open_revert(host)
    push_a_commit(git, tmp_path)
    with pytest.raises(PermanentError, match="head moved") as refused:
        await host.merge(REPO, opened.number, sha=opened.head_sha, title="T", message="M")
    assert (bare.head(BRANCH) or "")[:12] in refused.value.message
    with pytest.raises(PermanentError, match="head moved"):
        await host.merge_when_ready(
            REPO, opened.number, sha=opened.head_sha, title="T", message="M"
        )


async def test_server_errors_are_temporary_and_not_retried(
    host: GitHubHost, sim: GitHubSim
) -> None:
    sim.fail_next(1, 502)
    with pytest.raises(TemporaryError, match="502"):
        await host.find_change(REPO, BRANCH)
    assert [r.status for r in sim.requests] == [502]
    assert await host.find_change(REPO, BRANCH) is None


async def test_connection_refused_is_temporary(token_file: Path) -> None:
    with GitHubSim(repos={}, token=TOKEN) as gone:
        url = gone.url  # stopped on leaving: its port refuses connections
    with pytest.raises(TemporaryError, match="unreachable"):
        await GitHubHost(token_file, base_url=url).get_change(REPO, 1)


async def test_bad_token_is_permanent_naming_the_host_and_rotation_is_read(
    host: GitHubHost, sim: GitHubSim, token_file: Path
) -> None:
    rotate(token_file, "stale-token")
    with pytest.raises(PermanentError) as refused:
        await host.find_change(REPO, BRANCH)
    assert isinstance(refused.value, Forbidden)
    assert host.host in refused.value.message and "Bad credentials" in refused.value.message
    assert "stale-token" not in refused.value.message
    rotate(token_file, TOKEN)
    assert await host.find_change(REPO, BRANCH) is None


async def test_lost_answers_are_found_again(
    host: GitHubHost, sim: GitHubSim, bare: BareRepo
) -> None:
    sim.lose_next(1)
    with pytest.raises(TemporaryError):
        await open_revert(host)
    found = await host.find_change(REPO, BRANCH)
    assert found is not None and found.number == 1 and found.state == "open"
    again = await open_revert(host)  # a retry of the same step: no second pull request
    assert again.number == 1 and len(sim.pulls(REPO)) == 1
    assert [label["name"] for label in sim.pull(REPO, 1)["labels"]] == list(LABELS)

    sim.lose_next(1)
    with pytest.raises(TemporaryError):
        await host.merge(REPO, 1, sha=found.head_sha, title="T", message="M")
    merged = await host.merge(REPO, 1, sha=found.head_sha, title="T", message="M")
    assert merged.state == "merged" and merged.merge_sha == bare.head("main")
