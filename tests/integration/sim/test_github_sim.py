"""GitHubSim (bot.sim.github) on the wire, with raw httpx requests, against GitHub's
documented shapes (the REST API description's examples in tests/fixtures/github/, and the
keys its schemas require beyond them).

Aspects under test:
- auth: Bearer and `token` schemes; no or a wrong token → 401 "Bad credentials"; the
  request record never holds the token; X-GitHub-Api-Version accepted (2022-11-28,
  2026-03-10, selected one echoed), another version → 400;
- GET repository: the example repository's keys, node_id, default_branch,
  allow_auto_merge; 404 for an unknown one;
- create: 201 with Location and the keys of a pull request (the example's and what the
  `pull-request` schema adds); 422 Validation Failed bodies for an unknown head, an
  unknown base, no commits ahead, and a second pull request for the same head → base;
- list: state (open by default, all, closed), head=owner:branch, a bare branch name
  filtering nothing, base, newest first; the pull-request-simple example's keys;
- live refs: a commit pushed over smart HTTP moves head.sha at once; version 2026-03-10
  has no merge_commit_sha;
- labels (200, the issue's labels) and comments (201);
- merge: 405 naming what branch protection requires (reviews, status checks), the author
  cannot approve; 409 on a stale sha; 200 with the merge-result example's keys and a real
  merge commit (two parents, the title and message given) on the base; merged state
  frozen; a second merge → 405; squash → one parent;
- GraphQL enablePullRequestAutoMerge: refused without protection / in clean status;
  accepted when blocked (auto_merge shown), merged by the sim once approved and green
  with the headline and body given; unknown node → NOT_FOUND; other operations →
  undefinedField; bad token → 401;
- faults: fail_next (nothing done, 5xx), lose_next (done, 5xx).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sim.git import BareRepo, GitHttpServer
from bot.sim.github import GitHubSim
from tests.integration.codehosts import served_revert_repo
from tests.plugins.fixtures import load_fixture

TOKEN = "gh-sim-token"
REPO = "platform/configs"
API = f"/repos/{REPO}"
BRANCH = "rollbot/revert/payment-router-r3-inc1"
AUTO_MERGE = (
    "mutation($input: EnablePullRequestAutoMergeInput!) {"
    " enablePullRequestAutoMerge(input: $input) { pullRequest { id number } } }"
)


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
def http(sim: GitHubSim) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=10.0) as client:
        yield client


def open_pull(http: httpx.Client, head: str = BRANCH, **extra: Any) -> dict[str, Any]:
    r = http.post(f"{API}/pulls", json={"title": "Revert", "head": head, "base": "main", **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def keys(example: Any) -> set[str]:
    return set(example)


def simple_example() -> dict[str, Any]:
    """The documented pull-request-simple example (GET …/pulls)."""
    return dict(load_fixture("github/pull-request-simple-items.json")[0])


# What the `pull-request` schema requires beyond `pull-request-simple` (GET …/pulls/{n}).
PULL_EXTRAS = {
    "merged",
    "mergeable",
    "mergeable_state",
    "merged_by",
    "comments",
    "review_comments",
    "maintainer_can_modify",
    "commits",
    "additions",
    "deletions",
    "changed_files",
}
# What the `issue-comment` schema requires.
COMMENT_KEYS = {"id", "node_id", "url", "html_url", "user", "created_at", "updated_at", "issue_url"}


# ── auth and versions ──


def test_bad_or_missing_credentials_are_401_and_never_recorded(sim: GitHubSim) -> None:
    with httpx.Client(base_url=sim.url) as raw:
        none = raw.get(API)
        wrong = raw.get(API, headers={"Authorization": "Bearer nope"})
        scheme = raw.get(API, headers={"Authorization": f"token {TOKEN}"})
    for r in (none, wrong):
        assert r.status_code == 401
        assert r.json() == {
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        }
    assert scheme.status_code == 200
    assert [r.user for r in sim.requests] == [None, None, "rollbot"]
    assert all(TOKEN not in repr(r) for r in sim.requests)
    assert sim.requests[2].headers["authorization"] == "token <redacted>"


def test_api_versions(http: httpx.Client) -> None:
    r = http.get(API, headers={"X-GitHub-Api-Version": "2026-03-10"})
    assert r.headers["x-github-api-version-selected"] == "2026-03-10"
    assert http.get(API).headers["x-github-api-version-selected"] == "2022-11-28"
    bad = http.get(API, headers={"X-GitHub-Api-Version": "2021-01-01"})
    assert bad.status_code == 400
    assert "Unsupported 'X-GitHub-Api-Version'" in bad.json()["message"]


# ── repository ──


def test_get_repository(http: httpx.Client) -> None:
    r = http.get(API)
    assert r.status_code == 200
    body = r.json()
    assert keys(simple_example()["base"]["repo"]) <= set(body)
    assert body["full_name"] == REPO and body["default_branch"] == "main"
    assert body["allow_auto_merge"] is True and body["node_id"]
    missing = http.get("/repos/platform/nope")
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"


# ── pull requests ──


def test_create_pull_request(http: httpx.Client, bare: BareRepo) -> None:
    r = http.post(
        f"{API}/pulls",
        json={"title": "Revert", "head": f"platform:{BRANCH}", "base": "main", "body": "Why"},
    )
    assert r.status_code == 201, r.text
    pull = r.json()
    assert keys(simple_example()) | PULL_EXTRAS <= set(pull)
    assert keys(simple_example()["head"]) == set(pull["head"])
    assert keys(simple_example()["head"]["repo"]) <= set(pull["head"]["repo"])
    assert keys(simple_example()["user"]) <= set(pull["user"])
    assert r.headers["location"] == pull["url"]
    assert pull["number"] == 1 and pull["state"] == "open" and pull["merged"] is False
    assert pull["head"]["ref"] == BRANCH and pull["head"]["sha"] == bare.head(BRANCH)
    assert pull["base"]["ref"] == "main" and pull["base"]["sha"] == bare.head("main")
    assert pull["mergeable_state"] == "clean" and pull["auto_merge"] is None
    assert pull["html_url"].endswith(f"/{REPO}/pull/1")


def test_create_validation_failures(http: httpx.Client, bare: BareRepo) -> None:
    def refused(head: str, base: str = "main") -> dict[str, Any]:
        r = http.post(f"{API}/pulls", json={"title": "T", "head": head, "base": base})
        assert r.status_code == 422, r.text
        body = dict(r.json())
        assert body["message"] == "Validation Failed"
        assert body["documentation_url"].startswith("https://docs.github.com/rest/pulls")
        return body

    assert refused("nope")["errors"] == [
        {"resource": "PullRequest", "field": "head", "code": "invalid"}
    ]
    assert refused(BRANCH, "nope")["errors"] == [
        {"resource": "PullRequest", "field": "base", "code": "invalid"}
    ]
    bare.run("branch", "level", "main")
    assert refused("level")["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "No commits between main and level",
        }
    ]
    open_pull(http)
    assert refused(BRANCH)["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": f"A pull request already exists for platform:{BRANCH}.",
        }
    ]


def test_list_filters(http: httpx.Client, bare: BareRepo) -> None:
    bare.commit_files("other", {"x": "1"}, "Other", start="main")
    first = open_pull(http)
    second = open_pull(http, head="other")
    listed = http.get(f"{API}/pulls", params={"head": f"platform:{BRANCH}", "state": "all"})
    assert [p["number"] for p in listed.json()] == [first["number"]]
    assert keys(simple_example()) <= set(listed.json()[0])
    everything = http.get(f"{API}/pulls", params={"head": BRANCH})  # no owner: no filter
    assert [p["number"] for p in everything.json()] == [second["number"], first["number"]]
    assert http.get(f"{API}/pulls", params={"head": f"someone:{BRANCH}"}).json() == []
    assert http.get(f"{API}/pulls", params={"base": "other"}).json() == []
    r = http.put(f"{API}/pulls/{second['number']}/merge", json={})
    assert r.status_code == 200
    open_only = http.get(f"{API}/pulls").json()
    closed = http.get(f"{API}/pulls", params={"state": "closed"}).json()
    assert [p["number"] for p in open_only] == [first["number"]]
    assert [p["number"] for p in closed] == [second["number"]]
    assert closed[0]["merged_at"] and closed[0]["merge_commit_sha"] == bare.head("main")


def test_head_is_read_live_from_a_push_over_http(
    http: httpx.Client, git: GitHttpServer, bare: BareRepo, tmp_path: Path
) -> None:
    number = open_pull(http)["number"]
    url = git.repo_url("configs").replace("://", f"://x-access-token:{git.token}@")
    clone = tmp_path / "clone"
    env = {"GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ident = ["-c", "user.name=r", "-c", "user.email=r@example.com"]
    subprocess.run(["git", "clone", "-q", "-b", BRANCH, url, str(clone)], check=True, env=env)
    (clone / "more").write_text("more\n")
    subprocess.run(["git", "-C", str(clone), "add", "more"], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), *ident, "commit", "-qm", "More"], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", BRANCH], check=True, env=env)
    pull = http.get(f"{API}/pulls/{number}").json()
    assert pull["head"]["sha"] == bare.head(BRANCH)
    assert pull["commits"] == 2
    new = http.get(f"{API}/pulls/{number}", headers={"X-GitHub-Api-Version": "2026-03-10"})
    assert "merge_commit_sha" not in new.json() and "merge_commit_sha" in pull


def test_labels_and_comments(http: httpx.Client, sim: GitHubSim) -> None:
    number = open_pull(http)["number"]
    r = http.post(f"{API}/issues/{number}/labels", json={"labels": ["rollbot", "tier3"]})
    assert r.status_code == 200
    assert [label["name"] for label in r.json()] == ["rollbot", "tier3"]
    assert keys(simple_example()["labels"][0]) <= set(r.json()[0])
    again = http.post(f"{API}/issues/{number}/labels", json={"labels": ["tier3"]})
    assert [label["name"] for label in again.json()] == ["rollbot", "tier3"]
    c = http.post(f"{API}/issues/{number}/comments", json={"body": "Approved by Bo"})
    assert c.status_code == 201
    assert set(c.json()) >= COMMENT_KEYS
    assert sim.comments(REPO, number) == ["Approved by Bo"]
    assert http.post(f"{API}/issues/99/comments", json={"body": "x"}).status_code == 404


# ── merging ──


def test_merge_refused_by_branch_protection_then_merged(
    http: httpx.Client, sim: GitHubSim, bare: BareRepo
) -> None:
    pull = open_pull(http)
    number, head = pull["number"], pull["head"]["sha"]
    sim.protect(REPO, "main", approvals=1, checks=("ci",))
    assert http.get(f"{API}/pulls/{number}").json()["mergeable_state"] == "blocked"
    r = http.put(f"{API}/pulls/{number}/merge", json={"sha": head})
    assert r.status_code == 405
    assert r.json()["message"] == (
        "At least 1 approving review is required by reviewers with write access.\n"
        'Required status check "ci" is expected.'
    )
    with pytest.raises(ValueError, match="your own pull request"):
        sim.approve(REPO, number, "rollbot")
    sim.approve(REPO, number, "bo")
    sim.set_status(REPO, head, "ci", "failure")
    failing = http.put(f"{API}/pulls/{number}/merge", json={"sha": head})
    assert failing.json()["message"] == 'Required status check "ci" is failing.'
    sim.set_status(REPO, head, "ci", "success")
    stale = http.put(f"{API}/pulls/{number}/merge", json={"sha": "0" * 40})
    assert stale.status_code == 409
    assert stale.json()["message"] == "Head branch was modified. Review and try the merge again."
    before = bare.head("main")
    done = http.put(
        f"{API}/pulls/{number}/merge",
        json={"sha": head, "commit_title": "Tier 3 revert (#1)", "commit_message": "Incident: x\n"},
    )
    assert done.status_code == 200
    assert set(done.json()) == keys(load_fixture("github/pull-request-merge-result.json"))
    assert done.json()["merged"] is True and done.json()["sha"] == bare.head("main")
    commit = bare.commit(done.json()["sha"])
    assert commit.parents == (before, head)
    assert commit.message == "Tier 3 revert (#1)\n\nIncident: x"
    merged = http.get(f"{API}/pulls/{number}").json()
    assert merged["state"] == "closed" and merged["merged"] is True
    assert merged["merge_commit_sha"] == commit.sha and merged["head"]["sha"] == head
    assert merged["merged_by"]["login"] == "rollbot"
    again = http.put(f"{API}/pulls/{number}/merge", json={"sha": head})
    assert again.status_code == 405 and again.json()["message"] == "Pull Request is not mergeable"


def test_squash_merge(http: httpx.Client, bare: BareRepo) -> None:
    number = open_pull(http)["number"]
    before = bare.head("main")
    r = http.put(f"{API}/pulls/{number}/merge", json={"merge_method": "squash"})
    assert r.status_code == 200
    commit = bare.commit(r.json()["sha"])
    assert commit.parents == (before,) and commit.message == f"Revert (#{number})"


# ── GraphQL auto-merge ──


def test_auto_merge_waits_for_protection_then_merges(
    http: httpx.Client, sim: GitHubSim, bare: BareRepo
) -> None:
    pull = open_pull(http)
    number, head, node = pull["number"], pull["head"]["sha"], pull["node_id"]
    variables = {
        "input": {
            "pullRequestId": node,
            "mergeMethod": "MERGE",
            "commitHeadline": "Tier 3 revert (#1)",
            "commitBody": "Approved-by: bo\n",
        }
    }
    unprotected = http.post("/graphql", json={"query": AUTO_MERGE, "variables": variables})
    assert unprotected.status_code == 200
    assert unprotected.json()["errors"][0]["message"] == (
        "Pull request Protected branch rules not configured for this branch"
    )
    sim.protect(REPO, "main", approvals=0, checks=())
    clean = http.post("/graphql", json={"query": AUTO_MERGE, "variables": variables}).json()
    assert clean["data"] == {"enablePullRequestAutoMerge": None}
    assert clean["errors"][0]["message"] == "Pull request Pull request is in clean status"
    assert clean["errors"][0]["type"] == "UNPROCESSABLE"

    sim.protect(REPO, "main", approvals=1, checks=("ci",))
    ok = http.post("/graphql", json={"query": AUTO_MERGE, "variables": variables}).json()
    assert "errors" not in ok
    assert ok["data"]["enablePullRequestAutoMerge"]["pullRequest"]["number"] == number
    waiting = http.get(f"{API}/pulls/{number}").json()
    assert waiting["state"] == "open"
    assert waiting["auto_merge"]["merge_method"] == "merge"
    assert waiting["auto_merge"]["commit_title"] == "Tier 3 revert (#1)"
    sim.approve(REPO, number, "bo")
    assert http.get(f"{API}/pulls/{number}").json()["state"] == "open"
    sim.set_status(REPO, head, "ci", "success")
    merged = http.get(f"{API}/pulls/{number}").json()
    assert merged["merged"] is True and merged["auto_merge"] is None
    commit = bare.commit(merged["merge_commit_sha"])
    assert commit.message == "Tier 3 revert (#1)\n\nApproved-by: bo"
    assert commit.parents[1] == head


def test_graphql_errors(http: httpx.Client, sim: GitHubSim) -> None:
    missing = {"input": {"pullRequestId": "PR_nope", "mergeMethod": "MERGE"}}
    r = http.post("/graphql", json={"query": AUTO_MERGE, "variables": missing}).json()
    assert r["errors"][0]["type"] == "NOT_FOUND"
    assert (
        r["errors"][0]["message"] == "Could not resolve to a node with the global id of 'PR_nope'"
    )
    other = http.post("/graphql", json={"query": "query { viewer { login } }"}).json()
    assert other["errors"][0]["extensions"]["code"] == "undefinedField"
    assert "data" not in other
    with httpx.Client(base_url=sim.url) as raw:
        bad = raw.post(
            "/graphql", json={"query": AUTO_MERGE}, headers={"Authorization": "bearer x"}
        )
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"


# ── faults ──


def test_fail_next_does_nothing_lose_next_does_it(http: httpx.Client, sim: GitHubSim) -> None:
    sim.fail_next(1, 503)
    r = http.post(f"{API}/pulls", json={"title": "T", "head": BRANCH, "base": "main"})
    assert r.status_code == 503 and sim.pulls(REPO) == []
    sim.lose_next(1)
    lost = http.post(f"{API}/pulls", json={"title": "T", "head": BRANCH, "base": "main"})
    assert lost.status_code == 502 and lost.json() == {"message": "Server Error"}
    assert [p["number"] for p in sim.pulls(REPO)] == [1]
    assert sim.requests[-1].status == 502
