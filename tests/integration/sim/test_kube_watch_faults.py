"""The Kubernetes sim's watch faults and its log, over real HTTP, against what the real API
server does.

A watch whose resourceVersion the server no longer holds is answered ``200`` with one
``ERROR`` event carrying a ``Status`` of code 410, reason ``Expired``, message ``too old
resource version: <asked> (<oldest held>)``, and the stream ends (the watch cache answers so
rather than with an HTTP 410, kubernetes/kubernetes#25151; a client must list again). A
watch from ``""`` or ``"0"`` is never expired: it starts with the objects as they are.

Aspects under test:

* ``expire_next_watches(n)``: the next ``n`` watches that resume from a resourceVersion get
  exactly that answer on the wire; a watch from scratch is not expired and uses none up; once
  used up, the same resourceVersion is served again; the real client, which retries a 410
  once, raises ``ApiException(410)`` when the retry is expired too;
* ``drop_watches_every(s, expire_every=k)``: a client that resumes from its last
  resourceVersion is cut again and again, and every k-th cut its reconnect is answered
  410; ``None`` stops it (the thread is gone, the next watch stays open while events flow);
  ``watches_dropped`` / ``watches_expired`` count what the client met;
* ``changes``: every write with its resourceVersion, type and time, by type / namespace /
  name, still whole after ``compact()``; a write that changes nothing is not in it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client import ApiException

from bot.sim.kube import KubeSim
from tests.helpers import eventually_sync

G, V, NS = "argoproj.io", "v1alpha1", "payments"


def _rollout(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
        },
    }


@pytest.fixture
def custom(kubeconfig: Path) -> Iterator[kubernetes.client.CustomObjectsApi]:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    client = kubernetes.client.ApiClient(configuration)
    yield kubernetes.client.CustomObjectsApi(client)
    client.close()


def _url(sim: KubeSim) -> str:
    return f"{sim.url}/apis/{G}/{V}/namespaces/{NS}/rollouts"


def _auth(sim: KubeSim) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.token}"}


def _watch_lines(sim: KubeSim, **params: str) -> list[dict[str, Any]]:
    r = httpx.get(_url(sim), params={"watch": "true", **params}, headers=_auth(sim), timeout=10)
    assert r.status_code == 200
    return [json.loads(line) for line in r.text.splitlines()]


def test_expire_next_watches_answers_410_expired_on_a_200_stream(
    custom: kubernetes.client.CustomObjectsApi, kube_sim: KubeSim
) -> None:
    kube_sim.create(_rollout("a"))
    rv = kube_sim.resource_version
    kube_sim.expire_next_watches(1)
    # from scratch: the objects as they are, no expiry used up (the server ends it after 1 s)
    fresh = _watch_lines(kube_sim, resourceVersion="0", timeoutSeconds="1")
    assert [e["type"] for e in fresh] == ["ADDED"]
    assert kube_sim.watches_expired == 0
    # resuming: one ERROR event with the Status the real server sends, then the end
    assert _watch_lines(kube_sim, resourceVersion=rv) == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {rv} ({int(rv) + 1})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    assert kube_sim.watches_expired == 1
    # used up: the same resourceVersion is served again
    assert _watch_lines(kube_sim, resourceVersion=rv, timeoutSeconds="1") == []
    # the real client retries a 410 once; expired twice, it raises
    kube_sim.expire_next_watches(2)
    with pytest.raises(ApiException) as err:
        list(
            kubernetes.watch.Watch().stream(
                custom.list_namespaced_custom_object, G, V, NS, "rollouts", resource_version=rv
            )
        )
    assert err.value.status == 410
    assert "Expired" in err.value.reason
    assert kube_sim.watches_expired == 3


class ResumingClient:
    """A client that watches from its last resourceVersion, reconnects when cut and lists
    again after a 410, as an informer does; `met` is what it met, in order."""

    def __init__(self, sim: KubeSim) -> None:
        self.sim = sim
        self.met: list[str] = []
        self.steps: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _list(self) -> str:
        r = httpx.get(_url(self.sim), headers=_auth(self.sim), timeout=10)
        self.met.append("list")
        return str(r.json()["metadata"]["resourceVersion"])

    def _run(self) -> None:
        rv = self._list()
        while not self.stop.is_set():
            params = {"watch": "true", "resourceVersion": rv}
            try:
                with httpx.stream(
                    "GET", _url(self.sim), params=params, headers=_auth(self.sim), timeout=10
                ) as r:
                    self.met.append("watch")
                    for line in r.iter_lines():
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            self.met.append(f"{obj['code']} {obj['reason']}")
                            rv = self._list()
                            break
                        rv = obj["metadata"]["resourceVersion"]
                        self.steps.append(obj["status"]["currentStepIndex"])
            except httpx.HTTPError:
                self.met.append("cut")


def test_drop_watches_every_cuts_again_and_again_and_expires_every_kth_round(
    kube_sim: KubeSim,
) -> None:
    kube_sim.create(_rollout("a"))
    client = ResumingClient(kube_sim)
    client.thread.start()
    eventually_sync(lambda: kube_sim.open_watches() == 1, what="the watch")

    kube_sim.drop_watches_every(0.05, expire_every=2)
    eventually_sync(lambda: client.met.count("410 Expired") >= 2, what="two 410 rounds")
    kube_sim.drop_watches_every(None)
    assert not [t for t in threading.enumerate() if t.name == "kube-sim-dropper"]

    # Stopped: the next watch stays open while events flow through it.
    eventually_sync(lambda: kube_sim.open_watches() == 1, what="the last reconnect")
    cuts = client.met.count("cut")
    for step in (1, 2, 3):
        kube_sim.update_status("rollouts", NS, "a", {"currentStepIndex": step})
        eventually_sync(lambda s=step: client.steps[-1:] == [s], what=f"step {step}")
    assert client.met.count("cut") == cuts
    met = list(client.met)
    # every other cut was followed by a 410 on the reconnect, and the client listed again
    for i, what in enumerate(met):
        if what == "410 Expired":
            assert met[i - 2 : i] == ["cut", "watch"] and met[i + 1] == "list", met
    assert cuts >= 4 and kube_sim.watches_dropped == cuts
    assert met.count("410 Expired") == cuts // 2
    assert kube_sim.watches_expired == met.count("410 Expired")

    client.stop.set()
    kube_sim.drop_watches()
    client.thread.join(5)
    assert not client.thread.is_alive()


def test_changes_logs_every_write_and_survives_compaction(kube_sim: KubeSim) -> None:
    kube_sim.create(_rollout("a"))
    kube_sim.create(_rollout("b"))
    kube_sim.update_status("rollouts", NS, "a", {"currentStepIndex": 1})
    kube_sim.update_status("rollouts", NS, "a", {"currentStepIndex": 1})  # no change: no write
    kube_sim.patch("rollouts", NS, "a", {"spec": {"paused": True}})
    kube_sim.delete("rollouts", NS, "b")
    kube_sim.compact()

    log = kube_sim.changes("rollouts")
    assert [(e.type, e.obj["metadata"]["name"]) for e in log] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ]
    assert [e.rv for e in log] == [int(e.obj["metadata"]["resourceVersion"]) for e in log]
    assert [e.rv for e in log] == sorted({e.rv for e in log})
    assert [e.at for e in log] == sorted(e.at for e in log)
    a = kube_sim.changes("rollouts", NS, "a")
    assert [e.obj.get("status", {}).get("currentStepIndex") for e in a] == [None, 1, 1]
    assert a[-1].obj["spec"]["paused"] is True
    assert kube_sim.changes("Rollout", "elsewhere") == []
    a[0].obj["metadata"]["name"] = "changed"  # copies: the log is not touched
    assert kube_sim.changes("rollouts", NS, "a")[0].obj["metadata"]["name"] == "a"
