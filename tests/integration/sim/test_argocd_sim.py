"""The Argo CD sync loop sim (bot.sim.argo.cd) on a real bare Git repository, with the Argo
Rollouts controller sim reacting to what it applies.

Aspects under test:

* the Application kind in the Kubernetes sim: stored, validated against the real CRD (a
  missing `spec.destination` is 422), no status subresource;
* refresh: a new commit on the target branch is OutOfSync with `sync.revision` at the new
  head while the live Rollout is untouched and the last operation stays as it was;
* manual sync (`argocd app sync`): the live Rollout's template gets the kustomization's
  image (`images:` newTag) and the commit annotation; Synced at the commit, operationState
  Succeeded with its syncResult, a history entry; the Rollouts controller makes a new
  revision; the Application's health follows the Rollout as Argo CD's check reports it
  (Missing, Progressing, Suspended on the pause step, Healthy); `--revision` to an older
  commit leaves the app OutOfSync with the head;
* a revert commit brings the previous image back, as a new Rollout revision;
* a manifest the API server refuses: operationState Failed with the API server's reason,
  the live Rollout unchanged, OutOfSync; a manifest that does not parse: sync status
  Unknown with a ComparisonError condition, a sync ends in Error;
* automated sync: each new commit synced by a step (initiatedBy automated), a failed
  revision not tried again by the next step, and the loop in its thread syncing a commit
  by itself;
* plain manifest files (the Directory source type) and kustomize's image rules (newName,
  newTag, digest).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.sim.argo import REVISION, ArgoController
from bot.sim.argo.cd import GIT_SHA_ANNOTATION, ArgoCDSim, application
from bot.sim.argo.render import set_image
from bot.sim.git import BareRepo
from bot.sim.kube import ApiError, KubeSim
from tests.helpers import FakeClock, eventually_sync

URL = "https://git.example.com/platform/configs.git"
PATH = "apps/payment-router"
NS, NAME = "payments", "payment-router"
APPS_NS, APP = "argocd", "payment-router"
IMAGE = "registry.example.com/payment-router"


def rollout_manifest(*, container_name: str = "app") -> str:
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}, "creationTimestamp": None},
                "spec": {"containers": [{"name": container_name, "image": f"{IMAGE}:latest"}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1m"}}]}},
        },
    }
    if not container_name:
        del rollout["spec"]["template"]["spec"]["containers"][0]["name"]  # type: ignore[index]
    return yaml.safe_dump(rollout, sort_keys=False)


def kustomization(tag: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["rollout.yaml"],
            "images": [{"name": IMAGE, "newTag": tag}],
        },
        sort_keys=False,
    )


def release(repo: BareRepo, tag: str) -> str:
    return repo.commit_files(
        "main", {f"{PATH}/kustomization.yaml": kustomization(tag)}, f"Release {tag}"
    )


@pytest.fixture
def repo(tmp_path: Path) -> BareRepo:
    return BareRepo.create(
        tmp_path / "configs.git",
        {
            f"{PATH}/kustomization.yaml": kustomization("1.12.4"),
            f"{PATH}/rollout.yaml": rollout_manifest(),
            "README.md": "configs\n",
        },
    )


@pytest.fixture
def cd(kube_sim: KubeSim, repo: BareRepo, fake_clock: FakeClock) -> Iterator[ArgoCDSim]:
    sim = ArgoCDSim(kube_sim, {URL: repo}, clock=lambda: 1_700_000_000 + fake_clock())
    try:
        yield sim
    finally:
        sim.stop()


def app(sim: KubeSim) -> dict[str, Any]:
    got = sim.get("applications", APPS_NS, APP)
    assert got is not None
    return got


def live(sim: KubeSim) -> dict[str, Any]:
    got = sim.get("rollouts", NS, NAME)
    assert got is not None
    return got


def image(sim: KubeSim) -> str:
    return str(live(sim)["spec"]["template"]["spec"]["containers"][0]["image"])


def revision(sim: KubeSim) -> str:
    return str(live(sim)["metadata"]["annotations"][REVISION])


def settle(argo: ArgoController, cd: ArgoCDSim, clock: FakeClock) -> None:
    """The controller walks the canary to the end (the pause included); Argo CD refreshes."""
    argo.reconcile()
    clock.advance(61)
    argo.reconcile()
    argo.reconcile()
    cd.step()


@pytest.fixture
def synced(kube_sim: KubeSim, repo: BareRepo, cd: ArgoCDSim, argo: ArgoController) -> str:
    """The Application created and synced once: revision 1 of the Rollout on 1.12.4."""
    kube_sim.create(application(APP, repo_url=URL, path=PATH, dest_namespace=NS))
    cd.sync(APPS_NS, APP)
    argo.reconcile()
    cd.step()
    sha = repo.head("main")
    assert sha is not None
    return sha


# ----------------------------------------------------------------------------- the kind


def test_the_application_kind_is_served_and_validated(kube_sim: KubeSim) -> None:
    kube_sim.create(application(APP, repo_url=URL, path=PATH, dest_namespace=NS))
    assert app(kube_sim)["spec"]["source"]["path"] == PATH
    assert not kube_sim.has_status_subresource("applications")
    broken = application("broken", repo_url=URL, path=PATH, dest_namespace=NS)
    del broken["spec"]["destination"]
    with pytest.raises(ApiError) as err:
        kube_sim.create(broken)
    assert err.value.code == 422
    assert "spec.destination: Required value" in err.value.message


# ----------------------------------------------------------------------------- manual sync


def test_a_new_application_is_out_of_sync_and_its_rollout_missing(
    kube_sim: KubeSim, repo: BareRepo, cd: ArgoCDSim
) -> None:
    kube_sim.create(application(APP, repo_url=URL, path=PATH, dest_namespace=NS))
    cd.step()
    status = app(kube_sim)["status"]
    assert status["sync"]["status"] == "OutOfSync"
    assert status["sync"]["revision"] == repo.head("main")
    assert status["health"]["status"] == "Missing"
    assert status["sourceType"] == "Kustomize"
    assert "operationState" not in status
    assert kube_sim.get("rollouts", NS, NAME) is None


def test_the_first_sync_creates_the_rollout_from_git(
    kube_sim: KubeSim, repo: BareRepo, cd: ArgoCDSim, argo: ArgoController, fake_clock: FakeClock
) -> None:
    kube_sim.create(application(APP, repo_url=URL, path=PATH, dest_namespace=NS))
    sha = repo.head("main")
    after = cd.sync(APPS_NS, APP, username="alice")
    assert "operation" not in after
    state = after["status"]["operationState"]
    assert state["phase"] == "Succeeded"
    assert state["message"] == "successfully synced (all tasks run)"
    assert state["operation"]["initiatedBy"] == {"username": "alice"}
    assert state["syncResult"]["revision"] == sha
    (result,) = state["syncResult"]["resources"]
    assert (result["kind"], result["name"], result["status"]) == ("Rollout", NAME, "Synced")
    assert result["message"] == f"rollout.argoproj.io/{NAME} created"
    assert after["status"]["sync"] == {
        "status": "Synced",
        "revision": sha,
        "comparedTo": {
            "source": {"repoURL": URL, "path": PATH, "targetRevision": "HEAD"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": NS},
        },
    }
    (entry,) = after["status"]["history"]
    assert (entry["id"], entry["revision"]) == (0, sha)
    template = live(kube_sim)["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == f"{IMAGE}:1.12.4"
    assert template["metadata"]["annotations"] == {GIT_SHA_ANNOTATION: sha}
    assert "creationTimestamp" not in template["metadata"]  # pruned, as the API server does
    # The controller has not seen it yet: Argo CD says so.
    assert after["status"]["health"]["status"] == "Progressing"
    assert after["status"]["resources"][0]["health"] == {
        "status": "Progressing",
        "message": "Waiting for rollout spec update to be observed",
    }
    argo.reconcile()
    cd.step()
    assert revision(kube_sim) == "1"
    assert app(kube_sim)["status"]["health"]["status"] == "Healthy"


def test_a_new_commit_is_out_of_sync_until_synced_then_a_new_revision(
    kube_sim: KubeSim,
    repo: BareRepo,
    cd: ArgoCDSim,
    argo: ArgoController,
    fake_clock: FakeClock,
    synced: str,
) -> None:
    before = copy.deepcopy(live(kube_sim))
    new = release(repo, "1.13.0")
    cd.step()
    status = app(kube_sim)["status"]
    assert status["sync"]["status"] == "OutOfSync"
    assert status["sync"]["revision"] == new
    assert status["operationState"]["syncResult"]["revision"] == synced
    assert status["resources"][0]["status"] == "OutOfSync"
    assert live(kube_sim)["spec"] == before["spec"]

    after = cd.sync(APPS_NS, APP)
    assert after["status"]["sync"]["status"] == "Synced"
    assert after["status"]["sync"]["revision"] == new
    assert after["status"]["operationState"]["phase"] == "Succeeded"
    assert after["status"]["operationState"]["syncResult"]["resources"][0]["message"] == (
        f"rollout.argoproj.io/{NAME} configured"
    )
    assert [h["revision"] for h in after["status"]["history"]] == [synced, new]
    assert [h["id"] for h in after["status"]["history"]] == [0, 1]
    assert image(kube_sim) == f"{IMAGE}:1.13.0"
    annotations = live(kube_sim)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[GIT_SHA_ANNOTATION] == new
    assert live(kube_sim)["metadata"]["generation"] == before["metadata"]["generation"] + 1

    argo.reconcile()
    assert revision(kube_sim) == "2"
    cd.step()
    health = app(kube_sim)["status"]["health"]["status"]
    assert health == "Suspended"  # the canary's pause step: phase Paused
    settle(argo, cd, fake_clock)
    assert app(kube_sim)["status"]["health"]["status"] == "Healthy"
    assert app(kube_sim)["status"]["summary"] == {"images": [f"{IMAGE}:1.13.0"]}


def test_a_revert_commit_brings_the_previous_image_back_as_a_new_revision(
    kube_sim: KubeSim,
    repo: BareRepo,
    cd: ArgoCDSim,
    argo: ArgoController,
    fake_clock: FakeClock,
    synced: str,
) -> None:
    first = copy.deepcopy(live(kube_sim)["spec"]["template"])
    bad = release(repo, "1.13.0")
    cd.sync(APPS_NS, APP)
    settle(argo, cd, fake_clock)
    assert revision(kube_sim) == "2"
    reverted = repo.commit_files(
        "main",
        {f"{PATH}/kustomization.yaml": kustomization("1.12.4")},
        f'Revert "Release 1.13.0"\n\nThis reverts commit {bad}.',
    )
    cd.step()
    assert app(kube_sim)["status"]["sync"]["status"] == "OutOfSync"
    after = cd.sync(APPS_NS, APP)
    assert after["status"]["sync"]["revision"] == reverted
    assert image(kube_sim) == f"{IMAGE}:1.12.4"
    template = live(kube_sim)["spec"]["template"]
    assert template["metadata"]["annotations"] == {GIT_SHA_ANNOTATION: reverted}
    first["metadata"]["annotations"][GIT_SHA_ANNOTATION] = reverted
    assert template == first  # the previous pod template, at the revert commit
    settle(argo, cd, fake_clock)
    assert revision(kube_sim) == "3"
    assert app(kube_sim)["status"]["health"]["status"] == "Healthy"
    assert [h["revision"] for h in app(kube_sim)["status"]["history"]] == [synced, bad, reverted]


# ----------------------------------------------------------------------------- failures


def test_a_manifest_the_api_server_refuses_fails_the_sync(
    kube_sim: KubeSim, repo: BareRepo, cd: ArgoCDSim, synced: str
) -> None:
    before = copy.deepcopy(live(kube_sim))
    broken = repo.commit_files(
        "main",
        {f"{PATH}/rollout.yaml": rollout_manifest(container_name="")},
        "Drop the container name",
    )
    after = cd.sync(APPS_NS, APP)
    state = after["status"]["operationState"]
    assert state["phase"] == "Failed"
    assert state["message"].startswith(
        f'one or more objects failed to apply, reason: Rollout.argoproj.io "{NAME}" is invalid:'
    )
    assert "spec.template.spec.containers[0].name: Required value" in state["message"]
    assert state["syncResult"]["revision"] == broken
    assert state["syncResult"]["resources"][0]["status"] == "SyncFailed"
    assert after["status"]["sync"] == {**after["status"]["sync"], "status": "OutOfSync"}
    assert after["status"]["sync"]["revision"] == broken
    assert [h["revision"] for h in after["status"]["history"]] == [synced]
    assert live(kube_sim) == before


def test_a_manifest_that_does_not_parse_is_a_comparison_error(
    kube_sim: KubeSim, repo: BareRepo, cd: ArgoCDSim, synced: str
) -> None:
    before = copy.deepcopy(live(kube_sim))
    oops = repo.commit_files(
        "main", {f"{PATH}/kustomization.yaml": "resources: [rollout.yaml\n"}, "Oops"
    )
    cd.step()
    status = app(kube_sim)["status"]
    assert status["sync"]["status"] == "Unknown"
    (condition,) = status["conditions"]
    assert condition["type"] == "ComparisonError"
    assert condition["message"].startswith(
        "Failed to load target state: failed to generate manifest for source 1 of 1: "
    )
    assert "kustomization.yaml" in condition["message"]
    assert status["health"]["status"] == "Healthy"  # the live Rollout is as it was
    after = cd.sync(APPS_NS, APP)
    state = after["status"]["operationState"]
    assert state["phase"] == "Error"
    assert state["message"] == f"ComparisonError: {condition['message']}"
    assert state["syncResult"]["revision"] == oops
    assert live(kube_sim) == before
    fixed = release(repo, "1.12.5")
    after = cd.sync(APPS_NS, APP)
    assert "conditions" not in after["status"]
    assert after["status"]["sync"]["revision"] == fixed
    assert image(kube_sim) == f"{IMAGE}:1.12.5"


def test_a_sync_to_an_older_revision_leaves_the_app_out_of_sync(
    kube_sim: KubeSim, repo: BareRepo, cd: ArgoCDSim, synced: str
) -> None:
    release(repo, "1.13.0")
    cd.sync(APPS_NS, APP)
    head = release(repo, "1.14.0")
    after = cd.sync(APPS_NS, APP, revision=synced)  # argocd app sync --revision
    assert image(kube_sim) == f"{IMAGE}:1.12.4"
    annotations = live(kube_sim)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {GIT_SHA_ANNOTATION: synced}
    assert after["status"]["operationState"]["syncResult"]["revision"] == synced
    assert after["status"]["history"][-1]["revision"] == synced
    assert after["status"]["sync"]["status"] == "OutOfSync"
    assert after["status"]["sync"]["revision"] == head


def test_a_sync_while_one_runs_is_refused(kube_sim: KubeSim, cd: ArgoCDSim) -> None:
    kube_sim.create(application(APP, repo_url=URL, path=PATH, dest_namespace=NS))
    kube_sim.patch("applications", APPS_NS, APP, {"operation": {"sync": {"revision": "HEAD"}}})
    with pytest.raises(ApiError) as err:
        cd.sync(APPS_NS, APP)
    assert err.value.code == 409
    assert err.value.message == "another operation is already in progress"


# ----------------------------------------------------------------------------- automated


def test_automated_sync_follows_each_commit_once(
    kube_sim: KubeSim, repo: BareRepo, cd: ArgoCDSim, argo: ArgoController
) -> None:
    kube_sim.create(application(APP, repo_url=URL, path=PATH, dest_namespace=NS, auto=True))
    cd.step()
    first = app(kube_sim)["status"]
    assert first["operationState"]["operation"]["initiatedBy"] == {"automated": True}
    assert first["sync"] == {**first["sync"], "status": "Synced", "revision": repo.head("main")}
    argo.reconcile()
    new = release(repo, "1.13.0")
    cd.step()
    assert app(kube_sim)["status"]["sync"]["revision"] == new
    assert app(kube_sim)["status"]["sync"]["status"] == "Synced"
    assert image(kube_sim) == f"{IMAGE}:1.13.0"

    broken = repo.commit_files(
        "main", {f"{PATH}/rollout.yaml": rollout_manifest(container_name="")}, "Broken"
    )
    cd.step()
    state = app(kube_sim)["status"]["operationState"]
    assert (state["phase"], state["syncResult"]["revision"]) == ("Failed", broken)
    writes = len(kube_sim.changes("applications"))
    cd.step()  # Argo CD skips a revision it already tried: no new operation, no write
    assert len(kube_sim.changes("applications")) == writes
    assert app(kube_sim)["status"]["operationState"] == state


def test_the_loop_in_its_thread_syncs_a_new_commit(
    kube_sim: KubeSim, repo: BareRepo, cd: ArgoCDSim
) -> None:
    kube_sim.create(application(APP, repo_url=URL, path=PATH, dest_namespace=NS, auto=True))
    cd.run_in_thread(interval=0.02)
    eventually_sync(
        lambda: app(kube_sim).get("status", {}).get("sync", {}).get("status") == "Synced",
        what="the first automated sync",
    )
    new = release(repo, "1.13.0")
    eventually_sync(
        lambda: (
            app(kube_sim)["status"]["sync"]["revision"] == new
            and app(kube_sim)["status"]["sync"]["status"] == "Synced"
        ),
        what="the new commit synced by the poll",
    )
    assert image(kube_sim) == f"{IMAGE}:1.13.0"


# ----------------------------------------------------------------------------- sources


def test_plain_manifest_files_are_the_directory_source_type(
    kube_sim: KubeSim, tmp_path: Path, argo: ArgoController
) -> None:
    repo = BareRepo.create(
        tmp_path / "plain.git",
        {
            "deploy/rollout.yaml": rollout_manifest().replace(":latest", ":2.0.0"),
            "deploy/notes.txt": "not a manifest\n",
        },
    )
    cd = ArgoCDSim(kube_sim, {URL: repo})
    kube_sim.create(
        application(APP, repo_url=URL, path="deploy", dest_namespace=NS, target_revision="main")
    )
    after = cd.sync(APPS_NS, APP)
    assert after["status"]["sourceType"] == "Directory"
    assert after["status"]["sync"]["status"] == "Synced"
    assert image(kube_sim) == f"{IMAGE}:2.0.0"


def test_kustomize_image_rules() -> None:
    rule = {"name": IMAGE, "newTag": "1.13.0"}
    assert set_image(f"{IMAGE}:1.12.4", rule) == f"{IMAGE}:1.13.0"
    assert set_image(IMAGE, rule) == f"{IMAGE}:1.13.0"
    assert set_image("registry.example.com/other:1", rule) == "registry.example.com/other:1"
    moved = {"name": IMAGE, "newName": "mirror.example.com/pr"}
    assert set_image(f"{IMAGE}:1.12.4", moved) == "mirror.example.com/pr:1.12.4"
    digest = {"name": IMAGE, "newTag": "x", "digest": "sha256:" + "a" * 64}
    assert set_image(f"{IMAGE}:1.12.4", digest) == f"{IMAGE}@sha256:{'a' * 64}"
    assert set_image("localhost:5000/app:1", {"name": "localhost:5000/app", "newTag": "2"}) == (
        "localhost:5000/app:2"
    )
