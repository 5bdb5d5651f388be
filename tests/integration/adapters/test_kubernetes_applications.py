"""bot.adapters.kubernetes's `get_application` (the `Applications` port of bot.core.gitops)
through the real `kubernetes` client against the Kubernetes sim, with the Argo CD sync loop
sim (bot.sim.argo.cd) writing the Application's status from a real bare repository.

Aspects under test:
- the GET on the wire (the Application's path in its namespace, one request);
- an Application no controller has looked at yet reads Unknown, no revision, no operation;
- after a commit: OutOfSync at the new head, the last operation as it was; after the sync:
  Synced at that commit, operation Succeeded, health Progressing until the Rollouts
  controller has observed the new template, then Healthy;
- a failed sync reads operation Failed;
- errors: no such Application → PermanentError naming it (not the Rollout's
  TargetNotFound), a 404 that names no Application → PermanentError saying the kind is not
  served, 403 → Forbidden, 503 → Unreachable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.adapters.kubernetes import KubeRollouts
from bot.core.errors import Forbidden, PermanentError, TargetNotFound, Unreachable
from bot.core.gitops import AppSync
from bot.sim.argo import ArgoController
from bot.sim.argo.cd import ArgoCDSim, application
from bot.sim.git import BareRepo
from bot.sim.kube import KubeSim

URL = "https://git.example.com/platform/configs.git"
PATH = "apps/payment-router"
NS, APPS_NS, NAME = "payments", "argocd", "payment-router"
APP_PATH = f"/apis/argoproj.io/v1alpha1/namespaces/{APPS_NS}/applications/{NAME}"


def manifests(tag: str, *, container_name: str = "app") -> dict[str, str]:
    container = {"name": container_name, "image": f"registry.example.com/payment-router:{tag}"}
    if not container_name:
        del container["name"]
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"containers": [container]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 100}]}},
        },
    }
    return {f"{PATH}/rollout.yaml": yaml.safe_dump(rollout)}


@pytest.fixture
def repo(tmp_path: Path) -> BareRepo:
    return BareRepo.create(tmp_path / "configs.git", manifests("1.12.4"))


@pytest.fixture
def cd(sim: KubeSim, repo: BareRepo) -> ArgoCDSim:
    sim.create(application(NAME, repo_url=URL, path=PATH, dest_namespace=NS))
    return ArgoCDSim(sim, {URL: repo})


async def test_an_application_not_yet_refreshed_reads_unknown(
    sim: KubeSim, kube: KubeRollouts, cd: ArgoCDSim
) -> None:
    got = await kube.get_application(APPS_NS, NAME)
    assert got == AppSync(APPS_NS, NAME, revision=None, sync="Unknown", health="Unknown")
    (request,) = sim.requests_matching("GET", "/applications/")
    assert request.path == APP_PATH


async def test_the_sync_as_verification_reads_it(
    sim: KubeSim, kube: KubeRollouts, cd: ArgoCDSim, repo: BareRepo, argo: ArgoController
) -> None:
    first = repo.head("main")
    cd.sync(APPS_NS, NAME)
    argo.reconcile()
    cd.step()
    assert await kube.get_application(APPS_NS, NAME) == AppSync(
        APPS_NS, NAME, revision=first, sync="Synced", health="Healthy", operation="Succeeded"
    )
    new = repo.commit_files("main", manifests("1.12.3"), "Revert release 1.13.0")
    cd.step()
    assert await kube.get_application(APPS_NS, NAME) == AppSync(
        APPS_NS, NAME, revision=new, sync="OutOfSync", health="Healthy", operation="Succeeded"
    )
    cd.sync(APPS_NS, NAME)
    assert await kube.get_application(APPS_NS, NAME) == AppSync(
        APPS_NS, NAME, revision=new, sync="Synced", health="Progressing", operation="Succeeded"
    )
    argo.reconcile()
    cd.step()
    got = await kube.get_application(APPS_NS, NAME)
    assert (got.sync, got.revision, got.health) == ("Synced", new, "Healthy")


async def test_a_failed_sync_reads_failed(
    kube: KubeRollouts, cd: ArgoCDSim, repo: BareRepo
) -> None:
    cd.sync(APPS_NS, NAME)
    broken = repo.commit_files("main", manifests("1.13.0", container_name=""), "Broken")
    cd.sync(APPS_NS, NAME)
    got = await kube.get_application(APPS_NS, NAME)
    assert (got.operation, got.sync, got.revision) == ("Failed", "OutOfSync", broken)


async def test_no_such_application_is_a_permanent_error_naming_it(
    kube: KubeRollouts, cd: ArgoCDSim
) -> None:
    with pytest.raises(PermanentError) as info:
        await kube.get_application(APPS_NS, "checkout")
    assert not isinstance(info.value, TargetNotFound)
    assert info.value.message == "no Argo CD Application `checkout` in namespace `argocd`"


async def test_a_404_naming_no_application_says_the_kind_is_not_served(
    sim: KubeSim, kube: KubeRollouts, cd: ArgoCDSim
) -> None:
    sim.fail_next(1, status=404, path_contains="/applications/")
    with pytest.raises(PermanentError) as info:
        await kube.get_application(APPS_NS, NAME)
    assert info.value.message.startswith(
        "no Argo CD Application `payment-router` in namespace `argocd`: the cluster serves no "
        "Application kind"
    )
    assert info.value.message.endswith("is Argo CD installed?")


async def test_forbidden_and_unreachable(sim: KubeSim, kube: KubeRollouts, cd: ArgoCDSim) -> None:
    sim.fail_next(1, status=403, path_contains="/applications/")
    with pytest.raises(Forbidden) as forbidden:
        await kube.get_application(APPS_NS, NAME)
    assert 'cannot get resource "applications" in API group "argoproj.io"' in (
        forbidden.value.message
    )
    sim.fail_next(1, status=503, path_contains="/applications/")
    with pytest.raises(Unreachable):
        await kube.get_application(APPS_NS, NAME)
