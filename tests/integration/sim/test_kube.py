"""The Kubernetes API sim, driven by the real ``kubernetes`` client over HTTP.

Aspects under test:

* kubeconfig loading, bearer token (401 without it), ``/version`` and discovery
  (``/apis``, ``/apis/argoproj.io/v1alpha1`` listing ``rollouts/status``);
* list / get / 404 ``Status`` body, ``labelSelector`` on ReplicaSets, 409 on a stale update;
* watches: replay from a resourceVersion, BOOKMARK events, ``compact()`` → ``410 Expired``
  ERROR event, ``drop_watches()`` cutting the stream mid-way;
* merge patch and JSON patch on the main resource and on ``/status`` (subresource isolation,
  ``metadata.generation`` only for spec changes), a JSON-patch content type with an object
  body (400 like the real server), strategic merge on a custom resource (415);
* ``fail_next`` (403, 503) surfacing as ``ApiException``; ``set_unreachable``;
* ``hold_answers``: the patch is applied (a watch sees it) while its answer hangs; released,
  the caller gets it; a caller that went away never does (``lost_answers``), and the
  change stays made, as a real API server commits a write whose client died;
* recorded requests (exact path, content type, body).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import urllib3
from kubernetes.client import ApiException

from bot.sim.kube import KubeSim
from tests.helpers import eventually_sync

G, V, NS = "argoproj.io", "v1alpha1", "payments"


def _rollout(name: str = "checkout", image: str = "example/checkout:1") -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
        },
        "status": {
            "phase": "Paused",
            "currentStepIndex": 1,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-01-01T00:00:00Z"}],
        },
    }


@pytest.fixture
def api(kubeconfig: Path) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    client = kubernetes.client.ApiClient(configuration)
    yield client
    client.close()


@pytest.fixture
def custom(api: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


def _raw_patch(api: kubernetes.client.ApiClient, path: str, body: Any, content_type: str) -> Any:
    """A PATCH through the real client with an explicit content type."""
    return api.call_api(
        path,
        "PATCH",
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        response_type="object",
        _return_http_data_only=True,
    )


def test_discovery_and_version(api: kubernetes.client.ApiClient, kube_sim: KubeSim) -> None:
    assert kubernetes.client.VersionApi(api).get_code().major == "1"
    groups = kubernetes.client.ApisApi(api).get_api_versions()
    assert {"argoproj.io", "apps", "coordination.k8s.io"} <= {g.name for g in groups.groups}
    resources = kubernetes.client.CustomObjectsApi(api).get_api_resources(G, V)
    by_name = {r.name: r for r in resources.resources}
    assert by_name["rollouts"].kind == "Rollout"
    assert by_name["rollouts"].short_names == ["ro"]
    assert by_name["rollouts"].namespaced is True
    assert "watch" in by_name["rollouts"].verbs
    assert by_name["rollouts/status"].verbs == ["get", "patch", "update"]
    # the real AnalysisRun CRD declares no status subresource
    assert "analysisruns" in by_name and "analysisruns/status" not in by_name


def test_unauthenticated_request_is_401(kube_sim: KubeSim) -> None:
    r = httpx.get(f"{kube_sim.url}/apis/{G}/{V}/namespaces/{NS}/rollouts")
    assert r.status_code == 401
    assert r.json()["reason"] == "Unauthorized"


def test_list_get_and_not_found(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout("a"))
    kube_sim.create(_rollout("b"))
    listed = custom.list_namespaced_custom_object(G, V, NS, "rollouts")
    assert listed["kind"] == "RolloutList"
    assert listed["metadata"]["resourceVersion"] == kube_sim.resource_version
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "b"]
    everywhere = custom.list_cluster_custom_object(G, V, "rollouts")
    assert len(everywhere["items"]) == 2
    got = custom.get_namespaced_custom_object(G, V, NS, "rollouts", "a")
    assert got["status"]["phase"] == "Paused"
    assert got["metadata"]["generation"] == 1 and got["metadata"]["uid"]
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(G, V, NS, "rollouts", "x")
    assert err.value.status == 404
    assert json.loads(err.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'rollouts.argoproj.io "x" not found',
        "reason": "NotFound",
        "details": {"name": "x", "group": "argoproj.io", "kind": "rollouts"},
        "code": 404,
    }


def test_label_selector_and_conflict(
    api: kubernetes.client.ApiClient, custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    for h in ("abc", "def"):
        kube_sim.create(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"checkout-{h}",
                    "namespace": NS,
                    "labels": {"app": "checkout", "rollouts-pod-template-hash": h},
                },
                "spec": {
                    "selector": {"matchLabels": {"rollouts-pod-template-hash": h}},
                    "template": {
                        "metadata": {"labels": {"rollouts-pod-template-hash": h}},
                        "spec": {"containers": [{"name": "a", "image": "b"}]},
                    },
                },
            }
        )
    apps = kubernetes.client.AppsV1Api(api)
    found = apps.list_namespaced_replica_set(NS, label_selector="rollouts-pod-template-hash=abc")
    assert [rs.metadata.name for rs in found.items] == ["checkout-abc"]
    found = apps.list_namespaced_replica_set(
        NS, label_selector="app=checkout,rollouts-pod-template-hash notin (abc)"
    )
    assert [rs.metadata.name for rs in found.items] == ["checkout-def"]

    kube_sim.create(_rollout())
    stale = custom.get_namespaced_custom_object(G, V, NS, "rollouts", "checkout")
    kube_sim.patch("rollouts", NS, "checkout", {"spec": {"replicas": 3}})
    stale["spec"]["replicas"] = 4
    with pytest.raises(ApiException) as err:
        custom.replace_namespaced_custom_object(G, V, NS, "rollouts", "checkout", stale)
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "Conflict"


def test_watch_replays_from_resource_version(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    first = kube_sim.create(_rollout("a"))
    since = first["metadata"]["resourceVersion"]
    kube_sim.patch("rollouts", NS, "a", {"spec": {"replicas": 5}})
    kube_sim.create(_rollout("b"))
    kube_sim.delete("rollouts", NS, "b")
    w = kubernetes.watch.Watch()
    seen = []
    for event in w.stream(
        custom.list_namespaced_custom_object, G, V, NS, "rollouts", resource_version=since
    ):
        seen.append(
            (
                event["type"],
                event["object"]["metadata"]["name"],
                event["object"]["metadata"]["resourceVersion"],
            )
        )
        if len(seen) == 3:
            w.stop()
    assert seen == [("MODIFIED", "a", "2"), ("ADDED", "b", "3"), ("DELETED", "b", "4")]


def test_watch_sends_live_events_and_bookmarks(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.bookmark_interval = 0.1
    kube_sim.create(_rollout("a"))
    w = kubernetes.watch.Watch()
    types = []
    for event in w.stream(
        custom.list_namespaced_custom_object,
        G,
        V,
        NS,
        "rollouts",
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        types.append(event["type"])
        if event["type"] == "ADDED":
            kube_sim.update_status("rollouts", NS, "a", {"phase": "Healthy"})
        if event["type"] == "BOOKMARK":
            obj = event["object"]
            assert obj == {
                "kind": "Rollout",
                "apiVersion": f"{G}/{V}",
                "metadata": {"resourceVersion": kube_sim.resource_version},
            }
            w.stop()
    assert types == ["ADDED", "MODIFIED", "BOOKMARK"]
    watch_req = kube_sim.requests_matching("GET", "/rollouts")[-1]
    assert watch_req.param("watch") == "True" or watch_req.param("watch") == "true"
    assert watch_req.param("allowWatchBookmarks") in ("True", "true")


def test_watch_timeout_ends_cleanly(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    started = time.monotonic()
    events = list(
        kubernetes.watch.Watch().stream(
            custom.list_namespaced_custom_object, G, V, NS, "rollouts", timeout_seconds=1
        )
    )
    assert events == []
    assert 0.9 < time.monotonic() - started < 5


def test_compact_makes_old_resource_version_expire(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout("a"))
    kube_sim.patch("rollouts", NS, "a", {"spec": {"replicas": 3}})
    kube_sim.compact()
    # on the wire: one ERROR event with a 410 Expired Status, then the stream ends
    r = httpx.get(
        f"{kube_sim.url}/apis/{G}/{V}/namespaces/{NS}/rollouts",
        params={"watch": "true", "resourceVersion": "1"},
        headers={"Authorization": f"Bearer {kube_sim.token}"},
    )
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "too old resource version: 1 (2)",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    # the real client retries once, then raises
    with pytest.raises(ApiException) as err:
        list(
            kubernetes.watch.Watch().stream(
                custom.list_namespaced_custom_object, G, V, NS, "rollouts", resource_version="1"
            )
        )
    assert err.value.status == 410
    assert "Expired" in err.value.reason
    # a watch from the current resourceVersion is fine
    events = list(
        kubernetes.watch.Watch().stream(
            custom.list_namespaced_custom_object,
            G,
            V,
            NS,
            "rollouts",
            resource_version=kube_sim.resource_version,
            timeout_seconds=1,
        )
    )
    assert events == []


def test_drop_watches_cuts_the_stream(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout("a"))
    outcome: dict[str, Any] = {"events": []}

    def watch() -> None:
        try:
            for event in kubernetes.watch.Watch().stream(
                custom.list_namespaced_custom_object, G, V, NS, "rollouts", resource_version="1"
            ):
                outcome["events"].append(event["type"])
        except urllib3.exceptions.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    eventually_sync(lambda: kube_sim.open_watches() == 1, interval=0.01)
    kube_sim.update_status("rollouts", NS, "a", {"phase": "Healthy"})
    eventually_sync(lambda: outcome["events"] == ["MODIFIED"], interval=0.01)
    assert kube_sim.drop_watches() == 1
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), urllib3.exceptions.HTTPError)


def test_merge_patch_main_and_status(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout())
    # main resource: spec changes (generation +1), status changes ignored
    out = custom.patch_namespaced_custom_object(
        G,
        V,
        NS,
        "rollouts",
        "checkout",
        {
            "spec": {"paused": True},
            "status": {"abort": True},
            "metadata": {"annotations": {"a": "b"}},
        },
    )
    assert out["spec"]["paused"] is True
    assert "abort" not in out["status"]
    assert out["metadata"]["generation"] == 2
    assert out["metadata"]["annotations"] == {"a": "b"}
    # status subresource: only .status changes; null deletes
    out = custom.patch_namespaced_custom_object_status(
        G,
        V,
        NS,
        "rollouts",
        "checkout",
        {"status": {"abort": True, "pauseConditions": None}, "spec": {"replicas": 9}},
    )
    assert out["status"]["abort"] is True
    assert "pauseConditions" not in out["status"]
    assert out["spec"]["replicas"] == 2
    assert out["metadata"]["generation"] == 2
    # a no-op patch writes nothing
    rv = out["metadata"]["resourceVersion"]
    again = custom.patch_namespaced_custom_object_status(
        G, V, NS, "rollouts", "checkout", {"status": {"abort": True}}
    )
    assert again["metadata"]["resourceVersion"] == rv
    patches = kube_sim.requests_matching("PATCH")
    assert [(r.path, r.content_type) for r in patches] == [
        (f"/apis/{G}/{V}/namespaces/{NS}/rollouts/checkout", "application/merge-patch+json"),
        (f"/apis/{G}/{V}/namespaces/{NS}/rollouts/checkout/status", "application/merge-patch+json"),
        (f"/apis/{G}/{V}/namespaces/{NS}/rollouts/checkout/status", "application/merge-patch+json"),
    ]
    assert patches[1].body == {
        "status": {"abort": True, "pauseConditions": None},
        "spec": {"replicas": 9},
    }


def test_json_patch_main_and_status(api: kubernetes.client.ApiClient, kube_sim: KubeSim) -> None:
    kube_sim.create(_rollout())
    base = f"/apis/{G}/{V}/namespaces/{NS}/rollouts/checkout"
    out = _raw_patch(
        api,
        base + "/status",
        [
            {"op": "test", "path": "/status/currentStepIndex", "value": 1},
            {"op": "remove", "path": "/status/pauseConditions"},
            {"op": "replace", "path": "/status/currentStepIndex", "value": 2},
            {"op": "add", "path": "/spec/paused", "value": True},
        ],
        "application/json-patch+json",
    )
    assert out["status"]["currentStepIndex"] == 2
    assert "pauseConditions" not in out["status"]
    assert "paused" not in out["spec"]  # /status ignores the rest
    out = _raw_patch(
        api,
        base,
        [
            {"op": "add", "path": "/spec/paused", "value": True},
            {"op": "add", "path": "/status/abort", "value": True},
        ],
        "application/json-patch+json",
    )
    assert out["spec"]["paused"] is True and "abort" not in out["status"]
    with pytest.raises(ApiException) as err:
        _raw_patch(
            api,
            base,
            [{"op": "test", "path": "/spec/replicas", "value": 7}],
            "application/json-patch+json",
        )
    assert err.value.status == 422
    recorded = kube_sim.requests_matching("PATCH")[0]
    assert recorded.content_type == "application/json-patch+json"
    assert recorded.body[1] == {"op": "remove", "path": "/status/pauseConditions"}


def test_json_patch_type_with_object_body_is_refused(kube_sim: KubeSim) -> None:
    kube_sim.create(_rollout())
    r = httpx.patch(
        f"{kube_sim.url}/apis/{G}/{V}/namespaces/{NS}/rollouts/checkout/status",
        content=json.dumps({"status": {"abort": True}}),
        headers={
            "Authorization": f"Bearer {kube_sim.token}",
            "Content-Type": "application/json-patch+json",
        },
    )
    assert r.status_code == 400
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
        "reason": "BadRequest",
        "code": 400,
    }
    assert "abort" not in kube_sim.get("rollouts", NS, "checkout")["status"]


def test_strategic_merge_on_custom_resource_is_415(
    api: kubernetes.client.ApiClient, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout())
    with pytest.raises(ApiException) as err:
        _raw_patch(
            api,
            f"/apis/{G}/{V}/namespaces/{NS}/rollouts/checkout",
            {"spec": {"paused": True}},
            "application/strategic-merge-patch+json",
        )
    assert err.value.status == 415
    body = json.loads(err.value.body)
    assert body["reason"] == "UnsupportedMediaType"
    assert body["message"].startswith(
        "the body of the request was in an unknown format - "
        "accepted media types include: "
        "application/json-patch+json, "
        "application/merge-patch+json"
    )


def test_invalid_object_is_422(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout())
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            G, V, NS, "rollouts", "checkout", {"spec": {"replicas": "six"}}
        )
    assert err.value.status == 422
    body = json.loads(err.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.replicas"


def test_fail_next_and_unreachable(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout())
    kube_sim.fail_next(1, status=403, path_contains="/status")
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object_status(
            G, V, NS, "rollouts", "checkout", {"status": {"abort": True}}
        )
    assert err.value.status == 403
    body = json.loads(err.value.body)
    assert body["reason"] == "Forbidden"
    assert 'cannot patch resource "rollouts/status"' in body["message"]
    kube_sim.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            custom.get_namespaced_custom_object(G, V, NS, "rollouts", "checkout")
        assert err.value.status == 503
        assert json.loads(err.value.body)["reason"] == "ServiceUnavailable"
    assert custom.get_namespaced_custom_object(G, V, NS, "rollouts", "checkout")
    kube_sim.set_unreachable(True)
    with pytest.raises(urllib3.exceptions.HTTPError):
        custom.get_namespaced_custom_object(G, V, NS, "rollouts", "checkout", _request_timeout=2)
    kube_sim.set_unreachable(False)
    assert custom.get_namespaced_custom_object(G, V, NS, "rollouts", "checkout")


def test_hold_answers_applies_the_patch_and_holds_only_the_answer(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout())
    rv = kube_sim.resource_version
    kube_sim.hold_answers(1, method="PATCH", path_contains="/checkout/status")
    answers: list[Any] = []
    patching = threading.Thread(
        target=lambda: answers.append(
            custom.patch_namespaced_custom_object_status(
                G, V, NS, "rollouts", "checkout", {"status": {"abort": True}}
            )
        )
    )
    patching.start()
    try:
        eventually_sync(lambda: kube_sim.held_answers == 1, what="the PATCH's answer held")
        # Applied while the answer waits: the object and its watch history have it.
        obj = kube_sim.get("rollouts", NS, "checkout")
        assert obj is not None and obj["status"]["abort"] is True
        assert int(kube_sim.resource_version) > int(rv)
        # Other requests are answered meanwhile (a GET, and a second PATCH: the rule was n=1).
        assert custom.get_namespaced_custom_object(G, V, NS, "rollouts", "checkout")
        custom.patch_namespaced_custom_object_status(
            G, V, NS, "rollouts", "checkout", {"status": {"phase": "Degraded"}}
        )
        assert answers == []
    finally:
        kube_sim.release_answers()
        patching.join(timeout=10)
    assert answers and answers[0]["status"]["abort"] is True
    assert kube_sim.held_answers == 0 and kube_sim.lost_answers == 0
    held = kube_sim.requests_matching("PATCH", "/checkout/status")[0]
    assert held.status == 200 and held.body == {"status": {"abort": True}}


def test_a_held_answer_whose_caller_left_is_lost_and_the_change_stays(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout())
    kube_sim.hold_answers(1, method="PATCH", path_contains="/status")
    # The caller gives up after 1 s and closes its connection (as a killed process does).
    with pytest.raises(urllib3.exceptions.HTTPError):
        custom.patch_namespaced_custom_object_status(
            G, V, NS, "rollouts", "checkout", {"status": {"abort": True}}, _request_timeout=1
        )
    eventually_sync(lambda: kube_sim.lost_answers == 1, what="the answer counted lost")
    assert kube_sim.held_answers == 0
    obj = kube_sim.get("rollouts", NS, "checkout")
    assert obj is not None and obj["status"]["abort"] is True  # committed all the same
    kube_sim.release_answers()
    # The rule was used up: the next PATCH is answered at once.
    custom.patch_namespaced_custom_object_status(
        G, V, NS, "rollouts", "checkout", {"status": {"abort": False}}
    )
    assert len(kube_sim.requests_matching("PATCH", "/status")) == 2
