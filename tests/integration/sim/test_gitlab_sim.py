"""bot/sim/gitlab answers raw HTTP (httpx) with the shapes of GitLab's REST API docs.

Aspects: authentication (PRIVATE-TOKEN, Bearer, 401 body) and the token kept out of the
record; the project by numeric id and by URL-encoded path; a merge request's fields cover
the documented example's (tests/fixtures/gitlab/) and read the branch live from the real
repository; create (labels split, 400 for a missing title, 409 for a second open one,
422 for a missing branch); list filters and pagination headers; notes; merge: 405 with
not_approved / ci_must_pass, 409 for a moved head, a real merge commit with the given
message, squash, 405 on a merged one; auto-merge waits for the pipeline, then merges;
an auto-merge whose branch moved is aborted; fail_next and a lost answer (done, 502).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.sim.git import BareRepo
from bot.sim.gitlab import GitLabSim
from tests.integration.codehosts import revert_repo
from tests.plugins.fixtures import load_fixture

PROJECT = "platform/configs"
ENCODED = "platform%2Fconfigs"
BRANCH = "rollbot/revert/payment-router-r7-inc42"
TOKEN = "glpat-test-token"


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
def api(sim: GitLabSim) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{sim.url}/api/v4", headers={"PRIVATE-TOKEN": TOKEN}, timeout=10
    ) as client:
        yield client


def _open(api: httpx.Client, **extra: object) -> dict:
    body = {"source_branch": BRANCH, "target_branch": "main", "title": "Revert", **extra}
    answer = api.post(f"/projects/{ENCODED}/merge_requests", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_auth_schemes_and_the_token_never_recorded(sim: GitLabSim) -> None:
    url = f"{sim.url}/api/v4/projects/{ENCODED}"
    assert httpx.get(url, headers={"PRIVATE-TOKEN": TOKEN}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    for headers in ({}, {"PRIVATE-TOKEN": "wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {"message": "401 Unauthorized"}
    assert TOKEN not in json.dumps([r.headers for r in sim.requests])
    assert [r.user for r in sim.requests] == ["rollbot", "rollbot", None, None, None]


def test_project_by_id_or_encoded_path(api: httpx.Client, sim: GitLabSim) -> None:
    by_path = api.get(f"/projects/{ENCODED}").json()
    by_id = api.get(f"/projects/{by_path['id']}").json()
    assert by_path == by_id
    assert by_path["path_with_namespace"] == PROJECT
    assert by_path["default_branch"] == "main"
    missing = api.get("/projects/platform%2Fnope")
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Project Not Found"})
    assert api.get("/nothing/here").json() == {"error": "404 Not Found"}


def test_merge_request_has_the_documented_fields_and_reads_git_live(
    api: httpx.Client, repo: BareRepo
) -> None:
    created = _open(api, description="Reverts r7", labels="rollbot, tier3,rollbot")
    doc = load_fixture("gitlab/merge-request.get.response-200.json")
    got = api.get(f"/projects/{ENCODED}/merge_requests/{created['iid']}").json()
    assert set(doc) <= set(got), set(doc) - set(got)
    for key, value in doc.items():
        if value is not None and got[key] is not None:
            assert type(got[key]) is type(value), key
    assert got["labels"] == ["rollbot", "tier3"]
    assert got["state"] == "opened" and got["detailed_merge_status"] == "mergeable"
    assert got["sha"] == repo.head(BRANCH)
    assert got["web_url"].endswith(f"/{PROJECT}/-/merge_requests/1")
    assert got["references"]["full"] == f"{PROJECT}!1"
    moved = repo.commit_files(BRANCH, {"extra.txt": "x\n"}, "another commit")
    assert api.get(f"/projects/{ENCODED}/merge_requests/1").json()["sha"] == moved


def test_create_refusals(api: httpx.Client) -> None:
    url = f"/projects/{ENCODED}/merge_requests"
    missing = api.post(url, json={"source_branch": BRANCH, "target_branch": "main"})
    assert (missing.status_code, missing.json()) == (400, {"error": "title is missing"})
    nope = api.post(url, json={"source_branch": "nope", "target_branch": "main", "title": "t"})
    assert nope.status_code == 422
    assert nope.json() == {"message": ['Source branch "nope" does not exist']}
    first = _open(api)
    again = api.post(url, json={"source_branch": BRANCH, "target_branch": "main", "title": "t"})
    assert again.status_code == 409
    assert again.json() == {
        "message": [
            f"Another open merge request already exists for this source branch: !{first['iid']}"
        ]
    }


def test_list_filters_and_pagination(api: httpx.Client) -> None:
    _open(api)
    url = f"/projects/{ENCODED}/merge_requests"
    listed = api.get(url, params={"source_branch": BRANCH, "state": "all"})
    assert [m["iid"] for m in listed.json()] == [1]
    assert listed.headers["X-Total"] == "1" and listed.headers["X-Page"] == "1"
    assert api.get(url, params={"source_branch": "other"}).json() == []
    assert api.get(url, params={"state": "merged"}).json() == []
    assert api.get(url, params={"state": "bogus"}).status_code == 400


def test_notes(api: httpx.Client, sim: GitLabSim) -> None:
    _open(api)
    note = api.post(f"/projects/{ENCODED}/merge_requests/1/notes", json={"body": "hi *there*"})
    assert note.status_code == 201
    assert note.json()["body"] == "hi *there*"
    assert note.json()["noteable_type"] == "MergeRequest"
    assert sim.notes(PROJECT, 1) == ["hi *there*"]
    empty = api.post(f"/projects/{ENCODED}/merge_requests/1/notes", json={})
    assert (empty.status_code, empty.json()) == (400, {"error": "body is missing"})


def test_merge_refused_until_approved_then_a_real_merge_commit(
    api: httpx.Client, sim: GitLabSim, repo: BareRepo
) -> None:
    _open(api)
    head = repo.head(BRANCH)
    sim.require_approvals(PROJECT, 1)
    url = f"/projects/{ENCODED}/merge_requests/1/merge"
    refused = api.put(url, json={"sha": head, "merge_commit_message": "m"})
    assert (refused.status_code, refused.json()) == (405, {"message": "405 Method Not Allowed"})
    assert api.get(f"/projects/{ENCODED}/merge_requests/1").json()["detailed_merge_status"] == (
        "not_approved"
    )
    moved = api.put(url, json={"sha": "0" * 40})
    assert moved.status_code == 409
    assert moved.json()["message"].startswith("SHA does not match HEAD of source branch")
    sim.approve(PROJECT, 1, "bob")
    main_before = repo.head("main")
    merged = api.put(url, json={"sha": head, "merge_commit_message": "Tier 3\n\nBy: bob\n"})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["state"] == "merged" and body["detailed_merge_status"] == "not_open"
    commit = repo.commit("main")
    assert body["merge_commit_sha"] == commit.sha
    assert commit.parents == (main_before, head)
    assert commit.message == "Tier 3\n\nBy: bob"
    assert repo.show("main", "apps/payment-router/kustomization.yaml").endswith("newTag: v1\n")
    again = api.put(url, json={"sha": head})
    assert (again.status_code, again.json()) == (405, {"message": "405 Method Not Allowed"})


def test_pipeline_must_pass_and_squash(api: httpx.Client, sim: GitLabSim, repo: BareRepo) -> None:
    _open(api)
    head = repo.head(BRANCH)
    sim.require_pipeline(PROJECT)
    sim.set_pipeline(PROJECT, head, "failed")
    url = f"/projects/{ENCODED}/merge_requests/1"
    assert api.put(f"{url}/merge").status_code == 405
    assert api.get(url).json()["detailed_merge_status"] == "ci_must_pass"
    sim.set_pipeline(PROJECT, head, "success")
    merged = api.put(f"{url}/merge", json={"squash": True, "squash_commit_message": "One"})
    assert merged.json()["squash_commit_sha"] == repo.head("main")
    assert repo.commit("main").message == "One"
    assert len(repo.commit("main").parents) == 1


def test_merge_when_pipeline_succeeds(api: httpx.Client, sim: GitLabSim, repo: BareRepo) -> None:
    _open(api)
    head = repo.head(BRANCH)
    sim.set_pipeline(PROJECT, head, "running")
    url = f"/projects/{ENCODED}/merge_requests/1"
    queued = api.put(
        f"{url}/merge",
        json={"merge_when_pipeline_succeeds": True, "sha": head, "merge_commit_message": "M"},
    )
    assert queued.status_code == 200
    assert queued.json()["state"] == "opened"
    assert queued.json()["merge_when_pipeline_succeeds"] is True
    assert queued.json()["merge_user"]["username"] == "rollbot"
    sim.set_pipeline(PROJECT, head, "success")
    done = api.get(url).json()
    assert done["state"] == "merged" and done["merge_when_pipeline_succeeds"] is False
    assert repo.commit(done["merge_commit_sha"]).message == "M"


def test_auto_merge_aborted_when_the_branch_moves(
    api: httpx.Client, sim: GitLabSim, repo: BareRepo
) -> None:
    _open(api)
    sim.require_approvals(PROJECT, 1)
    url = f"/projects/{ENCODED}/merge_requests/1"
    queued = api.put(f"{url}/merge", json={"auto_merge": True, "sha": repo.head(BRANCH)})
    assert queued.json()["merge_when_pipeline_succeeds"] is True
    repo.commit_files(BRANCH, {"late.txt": "x\n"}, "pushed after the auto-merge")
    sim.approve(PROJECT, 1, "bob")
    now = api.get(url).json()
    assert now["state"] == "opened" and now["merge_when_pipeline_succeeds"] is False
    assert now["merge_error"].startswith("Branch has been updated since the merge was requested")


def test_fail_next_and_a_lost_answer(api: httpx.Client, sim: GitLabSim) -> None:
    sim.fail_next(1, 503)
    down = api.get(f"/projects/{ENCODED}")
    assert (down.status_code, down.json()) == (503, {"message": "503 Service Unavailable"})
    sim.lose_next(1, method="POST", path_contains="/merge_requests")
    lost = api.post(
        f"/projects/{ENCODED}/merge_requests",
        json={"source_branch": BRANCH, "target_branch": "main", "title": "t"},
    )
    assert lost.status_code == 502
    listed = api.get(f"/projects/{ENCODED}/merge_requests", params={"source_branch": BRANCH})
    assert [m["iid"] for m in listed.json()] == [1]
