"""The rendered manifests and the examples, validated as CI would: the Kubernetes schemas
of every supported version, the CRD schemas of the custom resources, and checkov.

The tools come from the deploy venv (`make deploy-tools`, requirements-deploy.lock): they
skip without it on a laptop and fail under ROLLBOT_REQUIRE_PEERS=1, like every peer.

Aspects:
- `kubernetes-validate --strict` passes every built-in object of every overlay against
  each supported Kubernetes version (1.29 to 1.35), and reports nothing but the custom
  resources (which it has no schema for); it refuses an unknown field;
- every custom resource, in the overlays (ServiceMonitor, PrometheusRule) and in
  deploy/argo-rollouts (Rollout, AnalysisTemplate, VirtualService), validates against its
  CRD's schema kept in the repo; a typo or a wrong type is refused;
- checkov (no download: no severities, so every failed check counts) fails no check on any
  overlay, and skips exactly the documented ones, each with its reason; it fails a
  privileged container.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.kustomize import (
    CRDS,
    DEPLOY,
    OVERLAYS,
    SUPPORTED_KUBERNETES,
    Doc,
    crd_errors,
    deploy_tool,
    one,
    render,
)

ARGO_EXAMPLES = sorted((DEPLOY / "argo-rollouts").glob("*.yaml"))


def write(docs: list[Doc], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    versions = [a for v in SUPPORTED_KUBERNETES for a in ("-k", f"{v}.0")]
    return subprocess.run(
        [deploy_tool("kubernetes-validate"), "--strict", *versions, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ----------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_strict_for_every_supported_version(
    overlay: str, tmp_path: Path
) -> None:
    docs = render(overlay)
    done = kubernetes_validate(write(docs, tmp_path / f"{overlay}.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line.startswith(("ERROR", "FATAL"))], done.stdout
    for doc in docs:
        name = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
        for version in SUPPORTED_KUBERNETES:
            passed = f"passed for resource {name} against version {version}"
            no_schema = f"Couldn't find schema for kind {doc['kind']} "
            if doc["kind"] in CRDS:
                assert any(no_schema in line for line in lines), name  # checked below
            else:
                assert any(line.endswith(passed) for line in lines), (name, version)
    warned = {line for line in lines if line.startswith("WARN")}
    assert all(any(f"kind {kind} " in line for kind in CRDS) for line in warned), warned


def test_kubernetes_validate_refuses_an_unknown_field(tmp_path: Path) -> None:
    docs = render("ha")
    deployment = one(docs, "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    budget = one(docs, "PodDisruptionBudget")
    budget["spec"]["maxUnavailable"] = [1]
    done = kubernetes_validate(write(docs, tmp_path / "broken.yaml"))
    assert done.returncode != 0
    errors = [line for line in done.stdout.splitlines() if line.startswith("ERROR")]
    assert any("deployment/rollbot" in e and "imagePullPolice" in e for e in errors), errors
    assert any("poddisruptionbudget/rollbot" in e for e in errors), errors


# ----------------------------------------------------------------------------- CRDs


def custom_resources() -> list[tuple[str, Doc]]:
    out = []
    for overlay in OVERLAYS:
        out += [(overlay, d) for d in render(overlay) if d["kind"] in CRDS]
    for path in ARGO_EXAMPLES:
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def test_every_custom_resource_validates_against_its_crd() -> None:
    resources = custom_resources()
    assert {d["kind"] for _, d in resources} == set(CRDS)
    for where, doc in resources:
        assert crd_errors(doc) == [], where


BREAKS: dict[str, tuple[Any, str]] = {
    "ServiceMonitor": (lambda d: d["spec"]["endpoints"][0].update(paths="/metrics"), "paths"),
    "PrometheusRule": (lambda d: d["spec"]["groups"][0].update(rules="x"), "rules"),
    "VirtualService": (lambda d: d["spec"]["http"][0]["route"][0].update(weight="x"), "weight"),
    "Rollout": (lambda d: d["spec"]["strategy"]["canary"].update(stepz=[]), "stepz"),
    "AnalysisTemplate": (lambda d: d["spec"]["metrics"][0].update(interval=60), "interval"),
}


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_crd_validation_refuses_a_typo_or_a_wrong_type(kind: str) -> None:
    breaks, expected = BREAKS[kind]
    (doc,) = [d for _, d in custom_resources() if d["kind"] == kind][:1]
    broken = copy.deepcopy(doc)
    breaks(broken)
    errors = crd_errors(broken)
    assert any(expected in e for e in errors), errors


# ----------------------------------------------------------------------------- checkov

SUPPRESSED = {"CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_38", "CKV_K8S_43"}
"""The checks base/deployment.yaml skips, each with its reason in a checkov.io/skip
annotation (README, Deploying)."""


def checkov(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            deploy_tool("checkov"),
            "--framework",
            "kubernetes",
            "--file",
            str(path),
            "--output",
            "json",
            "--skip-download",  # no call home: no severities, so any failed check counts
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=path.parent,
    )
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert isinstance(report, dict) and report["check_type"] == "kubernetes", report
    return report


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_nothing_but_the_documented_suppressions(
    overlay: str, tmp_path: Path
) -> None:
    report = checkov(write(render(overlay), tmp_path / f"{overlay}.yaml"))
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100
    skipped = report["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == SUPPRESSED
    for check in skipped:
        assert check["resource"].startswith("Deployment.")
        reason = check["check_result"]["suppress_comment"]
        assert len(reason.split()) >= 8, check["check_id"]  # a reason, not a shrug


def test_checkov_fails_a_privileged_container(tmp_path: Path) -> None:
    docs = render("single")
    deployment = one(docs, "Deployment")
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    c["securityContext"] = {**c["securityContext"], "privileged": True}
    report = checkov(write(copy.deepcopy(docs), tmp_path / "privileged.yaml"))
    failed = {check["check_id"] for check in report["results"]["failed_checks"]}
    assert "CKV_K8S_16" in failed  # "Container should not be privileged"
