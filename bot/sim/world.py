"""The demo world: the payment-router Rollout from the case study, in a :class:`KubeSim`.

Canary steps 10 % → pause 2m → analysis → 25 % → pause 3m → analysis → 50 % → pause 5m → 100 %,
Istio traffic routing, 6 replicas, and an AnalysisTemplate gating on the SLOs (error rate < 2 %,
p95 < 300 ms, p99 < 200 ms, measured every minute five times).  :func:`seed_payment_router`
leaves stable revision 41 (``1.12.4``) fully rolled out and revision 42 (``1.13.0``) starting.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from bot.sim.argo import ArgoController
from bot.sim.kube import KubeSim

NAMESPACE = "payments"
ROLLOUT = "payment-router"
TEMPLATE = "payment-router-slo"
STABLE_IMAGE = "registry.example.com/payment-router:1.12.4"
CANARY_IMAGE = "registry.example.com/payment-router:1.13.0"
STABLE_REVISION = 41
GIT_SHA_ANNOTATION = "rollbot.io/git-sha"
#: The second demo service: checkout, fully rolled out, its new tax engine behind a
#: circuit-breaker flag (the one to flip when it misbehaves with no canary in progress).
CHECKOUT = "checkout"
CHECKOUT_NAMESPACE = "checkout"
CHECKOUT_IMAGE = "registry.example.com/checkout:2.4.0"
CHECKOUT_REVISION = 17
CHECKOUT_FLAGS = {
    "release": "checkout.new-tax-engine.enabled",
    "circuit": "checkout.new-tax-engine.circuit-open",
}
#: The GitOps commit each image was released from (what CI writes on the pod template).
RELEASE_SHAS = {
    STABLE_IMAGE: "9b1e04c7d2a3",
    CANARY_IMAGE: "3f9c2d1e8b7a",
    CHECKOUT_IMAGE: "c41d7a09e2f5",
}


def _template_annotations(image: str, shas: Mapping[str, str] | None = None) -> dict[str, str]:
    sha = (shas if shas is not None else RELEASE_SHAS).get(image)
    return {GIT_SHA_ANNOTATION: sha} if sha else {}


def _query(expr: str) -> str:
    return expr.strip()


def payment_router_analysis_template(namespace: str = NAMESPACE) -> dict[str, Any]:
    prometheus = "http://prometheus.monitoring.svc.cluster.local:9090"
    sel = "job='payment-router',version='{{args.version}}'"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {
            "name": TEMPLATE,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": ROLLOUT},
        },
        "spec": {
            "args": [{"name": "version", "value": "canary"}],
            "metrics": [
                {
                    "name": "error-rate",
                    "interval": "1m",
                    "count": 5,
                    "failureLimit": 0,
                    "successCondition": "result[0] < 0.02",
                    "failureCondition": "result[0] >= 0.02",
                    "provider": {
                        "prometheus": {
                            "address": prometheus,
                            "query": _query(
                                f"sum(rate(http_requests_total{{{sel},status=~'5..'}}[1m])) / "
                                f"sum(rate(http_requests_total{{{sel}}}[1m]))"
                            ),
                        }
                    },
                },
                {
                    "name": "latency-p95",
                    "interval": "1m",
                    "count": 5,
                    "failureLimit": 0,
                    "successCondition": "result[0] < 300",
                    "failureCondition": "result[0] >= 300",
                    "provider": {
                        "prometheus": {
                            "address": prometheus,
                            "query": _query(
                                "histogram_quantile(0.95, sum(rate("
                                "http_request_duration_seconds_bucket"
                                f"{{{sel}}}[1m])) by (le)) * 1000"
                            ),
                        }
                    },
                },
                {
                    "name": "latency-p99",
                    "interval": "1m",
                    "count": 5,
                    "failureLimit": 0,
                    "successCondition": "result[0] < 200",
                    "failureCondition": "result[0] >= 200",
                    "provider": {
                        "prometheus": {
                            "address": prometheus,
                            "query": _query(
                                "histogram_quantile(0.99, sum(rate("
                                "http_request_duration_seconds_bucket"
                                f"{{{sel}}}[1m])) by (le)) * 1000"
                            ),
                        }
                    },
                },
            ],
        },
    }


def _analysis_step() -> dict[str, Any]:
    return {
        "analysis": {
            "templates": [{"templateName": TEMPLATE}],
            "args": [{"name": "version", "value": "canary"}],
        }
    }


def payment_router_rollout(
    namespace: str = NAMESPACE,
    image: str = CANARY_IMAGE,
    *,
    release_shas: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": ROLLOUT,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": ROLLOUT, "team": "payments"},
        },
        "spec": {
            "replicas": 6,
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": ROLLOUT}},
            "template": {
                "metadata": {
                    "labels": {"app": ROLLOUT},
                    "annotations": _template_annotations(image, release_shas),
                },
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                            "env": [{"name": "VERSION", "value": image.rsplit(":", 1)[-1]}],
                            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                        }
                    ],
                },
            },
            "strategy": {
                "canary": {
                    "canaryService": f"{ROLLOUT}-canary",
                    "stableService": f"{ROLLOUT}-stable",
                    "trafficRouting": {
                        "istio": {
                            "virtualService": {"name": f"{ROLLOUT}-vs", "routes": ["primary"]}
                        }
                    },
                    "steps": [
                        {"setWeight": 10},
                        {"pause": {"duration": "2m"}},
                        _analysis_step(),
                        {"setWeight": 25},
                        {"pause": {"duration": "3m"}},
                        _analysis_step(),
                        {"setWeight": 50},
                        {"pause": {"duration": "5m"}},
                        {"setWeight": 100},
                    ],
                },
            },
        },
    }


def seed_payment_router(
    sim: KubeSim,
    controller: ArgoController,
    *,
    namespace: str = NAMESPACE,
    start_canary: bool = True,
    fail_analysis_at_weight: int | None = None,
    release_shas: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Stable revision 41 (1.12.4) fully rolled out; then revision 42 (1.13.0) starting.

    ``fail_analysis_at_weight`` (10 or 25) scripts the analysis that follows that weight to
    fail, so the controller aborts by itself there. ``release_shas``: image → the GitOps
    commit it was released from (default `RELEASE_SHAS`), the pod template's annotation.
    """
    if fail_analysis_at_weight is not None:
        step = analysis_step_after_weight(fail_analysis_at_weight)
        controller.script_analysis(namespace, ROLLOUT, step_index=step, outcome="Failed")
    sim.create(payment_router_analysis_template(namespace))
    sim.create(payment_router_rollout(namespace, STABLE_IMAGE, release_shas=release_shas))
    controller.adopt_as_stable(namespace, ROLLOUT, revision=STABLE_REVISION)
    controller.reconcile()
    if start_canary:
        start_new_revision(sim, namespace=namespace, image=CANARY_IMAGE, release_shas=release_shas)
        controller.reconcile()
    ro = sim.get("rollouts", namespace, ROLLOUT)
    assert ro is not None
    return ro


