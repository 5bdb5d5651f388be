"""Argo Rollouts through the official `kubernetes` client: the only module that imports it.

Implements `bot.core.ports.Rollouts`:

    get_state(ns, name)    GET the Rollout, its stable ReplicaSet from the watch's cache (else
                           listed, best-effort), parse
    get_object(ns, name)   GET the Rollout as a plain dict
    apply(action, ns, name)  plan() the plugin's patches (from the watch's cache when it holds
                           the Rollout, else a GET) and send them, status subresource first
                           and the main resource on 404, as `kubectl argo rollouts` does
    watch(namespaces, on_event)  keep an informer (bot.adapters.kube_informer) of Rollouts,
                           AnalysisRuns and Argo's ReplicaSets until cancelled
    cached_state(ns, name) the Rollout as the informer holds it, with no request (a live
                           get_state until the informer has listed, or for a Rollout it lacks)

and `bot.core.gitops.Applications` (Tier 3's verification):

    get_application(ns, name)  GET the Argo CD Application, its sync, health and operation

Blocking SDK calls run through `asyncio.to_thread`, in `_request`, where each is timed
(`bot.adapters.calls`: latency and errors in /metrics). The informer's lists and watches go
out on the event loop through httpx, with the kubeconfig's server, TLS settings and token
(read again for each request, so a rotating token is followed): no thread per watch, and
three long-lived watches for the whole cluster where RBAC allows it.

Errors are translated into `bot.core.errors`:

    404 on the Rollout           TargetNotFound("Rollout", namespace, name)
    404 on the Application       PermanentError("no Argo CD Application …"), saying whether the
                                 cluster serves the kind at all
    401 / 403                    Forbidden("Kubernetes API", <Status message>)
    429 / 5xx / connection / timeout   Unreachable("Kubernetes API", detail)
    other 4xx                    InvalidRequest(<Status message>)

Content type: the generated `CustomObjectsApi.patch_namespaced_custom_object[_status]`
(kubernetes 31-35) sends `application/merge-patch+json`, the only type it declares, and rejects
a `_content_type` keyword (it is not in its `all_params`). Every patch `plan()` makes is a merge
patch (the plugin uses `types.MergePatchType`); the integration tests pin the header on the
wire so a client upgrade that changes it fails loudly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from bot.adapters._http import header, parse_retry_after
from bot.adapters.calls import CallObserver, timed
from bot.adapters.kube_informer import CursorStore, Informer, Kind
from bot.core import rollouts as core
from bot.core.errors import (
    Forbidden,
    InvalidRequest,
    PermanentError,
    RollbotError,
    TargetNotFound,
    Unreachable,
)
from bot.core.gitops import AppSync
from bot.core.model import Patch, RolloutAction, RolloutState
from bot.core.ports import WatchEvent

log = logging.getLogger(__name__)

GROUP = "argoproj.io"
VERSION = "v1alpha1"
SERVICE = "Kubernetes API"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


def _slim_metadata(
    meta: Any, *, labels: Sequence[str] = (), annotations: Sequence[str] = ()
) -> dict[str, Any]:
    """The metadata rollbot reads of a watched object: identity, version, owners, and the
    labels and annotations named (all of them when neither is named)."""
    meta = meta if isinstance(meta, dict) else {}
    kept = {
        k: meta[k]
        for k in (
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "ownerReferences",
        )
        if k in meta
    }
    for key, wanted in (("labels", labels), ("annotations", annotations)):
        values = meta.get(key)
        if isinstance(values, dict):
            kept[key] = {k: v for k, v in values.items() if k in wanted}
    return kept


def slim_rollout(obj: dict[str, Any]) -> dict[str, Any]:
    """A Rollout without what only its writers read (managedFields, kubectl's
    last-applied copy of the whole spec), as client-go informers are commonly trimmed."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    obj.setdefault("apiVersion", f"{GROUP}/{VERSION}")
    return {**obj, "metadata": meta}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def slim_analysis_run(obj: dict[str, Any]) -> dict[str, Any]:
    """An AnalysisRun as the watch uses it: whose it is, and its phase (its measurements
    move many times a minute and are read from the Rollout's status, not from here)."""
    status = _mapping(obj.get("status"))
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisRun",
        "metadata": _slim_metadata(obj.get("metadata")),
        "status": {k: status[k] for k in ("phase", "message") if k in status},
    }


