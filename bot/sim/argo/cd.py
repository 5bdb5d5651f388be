"""An Argo CD application controller simulation: Applications in a :class:`KubeSim`, synced
from real bare Git repositories (:class:`bot.sim.git.BareRepo`) to the Rollouts they hold.

One pass (``step``), per Application (``argoproj.io/v1alpha1``, ``applications``), follows
what the real controller's refresh and sync do (``controller/appcontroller.go``,
``controller/state.go``, ``controller/sync.go``, the gitops-engine's sync context):

* **refresh**: ``spec.source.targetRevision`` (a branch, ``HEAD``, a tag or a sha) of the
  repository ``spec.source.repoURL`` names (matched through ``repos``) is resolved to a
  commit; the manifests under ``spec.source.path`` at that commit are rendered
  (``bot.sim.argo.render``: a kustomization with ``resources:`` and ``images:``, or plain
  files); each Rollout in them is compared with the live one in
  ``spec.destination.namespace``. ``status.sync`` is ``Synced`` or ``OutOfSync`` with
  ``revision`` the commit compared to: as in Argo CD, that is the target's head as soon as
  the refresh has seen it, synced or not, so "synced to X" is ``status == Synced`` and
  ``revision == X`` together. A source that cannot be rendered is ``Unknown`` with a
  ``ComparisonError`` condition. ``status.health`` is the worst of the Rollouts' health as
  Argo CD's Rollout health check computes it (``bot.sim.argo.health``), ``Missing`` for one
  not in the cluster.
* **sync** (an ``operation`` on the Application: what ``argocd app sync`` writes, see
  ``sync``; or made by the controller when ``spec.syncPolicy.automated`` is set, once per new
  revision, as the real auto-sync skips a revision it already tried): ``operationState``
  Running, then each Rollout's ``spec.template`` from Git is written to the live Rollout
  through the API server's normal update (created when missing), with the pod-template
  annotation ``rollbot.io/git-sha`` set to the synced commit, as Argo CD's build
  environment (``ARGOCD_APP_REVISION``) renders it for CI's annotation. The Argo Rollouts
  controller sim then sees a new pod template, hence a new revision. The operation ends
  ``Succeeded`` ("successfully synced (all tasks run)") with a ``status.history`` entry,
  ``Failed`` when the API server refused an object ("one or more objects failed to apply,
  reason: …"), or ``Error`` when the manifests could not be rendered
  ("ComparisonError: …").

It is driven by ``step()`` (the tests call it, with the Argo Rollouts controller sim's
``reconcile()``) or by ``run_in_thread(interval=…)``, which calls it every ``interval``
seconds: the repository poll (Argo CD's ``timeout.reconciliation``, 3 minutes by default).

Simplified: one source per Application (no ``sources``, no Helm, no hydrator), only the
Rollouts of the manifests are applied and compared (their ``spec.template``; other kinds
and other fields are left alone), no pruning, no hooks or waves, no projects or sync
windows, no self-heal of a Rollout changed by hand (it shows as OutOfSync).
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.sim.argo.health import rollout_health, worst
from bot.sim.argo.loop import PassLoop
from bot.sim.argo.render import ManifestError, Rendered, render
from bot.sim.git import BareRepo
from bot.sim.kube import ApiError, KubeSim, default_crd_dir, load_crd_schemas, prune

__all__ = ["GIT_SHA_ANNOTATION", "ArgoCDSim", "application"]

log = logging.getLogger(__name__)

GIT_SHA_ANNOTATION = "rollbot.io/git-sha"
IN_CLUSTER = "https://kubernetes.default.svc"
SUCCEEDED = "successfully synced (all tasks run)"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_ROLLOUT_API = re.compile(r"^argoproj\.io/")


def application(
    name: str,
    *,
    repo_url: str,
    path: str,
    dest_namespace: str,
    namespace: str = "argocd",
    target_revision: str = "HEAD",
    project: str = "default",
    auto: bool = False,
) -> dict[str, Any]:
    """An Application manifest as `argocd app create` writes it (`auto`: with
    `spec.syncPolicy.automated`, `argocd app create --sync-policy automated`)."""
    spec: dict[str, Any] = {
        "project": project,
        "source": {"repoURL": repo_url, "path": path, "targetRevision": target_revision},
        "destination": {"server": IN_CLUSTER, "namespace": dest_namespace},
    }
    if auto:
        spec["syncPolicy"] = {"automated": {}}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _comparison_error(detail: str) -> str:
    """A manifest generation failure worded as the repo server's answer reaches the
    controller."""
    return (
        "Failed to load target state: failed to generate manifest for source 1 of 1: "
        f"rpc error: code = Unknown desc = {detail}"
    )


def _automated(spec: Mapping[str, Any]) -> bool:
    automated = (spec.get("syncPolicy") or {}).get("automated")
    return automated is not None and automated.get("enabled", True) is not False


def _rollouts(rendered: Rendered) -> list[dict[str, Any]]:
    return [
        o
        for o in rendered.objects
        if o.get("kind") == "Rollout" and _ROLLOUT_API.match(str(o.get("apiVersion", "")))
    ]


class ArgoCDSim:
    """Argo CD's application controller over `sim`, reading the repositories in `repos`
    (repoURL → BareRepo). One `step()` refreshes every Application and runs the sync
    operations due; `sync()` is `argocd app sync`."""

    def __init__(
        self,
        sim: KubeSim,
        repos: Mapping[str, BareRepo],
        *,
        clock: Callable[[], float] = time.time,
        sha_annotation: str = GIT_SHA_ANNOTATION,
    ) -> None:
        self.sim = sim
        self.repos = repos
        self.clock = clock
        self.sha_annotation = sha_annotation
        self._renders: dict[tuple[str, str, str], Rendered | ManifestError] = {}
        schemas = load_crd_schemas(str(default_crd_dir().resolve()))
        self._rollout_schema = schemas["Rollout"].raw if "Rollout" in schemas else None
        self._lock = threading.RLock()
        self._loop = PassLoop(self.step, "argo-cd-sim")

    # ---------------------------------------------------------------- public

    def step(self) -> None:
        """One pass over every Application: refresh, then the sync operation due, if any."""
        with self._lock:
            for app in self.sim.list("applications"):
                meta = app["metadata"]
                try:
                    self._reconcile(meta["namespace"], meta["name"])
                except ApiError as exc:  # a concurrent write: the next pass picks it up
                    log.debug("argo cd pass on %s failed: %s", meta["name"], exc.message)

    def sync(
        self,
        namespace: str,
        name: str,
        *,
        revision: str | None = None,
        username: str = "admin",
    ) -> dict[str, Any]:
        """`argocd app sync NAME [--revision REV]`: the API server writes the operation on
        the Application (409 when one is already running), the controller runs it; the
        Application afterwards."""
        with self._lock:
            app = self.sim.get("applications", namespace, name)
            if app is None:
                raise KeyError(f"application {namespace}/{name} not found")
            if app.get("operation") is not None:
                raise ApiError(409, "another operation is already in progress", reason="Conflict")
            source = app["spec"].get("source") or {}
            operation = {
                "sync": {
                    "revision": revision or source.get("targetRevision") or "HEAD",
                    "syncStrategy": {"hook": {}},
                },
                "initiatedBy": {"username": username},
                "retry": {},
            }
            self.sim.patch("applications", namespace, name, {"operation": operation})
            self._reconcile(namespace, name)
            got = self.sim.get("applications", namespace, name)
            assert got is not None
            return got

    def run_in_thread(self, *, interval: float = 1.0) -> None:
        """Call `step()` every `interval` seconds (the repository poll) until `stop()`."""
        self._loop.start(interval)

    def stop(self) -> None:
        self._loop.stop()

    # ---------------------------------------------------------------- time

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # ---------------------------------------------------------------- the source

    def _resolve(self, source: Mapping[str, Any], revision: str) -> tuple[BareRepo, str]:
        """The repository of `source` and the commit `revision` names in it."""
        url = str(source.get("repoURL") or "")
        repo = self.repos.get(url)
        if repo is None:
            raise ManifestError(f"repository not found: {url}")
        sha = repo.head(revision)
        if sha is None and revision.upper() == "HEAD":
            sha = repo.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
            sha = sha.strip() or None
        if sha is None:
            out = repo.run(
                "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", check=False
            ).strip()
            sha = out if _SHA.match(out) else None
        if sha is None:
            raise ManifestError(f"Unable to resolve '{revision}' to a commit SHA")
        return repo, sha

    def _render(self, repo: BareRepo, url: str, sha: str, path: str) -> Rendered:
        """The source rendered at `sha`, once per commit (a commit never changes)."""
        key = (url, sha, path)
        if key not in self._renders:
            try:
                self._renders[key] = render(repo, sha, path)
            except ManifestError as exc:
                self._renders[key] = exc
        got = self._renders[key]
        if isinstance(got, ManifestError):
            raise got
        return got

    def _desired(
        self, app: Mapping[str, Any], revision: str
    ) -> tuple[str, list[dict[str, Any]], str]:
        """(commit, the Rollouts as they should be live, source type) at `revision`; their
        templates carry the commit annotation and are pruned as the API server would store
        them. ManifestError when the source cannot be read."""
        spec = app["spec"]
        source = spec.get("source") or {}
        repo, sha = self._resolve(source, revision)
        rendered = self._render(repo, str(source["repoURL"]), sha, str(source.get("path") or ""))
        dest = (spec.get("destination") or {}).get("namespace") or app["metadata"]["namespace"]
        out = []
        for obj in _rollouts(rendered):
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {}).setdefault("namespace", dest)
            template = obj.setdefault("spec", {}).setdefault("template", {})
            template.setdefault("metadata", {}).setdefault("annotations", {})
            template["metadata"]["annotations"][self.sha_annotation] = sha
            if self._rollout_schema is not None:
                prune(obj, self._rollout_schema, root=True)
            out.append(obj)
        return sha, out, rendered.source_type

    # ---------------------------------------------------------------- one Application

    def _reconcile(self, namespace: str, name: str) -> None:
        app = self.sim.get("applications", namespace, name)
        if app is None:
            return
        operation = app.get("operation")
        if operation is None and _automated(app["spec"]):
            operation = self._auto_operation(app)
        if operation is not None:
            self._run_sync(app, operation)
            app = self.sim.get("applications", namespace, name)
            if app is None:
                return
        self._refresh(app)

    def _auto_operation(self, app: dict[str, Any]) -> dict[str, Any] | None:
        """The operation automated sync starts now, None when it skips: the app is not
        OutOfSync, or its last sync already went to the target's commit (failed or not)."""
        status = self._compare(app)
        if status["sync"]["status"] != "OutOfSync":
            return None
        sha = status["sync"]["revision"]
        last = ((app.get("status") or {}).get("operationState") or {}).get("syncResult") or {}
        if last.get("revision") == sha:
            return None
        return {
            "sync": {"revision": sha, "syncStrategy": {"hook": {}}},
            "initiatedBy": {"automated": True},
            "retry": {"limit": 5},
        }

    def _write(self, app: dict[str, Any], status: dict[str, Any], *, clear_op: bool) -> None:
        new = copy.deepcopy(app)
        new["status"] = status
        if clear_op:
            new.pop("operation", None)
        self.sim.replace(new)

    def _run_sync(self, app: dict[str, Any], operation: dict[str, Any]) -> None:
        spec = app["spec"]
        source = spec.get("source") or {}
        started = self._now()
        state: dict[str, Any] = {"operation": operation, "phase": "Running", "startedAt": started}
        status = copy.deepcopy(app.get("status") or {})
        status["operationState"] = state
        self._write(app, status, clear_op=True)
        revision = str((operation.get("sync") or {}).get("revision") or "HEAD")
        results: list[dict[str, Any]] = []
        try:
            revision = self._resolve(source, revision)[1]
            sha, desired, _ = self._desired(app, revision)
        except ManifestError as exc:
            state.update(phase="Error", message=f"ComparisonError: {_comparison_error(str(exc))}")
            state["syncResult"] = {"revision": revision, "source": source}
        else:
            failed = []
            for obj in desired:
                result = self._apply(obj)
                results.append(result)
                if result["status"] != "Synced":
                    failed.append(result["message"])
            state["syncResult"] = {"revision": sha, "source": source, "resources": results}
            if failed:
                state.update(
                    phase="Failed",
                    message=f"one or more objects failed to apply, reason: {','.join(failed)}",
                )
            else:
                state.update(phase="Succeeded", message=SUCCEEDED)
                history = list(status.get("history") or [])
                history.append(
                    {
                        "id": max((h.get("id", 0) for h in history), default=-1) + 1,
                        "revision": sha,
                        "deployStartedAt": started,
                        "deployedAt": self._now(),
                        "source": source,
                        "initiatedBy": operation.get("initiatedBy") or {},
                    }
                )
                limit = int(spec.get("revisionHistoryLimit", 10) or 10)
                status["history"] = history[-limit:]
        state["finishedAt"] = self._now()
        meta = app["metadata"]
        current = self.sim.get("applications", meta["namespace"], meta["name"])
        if current is not None:
            self._write(current, status, clear_op=False)

    def _apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Write one Rollout's template from Git to the cluster; its sync result."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        result: dict[str, Any] = {
            "group": "argoproj.io",
            "version": str(obj.get("apiVersion", "argoproj.io/v1alpha1")).split("/")[-1],
            "kind": "Rollout",
            "namespace": ns,
            "name": name,
            "syncPhase": "Sync",
            "hookPhase": "Running",
        }
        try:
            for _ in range(5):
                live = self.sim.get("rollouts", ns, name)
                try:
                    if live is None:
                        new = copy.deepcopy(obj)
                        new.pop("status", None)
                        self.sim.create(new, keep_status=False)
                        verb = "created"
                    elif live["spec"].get("template") == obj["spec"]["template"]:
                        verb = "unchanged"
                    else:
                        live["spec"]["template"] = copy.deepcopy(obj["spec"]["template"])
                        self.sim.replace(live)  # with its resourceVersion: 409 if it moved
                        verb = "configured"
                    break
                except ApiError as exc:
                    if exc.code != 409:
                        raise
            else:
                raise ApiError(
                    409, f'Operation cannot be fulfilled on rollouts.argoproj.io "{name}"'
                )
        except ApiError as exc:
            result.update(status="SyncFailed", message=exc.message)
            return result
        result.update(status="Synced", message=f"rollout.argoproj.io/{name} {verb}")
        return result

    # ---------------------------------------------------------------- refresh

    def _compare(self, app: dict[str, Any]) -> dict[str, Any]:
        """The status a refresh computes now, from the target's head and the cluster
        (operationState and history kept)."""
        spec = app["spec"]
        source = spec.get("source") or {}
        status = copy.deepcopy(app.get("status") or {})
        target = str(source.get("targetRevision") or "HEAD")
        compared = {"source": source, "destination": spec.get("destination") or {}}
        conditions = [
            c for c in status.get("conditions") or [] if c.get("type") != "ComparisonError"
        ]
        try:
            sha, desired, source_type = self._desired(app, target)
        except ManifestError as exc:
            message = _comparison_error(str(exc))
            old = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "ComparisonError"),
                None,
            )
            at = old["lastTransitionTime"] if old and old.get("message") == message else None
            conditions.append(
                {
                    "type": "ComparisonError",
                    "message": message,
                    "lastTransitionTime": at or self._now(),
                }
            )
            status["conditions"] = conditions
            status["sync"] = {"status": "Unknown", "comparedTo": compared}
            keys = [(r["namespace"], r["name"]) for r in status.get("resources") or []]
            codes = [self._health(ns, name)[0] for ns, name in keys]
            self._set_health(status, worst(codes) if keys else "Unknown")
            return status
        resources, images = [], []
        for obj in desired:
            ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
            live = self.sim.get("rollouts", ns, name)
            in_sync = live is not None and live["spec"].get("template") == obj["spec"]["template"]
            health, message = self._health(ns, name, live)
            entry: dict[str, Any] = {
                "group": "argoproj.io",
                "version": "v1alpha1",
                "kind": "Rollout",
                "namespace": ns,
                "name": name,
                "status": "Synced" if in_sync else "OutOfSync",
                "health": {"status": health, **({"message": message} if message else {})},
            }
            resources.append(entry)
            pod = (obj["spec"]["template"].get("spec")) or {}
            images += [c["image"] for c in pod.get("containers") or [] if c.get("image")]
        if conditions:
            status["conditions"] = conditions
        else:
            status.pop("conditions", None)
        out_of_sync = any(r["status"] == "OutOfSync" for r in resources)
        status["sync"] = {
            "status": "OutOfSync" if out_of_sync else "Synced",
            "revision": sha,
            "comparedTo": compared,
        }
        status["resources"] = resources
        status["summary"] = {"images": sorted(set(images))} if images else {}
        status["sourceType"] = source_type
        self._set_health(status, worst(r["health"]["status"] for r in resources))
        return status

    def _health(
        self, namespace: str, name: str, live: dict[str, Any] | None = None
    ) -> tuple[str, str]:
        live = live if live is not None else self.sim.get("rollouts", namespace, name)
        if live is None:
            return "Missing", ""
        return rollout_health(live)

    def _set_health(self, status: dict[str, Any], code: str) -> None:
        old = status.get("health") or {}
        if old.get("status") != code or not old.get("lastTransitionTime"):
            status["health"] = {"status": code, "lastTransitionTime": self._now()}

    def _refresh(self, app: dict[str, Any]) -> None:
        """Write what the refresh found, when anything but the time changed."""
        status = self._compare(app)
        status.pop("reconciledAt", None)
        old = copy.deepcopy(app.get("status") or {})
        old.pop("reconciledAt", None)
        if status == old:
            return
        status["reconciledAt"] = self._now()
        self._write(app, status, clear_op=False)