def analysis_step_after_weight(weight: int) -> int:
    """Index of the first analysis step after ``setWeight: weight``."""
    steps = payment_router_rollout()["spec"]["strategy"]["canary"]["steps"]
    seen = False
    for i, step in enumerate(steps):
        seen = seen or step.get("setWeight") == weight
        if seen and "analysis" in step:
            return i
    raise ValueError(f"no analysis step after setWeight {weight}")


def start_new_revision(
    sim: KubeSim,
    *,
    namespace: str = NAMESPACE,
    image: str = CANARY_IMAGE,
    release_shas: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What a GitOps sync does: a new image in ``spec.template`` (the controller reacts)."""
    ro = sim.get("rollouts", namespace, ROLLOUT)
    assert ro is not None
    template = copy.deepcopy(ro["spec"]["template"])
    container = template["spec"]["containers"][0]
    container["image"] = image
    container["env"] = [{"name": "VERSION", "value": image.rsplit(":", 1)[-1]}]
    template.setdefault("metadata", {})["annotations"] = _template_annotations(image, release_shas)
    return sim.patch("rollouts", namespace, ROLLOUT, {"spec": {"template": template}})


#: Where the payment-router's desired state lives in the GitOps repository of a world
#: with `gitops` (`bot.sim.harness.SimWorld`).
GITOPS_PROJECT = "platform/configs"
GITOPS_PATH = "services/payment-router"


def gitops_files(image: str) -> dict[str, str]:
    """The payment-router's directory in the GitOps repository, releasing `image`: its
    Rollout (the template's image is the stable one, set by kustomize's `images:`) and a
    kustomization naming the release's tag, as CI's release commit writes it."""
    rollout = payment_router_rollout(image=STABLE_IMAGE, release_shas={})
    rollout["spec"]["template"]["metadata"].pop("annotations", None)
    name, tag = image.rsplit(":", 1)
    kustomization = (
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n"
        "  - rollout.yaml\n"
        "images:\n"
        f"  - name: {name}\n"
        f'    newTag: "{tag}"\n'
    )
    return {
        f"{GITOPS_PATH}/kustomization.yaml": kustomization,
        f"{GITOPS_PATH}/rollout.yaml": yaml.safe_dump(rollout, sort_keys=False),
    }


def _renamed(value: Any, old: str, new: str) -> Any:
    """`value` with every string's `old` replaced by `new` (names, selectors, queries)."""
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    return value.replace(old, new) if isinstance(value, str) else value


def seed_checkout(sim: KubeSim, controller: ArgoController) -> dict[str, Any]:
    """The second service: checkout revision 17 (2.4.0), fully rolled out and Healthy, with
    the same canary steps and SLO analysis as payment-router under its own names. No canary
    is in progress, so an incident on it offers the circuit breaker (Tier 2) first."""
    template = _renamed(payment_router_analysis_template(CHECKOUT_NAMESPACE), ROLLOUT, CHECKOUT)
    rollout = _renamed(
        payment_router_rollout(CHECKOUT_NAMESPACE, CHECKOUT_IMAGE), ROLLOUT, CHECKOUT
    )
    rollout["metadata"]["labels"]["team"] = "checkout"
    sim.create(template)
    sim.create(rollout)
    controller.adopt_as_stable(CHECKOUT_NAMESPACE, CHECKOUT, revision=CHECKOUT_REVISION)
    controller.reconcile()
    ro = sim.get("rollouts", CHECKOUT_NAMESPACE, CHECKOUT)
    assert ro is not None
    return ro