def slim_replicaset(obj: dict[str, Any]) -> dict[str, Any]:
    """One of Argo's ReplicaSets as `parse_rollout` reads a stable one: its pod template
    hash, revision and images (its replica counts churn and are not kept)."""
    pod = _mapping(_mapping(_mapping(obj.get("spec")).get("template")).get("spec"))
    containers = [
        {"name": c.get("name"), "image": c.get("image")}
        for c in pod.get("containers") or []
        if isinstance(c, dict)
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": _slim_metadata(
            obj.get("metadata"),
            labels=(core.POD_TEMPLATE_HASH_LABEL,),
            annotations=(core.REVISION_ANNOTATION,),
        ),
        "spec": {"template": {"spec": {"containers": containers}}},
    }


def _pod_template_hash(obj: Mapping[str, Any]) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(core.POD_TEMPLATE_HASH_LABEL)
    return str(value) if value else None


# What the watch keeps: the Rollouts, their AnalysisRuns, and the ReplicaSets Argo made
# (labelled with their pod template hash), so a stable ReplicaSet is read from the cache.
KINDS: tuple[Kind, ...] = (
    Kind("Rollout", f"/apis/{GROUP}/{VERSION}", "rollouts", slim=slim_rollout),
    Kind(
        "AnalysisRun",
        f"/apis/{GROUP}/{VERSION}",
        "analysisruns",
        slim=slim_analysis_run,
        quiet=True,
    ),
    Kind(
        "ReplicaSet",
        "/apis/apps/v1",
        "replicasets",
        label_selector=core.POD_TEMPLATE_HASH_LABEL,
        slim=slim_replicaset,
        index=_pod_template_hash,
        quiet=True,
    ),
)
WATCHED_KINDS: dict[str, str] = {k.kind: k.plural for k in KINDS}


