"""bot/adapters/gitlab.py (python-gitlab) against the GitLab sim over HTTP, the project a real
bare repository.

Aspects: open with labels and find it by source branch (None before); comment; merge makes
a real merge commit carrying the title and message; 405 (approvals missing) → a
PermanentError naming what is missing, nothing merged; merge when the pipeline succeeds,
then the pipeline's success merges it; 409 (the head moved) → PermanentError; 5xx and a
refused connection → TemporaryError; a bad token → PermanentError, and the token read
again at the next call; a lost answer to the open → TemporaryError, then find_change (and
a second open) find the one opened; a lost answer to the merge, then merge again → the
merged request; the token never in a message or a log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.gitlab import GitLabHost
from bot.core.errors import PermanentError, TemporaryError
from bot.core.gitops import ChangeRequest
from bot.sim.git import BareRepo
from bot.sim.gitlab import GitLabSim
from tests.integration.codehosts import revert_repo

PROJECT = "platform/configs"
BRANCH = "rollbot/revert/payment-router-r7-inc42"
TOKEN = "glpat-adapter-test-token"
LABELS = ("rollbot", "tier3-revert")


@pytest.fixture
def repo(tmp_path: Path) -> BareRepo:
    return revert_repo(
        tmp_path / "configs.git",
        BRANCH,
        "images:\n- name: pay\n  newTag: v2\n",
        "images:\n- name: pay\n  newTag: v1\n",
        "Revert release of payment-router",
    )


@pytest.fixture
def sim(repo: BareRepo) -> Iterator[GitLabSim]:
    with GitLabSim(projects={PROJECT: repo}, token=TOKEN) as s:
        yield s


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "gitlab-token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def host(sim: GitLabSim, token_file: Path) -> GitLabHost:
    return GitLabHost(token_file, url=sim.url, timeout=5)


def _write(path: Path, text: str) -> None:
    path.write_text(text)


async def _open(host: GitLabHost) -> ChangeRequest:
    return await host.open_change(
        PROJECT, head=BRANCH, base="main", title="Revert payment-router", body="Why", labels=LABELS
    )


async def test_open_find_and_comment(host: GitLabHost, sim: GitLabSim, repo: BareRepo) -> None:
    assert host.provider == "gitlab"
    assert await host.find_change(PROJECT, BRANCH) is None
    opened = await _open(host)
    assert opened.number == 1 and opened.state == "open"
    assert (opened.head, opened.base) == (BRANCH, "main")
    assert opened.head_sha == repo.head(BRANCH)
    assert opened.url == f"{sim.url}/{PROJECT}/-/merge_requests/1"
    assert sim.merge_request(PROJECT, 1)["labels"] == list(LABELS)
    assert sim.merge_request(PROJECT, 1)["force_remove_source_branch"] is False
    assert await host.find_change(PROJECT, BRANCH) == opened
    assert await host.get_change(PROJECT, 1) == opened
    await host.comment(PROJECT, 1, "Approved by bob")
    assert sim.notes(PROJECT, 1) == ["Approved by bob"]


async def test_merge_makes_a_real_merge_commit(
    host: GitLabHost, sim: GitLabSim, repo: BareRepo
) -> None:
    opened = await _open(host)
    main_before = repo.head("main")
    merged = await host.merge(
        PROJECT, 1, sha=opened.head_sha, title="Tier 3 revert (#1)", message="Approved-by: bob\n"
    )
    assert merged.state == "merged"
    commit = repo.commit("main")
    assert merged.merge_sha == commit.sha
    assert commit.parents == (main_before, opened.head_sha)
    assert commit.message == "Tier 3 revert (#1)\n\nApproved-by: bob"
    assert repo.head(BRANCH) == opened.head_sha  # the branch stays (remove_source_branch off)
    assert await host.find_change(PROJECT, BRANCH) == merged


async def test_remove_source_branch_when_asked(
    sim: GitLabSim, token_file: Path, repo: BareRepo
) -> None:
    host = GitLabHost(token_file, url=sim.url, remove_source_branch=True)
    opened = await _open(host)
    await host.merge(PROJECT, 1, sha=opened.head_sha, title="T", message="M")
    assert repo.head(BRANCH) is None


async def test_not_approved_is_a_permanent_error_naming_it(
    host: GitLabHost, sim: GitLabSim, repo: BareRepo
) -> None:
    opened = await _open(host)
    sim.require_approvals(PROJECT, 1)
    main_before = repo.head("main")
    with pytest.raises(PermanentError) as refused:
        await host.merge(PROJECT, 1, sha=opened.head_sha, title="T", message="M")
    assert "approvals are missing" in refused.value.message
    assert "not_approved" in refused.value.message
    assert repo.head("main") == main_before
    assert (await host.get_change(PROJECT, 1)).state == "open"


async def test_merge_when_the_pipeline_succeeds(
    host: GitLabHost, sim: GitLabSim, repo: BareRepo
) -> None:
    opened = await _open(host)
    sim.set_pipeline(PROJECT, opened.head_sha, "running")
    queued = await host.merge_when_ready(
        PROJECT, 1, sha=opened.head_sha, title="Tier 3 revert (#1)", message="Approved-by: bob\n"
    )
    assert queued.state == "open" and queued.auto_merge is True
    sim.set_pipeline(PROJECT, opened.head_sha, "success")
    merged = await host.get_change(PROJECT, 1)
    assert merged.state == "merged" and merged.auto_merge is False
    assert merged.merge_sha == repo.head("main")
    assert repo.commit("main").message == "Tier 3 revert (#1)\n\nApproved-by: bob"


async def test_moved_head_is_a_permanent_error(host: GitLabHost, repo: BareRepo) -> None:
    opened = await _open(host)
    repo.commit_files(BRANCH, {"late.txt": "x\n"}, "pushed by someone else")
    with pytest.raises(PermanentError) as moved:
        await host.merge(PROJECT, 1, sha=opened.head_sha, title="T", message="M")
    assert "moved" in moved.value.message
    assert (await host.get_change(PROJECT, 1)).state == "open"


async def test_unavailable_is_temporary(host: GitLabHost, sim: GitLabSim, token_file: Path) -> None:
    sim.fail_next(1, 503)
    with pytest.raises(TemporaryError):
        await host.find_change(PROJECT, BRANCH)
    assert await host.find_change(PROJECT, BRANCH) is None
    nowhere = GitLabHost(token_file, url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(TemporaryError):
        await nowhere.get_change(PROJECT, 1)


async def test_bad_token_is_permanent_and_reread(
    host: GitLabHost, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _write(token_file, "glpat-wrong")
    with pytest.raises(PermanentError) as refused:
        await _open(host)
    assert "glpat-wrong" not in refused.value.message
    _write(token_file, TOKEN)
    assert (await _open(host)).number == 1
    assert TOKEN not in caplog.text and "glpat-wrong" not in caplog.text
    assert TOKEN not in repr(host)


async def test_lost_answers_are_found_again(
    host: GitLabHost, sim: GitLabSim, repo: BareRepo
) -> None:
    sim.lose_next(1, method="POST", path_contains="/merge_requests")
    with pytest.raises(TemporaryError):
        await _open(host)
    found = await host.find_change(PROJECT, BRANCH)
    assert found is not None and found.number == 1
    assert await _open(host) == found  # the 409 answers with the one already open
    assert len(sim.merge_requests(PROJECT)) == 1
    sim.lose_next(1, method="PUT", path_contains="/merge")
    with pytest.raises(TemporaryError):
        await host.merge(PROJECT, 1, sha=found.head_sha, title="T", message="M")
    again = await host.merge(PROJECT, 1, sha=found.head_sha, title="T", message="M")
    assert again.state == "merged" and again.merge_sha == repo.head("main")