def _status_message(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return body.strip()[:300]
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    return str(exc.reason or f"HTTP {exc.status}")


def _describe_transport(exc: BaseException) -> str:
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return f"timed out ({exc})"
    return f"{type(exc).__name__}: {exc}"


def translate(
    exc: BaseException, *, kind: str = "Rollout", namespace: str = "", name: str = ""
) -> RollbotError:
    """An SDK/transport exception as the typed error a person can act on."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = _status_message(exc)
        if status == 404 and name:
            return TargetNotFound(kind, namespace, name)
        if status in (401, 403):
            return Forbidden(SERVICE, message)
        if status == 0 or status == 429 or status >= 500:
            return Unreachable(
                SERVICE,
                f"HTTP {status}: {message}",
                delay=parse_retry_after(header(exc.headers, "Retry-After")),
            )
        return InvalidRequest(f"The Kubernetes API rejected the request (HTTP {status}): {message}")
    return Unreachable(SERVICE, _describe_transport(exc))


def _no_application(exc: ApiException, namespace: str, name: str) -> PermanentError:
    """A 404 on an Application: none of that name, or no such kind in the cluster (the
    API server's Status then names no object)."""
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    try:
        parsed = json.loads(body) if isinstance(body, str) and body else None
    except ValueError:
        parsed = None
    details = _mapping(_mapping(parsed).get("details"))
    if details.get("kind") == "applications":
        return PermanentError(f"no Argo CD Application `{name}` in namespace `{namespace}`")
    return PermanentError(
        f"no Argo CD Application `{name}` in namespace `{namespace}`: the cluster serves no "
        f"Application kind ({_status_message(exc)}); is Argo CD installed?"
    )


def parse_application(obj: Mapping[str, Any], *, namespace: str, name: str) -> AppSync:
    """An Application object as `AppSync`; a status not written yet reads Unknown."""
    status = _mapping(obj.get("status"))
    sync = _mapping(status.get("sync"))
    health = _mapping(status.get("health"))
    operation = _mapping(status.get("operationState"))
    revision = sync.get("revision")
    phase = operation.get("phase")
    return AppSync(
        namespace=namespace,
        name=name,
        revision=str(revision) if revision else None,
        sync=str(sync.get("status") or "Unknown"),
        health=str(health.get("status") or "Unknown"),
        operation=str(phase) if phase else None,
    )


def _typed(exc: BaseException) -> BaseException:
    """`translate` for the SDK's and the transport's errors; anything else as it is."""
    return translate(exc) if isinstance(exc, (ApiException, *_TRANSPORT_ERRORS)) else exc


class KubeRollouts:
    """`Rollouts` over the Kubernetes API (CustomObjectsApi for Argo kinds, AppsV1Api for RS),
    and `Applications` (Argo CD's, through CustomObjectsApi too)."""

    def __init__(
        self,
        *,
        api_client: kubernetes.client.ApiClient,
        request_timeout: float = 10.0,
        watch_timeout_seconds: int = 300,
        watch_read_timeout: float = 90.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        cursor_store: CursorStore | None = None,
        cursor_interval: float = 1.0,
        on_watch_error: Callable[[str], Awaitable[None]] | None = None,
        on_synced: Callable[[float], None] | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        """
        `request_timeout` (s) bounds every non-watch request. A watch request asks the server to
        end it after between `watch_timeout_seconds` and twice that (jittered), and gives up
        on a silent socket after `watch_read_timeout` (s), which must stay above the API
        server's bookmark interval (about a minute) or quiet watches are reopened for
        nothing; either way it resumes from the last resourceVersion. Reconnects after
        failures back off exponentially from `backoff_initial` to `backoff_max` (s) with
        jitter. Cursors are persisted at most every `cursor_interval` (s) per kind and
        scope. Every request but the watch streams (each a connection held open for
        minutes) is timed for `observer` (`bot.adapters.calls`).
        """
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.watch_timeout_seconds = watch_timeout_seconds
        self.watch_read_timeout = watch_read_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.cursor_store = cursor_store
        self.cursor_interval = cursor_interval
        self.on_watch_error = on_watch_error
        self.on_synced = on_synced  # told the seconds the watch's first full list took
        self.observer = observer
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._apps = kubernetes.client.AppsV1Api(api_client)
        self.informer: Informer | None = None  # while watch() runs

    @classmethod
    def from_kubeconfig(
        cls, *, kubeconfig: str | None = None, context: str | None = None, **kw: Any
    ) -> KubeRollouts:
        """Like every Kubernetes tool: `kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`,
        else the in-cluster service account."""
        return cls(api_client=cls.load_client(kubeconfig=kubeconfig, context=context), **kw)

    @staticmethod
    def load_client(
        *, kubeconfig: str | None = None, context: str | None = None
    ) -> kubernetes.client.ApiClient:
        """The API client `from_kubeconfig` uses, alone: made before anything is opened, so
        that a process without a usable configuration stops having written nothing. A
        kubeconfig that does not exist is named (PermanentError)."""
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        default = os.path.expanduser("~/.kube/config")
        if path is not None and not any(
            os.path.isfile(os.path.expanduser(p)) for p in path.split(os.pathsep) if p
        ):
            source = "kubernetes.kubeconfig" if kubeconfig else "KUBECONFIG"
            raise PermanentError(f"kubeconfig file not found: {path} (from {source})")
        try:
            if path is None and not os.path.exists(default):
                configuration = kubernetes.client.Configuration()
                kubernetes.config.load_incluster_config(client_configuration=configuration)
                api_client = kubernetes.client.ApiClient(configuration)
            else:
                # Pass the path explicitly: the client reads $KUBECONFIG only at import time.
                api_client = kubernetes.config.new_client_from_config(
                    config_file=path or default, context=context, persist_config=False
                )
        except (ConfigException, OSError) as exc:
            raise PermanentError(
                f"No usable Kubernetes configuration ({exc}). Set KUBECONFIG or "
                "`kubernetes.kubeconfig`, or run in a cluster with a service account."
            ) from exc
        return api_client

    def close(self) -> None:
        self.api_client.close()

    async def _request(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API request (never a watch stream) in a worker thread, timed."""
        with timed(self.observer, classify=_typed):
            return await asyncio.to_thread(call, *args, **kwargs)

    # ── reads ────────────────────────────────────────────────────────────────

    async def get_object(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj = await self._request(
                self._custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "rollouts",
                name,
                _request_timeout=self.request_timeout,
            )
        except (ApiException, *_TRANSPORT_ERRORS) as exc:
            raise translate(exc, namespace=namespace, name=name) from exc
        return dict(obj)

    async def get_application(self, namespace: str, name: str) -> AppSync:
        """The Argo CD Application `namespace`/`name` as Tier 3's verification reads it:
        `status.sync` (status and the revision compared to), `status.health` and the last
        operation's phase."""
        try:
            obj = await self._request(
                self._custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "applications",
                name,
                _request_timeout=self.request_timeout,
            )
        except ApiException as exc:
            if exc.status == 404:
                raise _no_application(exc, namespace, name) from exc
            raise translate(exc, kind="Application", namespace=namespace, name=name) from exc
        except _TRANSPORT_ERRORS as exc:
            raise translate(exc, kind="Application", namespace=namespace, name=name) from exc
        return parse_application(dict(obj), namespace=namespace, name=name)

    async def analysis_templates(self, namespace: str, name: str) -> dict[str, bool]:
        """The AnalysisTemplates (and ClusterAnalysisTemplates) the Rollout refers to, in its
        steps and its background analysis, each with whether it exists in the cluster."""
        obj = await self.get_object(namespace, name)
        found: dict[str, bool] = {}
        for ref in core.analysis_template_refs(obj):
            cluster = ref.startswith("cluster/")
            plain = ref.removeprefix("cluster/")
            try:
                if cluster:
                    await self._request(
                        self._custom.get_cluster_custom_object,
                        GROUP,
                        VERSION,
                        "clusteranalysistemplates",
                        plain,
                        _request_timeout=self.request_timeout,
                    )
                else:
                    await self._request(
                        self._custom.get_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        namespace,
                        "analysistemplates",
                        plain,
                        _request_timeout=self.request_timeout,
                    )
            except ApiException as exc:
                if exc.status != 404:
                    raise translate(exc, namespace=namespace, name=plain) from exc
                found[ref] = False
            except _TRANSPORT_ERRORS as exc:
                raise translate(exc, namespace=namespace, name=plain) from exc
            else:
                found[ref] = True
        return found

    async def _stable_replicaset(self, namespace: str, stable_rs: str) -> dict[str, Any] | None:
        try:
            result = await self._request(
                self._apps.list_namespaced_replica_set,
                namespace,
                label_selector=f"{core.POD_TEMPLATE_HASH_LABEL}={stable_rs}",
                _request_timeout=self.request_timeout,
            )
        except (ApiException, *_TRANSPORT_ERRORS) as exc:
            log.info("stable ReplicaSet %s/%s not read: %s", namespace, stable_rs, exc)
            return None
        items = self.api_client.sanitize_for_serialization(result).get("items") or []
        return dict(items[0]) if items else None

    async def get_state(self, namespace: str, name: str) -> RolloutState:
        """The Rollout as the API server has it now (one GET: what an action decides on and
        verifies with), with its stable ReplicaSet from the watch's cache while the watch
        runs (a ReplicaSet's template never changes under its hash), else listed."""
        obj = await self.get_object(namespace, name)
        return core.parse_rollout(obj, stable_rs_obj=await self._stable_of(namespace, obj))

    async def _stable_of(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        status = obj.get("status") or {}
        stable = status.get("stableRS") or (status.get("canary") or {}).get("stableRS")
        if not stable:
            return None
        informer = self.informer
        if informer is not None and informer.has_synced("ReplicaSet"):
            return informer.by_index("ReplicaSet", namespace, str(stable))
        return await self._stable_replicaset(namespace, stable)

    # ── writes ───────────────────────────────────────────────────────────────

    async def apply(self, action: RolloutAction, namespace: str, name: str) -> list[Patch]:
        """Send the action's patches in order; return them as sent (fallbacks resolved).

        The plan is made from the watch's cache when it holds the Rollout, as a controller
        plans from its informer: as fresh as a GET made a moment before (the watch is
        milliseconds behind), and the patches are merge patches without a precondition
        either way; the caller's read-back verifies the effect. Else from a GET."""
        informer = self.informer
        cached = informer.get("Rollout", namespace, name) if informer is not None else None
        obj = cached if cached is not None else await self.get_object(namespace, name)
        sent: list[Patch] = []
        for patch in core.plan(action, obj):
            sent.append(await self._send(patch, namespace, name))
        return sent

    async def _send(self, patch: Patch, namespace: str, name: str) -> Patch:
        if patch.content_type != core.MERGE_PATCH:
            raise ValueError(f"unsupported patch content type {patch.content_type}")
        if patch.subresource == "status":
            try:
                await self._patch(True, patch.body, namespace, name)
                return patch
            except ApiException as exc:
                if exc.status != 404 or not patch.fallback_to_main:
                    raise translate(exc, namespace=namespace, name=name) from exc
                log.info(
                    "no status subresource on %s/%s: patching the main resource", namespace, name
                )
            except _TRANSPORT_ERRORS as exc:
                raise translate(exc, namespace=namespace, name=name) from exc
        elif patch.subresource is not None:
            raise ValueError(f"unsupported subresource {patch.subresource}")
        try:
            await self._patch(False, patch.body, namespace, name)
        except (ApiException, *_TRANSPORT_ERRORS) as exc:
            raise translate(exc, namespace=namespace, name=name) from exc
        return Patch(content_type=patch.content_type, body=patch.body)

    async def _patch(self, status: bool, body: Any, namespace: str, name: str) -> Any:
        method = (
            self._custom.patch_namespaced_custom_object_status
            if status
            else self._custom.patch_namespaced_custom_object
        )
        return await self._request(
            method,
            GROUP,
            VERSION,
            namespace,
            "rollouts",
            name,
            body,
            _request_timeout=self.request_timeout,
        )

    # ── watch ────────────────────────────────────────────────────────────────

    async def watch(
        self, namespaces: Sequence[str], on_event: Callable[[WatchEvent], Awaitable[None]]
    ) -> None:
        """Keep the informer of `KINDS` in `namespaces` until cancelled, handing every change
        to `on_event` (bot.adapters.kube_informer says what it promises). Failures are
        reported once per outage through `on_watch_error`; only cancellation ends it."""
        async with http_client(self.api_client.configuration) as client:
            informer = Informer(
                client=client,
                auth_headers=lambda: auth_headers(self.api_client.configuration),
                kinds=KINDS,
                namespaces=namespaces,
                on_event=on_event,
                on_error=self._report,
                on_synced=self.on_synced,
                cursor_store=self.cursor_store,
                cursor_interval=self.cursor_interval,
                request_timeout=self.request_timeout,
                watch_timeout_seconds=self.watch_timeout_seconds,
                watch_read_timeout=self.watch_read_timeout,
                backoff_initial=self.backoff_initial,
                backoff_max=self.backoff_max,
                observer=self.observer,
            )
            self.informer = informer
            try:
                await informer.run()
            finally:
                self.informer = None

    def cached_count(self, kind: str) -> int:
        """How many objects of `kind` the watch's cache holds now (0 when not watching)."""
        informer = self.informer
        return informer.count(kind) if informer is not None else 0

    async def _report(self, message: str) -> None:
        if self.on_watch_error is not None:
            await self.on_watch_error(message)

    async def cached_state(self, namespace: str, name: str) -> RolloutState:
        """The Rollout as the watch's cache holds it, with its stable ReplicaSet from the
        cache too: no request. Before the watch has listed, or for a Rollout it does not
        hold, a live `get_state`."""
        informer = self.informer
        obj = informer.get("Rollout", namespace, name) if informer is not None else None
        if informer is None or obj is None:
            return await self.get_state(namespace, name)
        return core.parse_rollout(obj, stable_rs_obj=await self._stable_of(namespace, obj))


def auth_headers(configuration: Any) -> dict[str, str]:
    """The Authorization header the SDK would send now (its refresh hook runs first, so an
    in-cluster token rotated on disk, or an exec plugin's expiring token, is current)."""
    bearer = configuration.auth_settings().get("BearerToken")
    return {"Authorization": bearer["value"]} if bearer and bearer.get("value") else {}


def http_client(configuration: Any) -> httpx.AsyncClient:
    """An httpx client to the API server the kubeconfig names, with its TLS settings (CA,
    client certificate, verification off only where the kubeconfig says so) and proxy. No
    connection limit: each watch holds one connection open for minutes."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return httpx.AsyncClient(
        base_url=configuration.host,
        verify=context,
        proxy=configuration.proxy or None,
        trust_env=False,
        headers={"Accept": "application/json", "User-Agent": "rollbot"},
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=10),
    )
