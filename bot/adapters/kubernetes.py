"""Argo Rollouts through the official `kubernetes` client: the only module that imports it.

Implements `bot.core.ports.Rollouts`:

    get_state(ns, name)    GET the Rollout, best-effort list its stable ReplicaSet, parse
    get_object(ns, name)   GET the Rollout as a plain dict
    apply(action, ns, name)  plan() the plugin's patches and send them, status subresource
                           first and the main resource on 404, as `kubectl argo rollouts` does
    watch(namespaces, on_event)  list + watch Rollouts and AnalysisRuns until cancelled

Blocking SDK calls run through `asyncio.to_thread`, in `_request`, where each is timed
(`bot.adapters.calls`: latency and errors in /metrics). Watch streams are long-lived, so each runs
in its own daemon thread (not the default executor, which they would exhaust) and hands lines
to the event loop through an `asyncio.Queue`; cancelling the watch shuts the socket down so the
thread ends at once (a short read timeout and a stop flag are the backstop).

Errors are translated into `bot.core.errors`:

    404 on the Rollout           TargetNotFound("Rollout", namespace, name)
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
import contextlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from bot.adapters._http import header, parse_retry_after
from bot.adapters.calls import CallObserver, timed
from bot.core import rollouts as core
from bot.core.errors import (
    Forbidden,
    InvalidRequest,
    PermanentError,
    RollbotError,
    TargetNotFound,
    Unreachable,
)
from bot.core.model import Patch, RolloutAction, RolloutState
from bot.core.ports import WatchEvent

log = logging.getLogger(__name__)

GROUP = "argoproj.io"
VERSION = "v1alpha1"
SERVICE = "Kubernetes API"
WATCHED_KINDS: dict[str, str] = {"Rollout": "rollouts", "AnalysisRun": "analysisruns"}

_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


class CursorStore(Protocol):
    """Where watch resourceVersions survive a restart (`bot.core.ports.Store` has these)."""

    async def get_cursor(self, kind: str, namespace: str) -> str | None: ...

    async def set_cursor(self, kind: str, namespace: str, resource_version: str) -> None: ...


class _Gone(Exception):
    """410: the resourceVersion is older than the server's history: list again."""


class _WatchFailed(Exception):
    """A watch ERROR event other than 410."""


@dataclass
class _Cursor:
    kind: str
    namespace: str
    rv: str | None = None
    persisted: str | None = None
    persisted_at: float = 0.0
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> last object


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


class _Stream:
    """One watch request read in a dedicated thread, its lines handed to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._resp: Any = None

    def _put(self, item: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def run(self, call: Callable[[], Any]) -> None:
        resp = None
        try:
            resp = call()
            with self._lock:
                self._resp = resp
            if self.stop.is_set():
                return
            self._put(("open", None))
            for line in iter_resp_lines(resp):
                if self.stop.is_set():
                    return
                if line:
                    self._put(("line", line))
            self._put(("end", None))
        except Exception as exc:  # noqa: BLE001 - handed to the loop, which classifies it
            if not self.stop.is_set():
                self._put(("error", exc))
        finally:
            if resp is not None:
                with contextlib.suppress(Exception):
                    resp.release_conn()

    def cancel(self) -> None:
        self.stop.set()
        with self._lock:
            resp = self._resp
        if resp is not None:
            # Unblocks the thread's pending read at once (urllib3 >= 2.3).
            with contextlib.suppress(Exception):
                resp.shutdown()
            with contextlib.suppress(Exception):
                resp.close()


def _typed(exc: BaseException) -> BaseException:
    """`translate` for the SDK's and the transport's errors; anything else as it is."""
    return translate(exc) if isinstance(exc, (ApiException, *_TRANSPORT_ERRORS)) else exc


class KubeRollouts:
    """`Rollouts` over the Kubernetes API (CustomObjectsApi for Argo kinds, AppsV1Api for RS)."""

    def __init__(
        self,
        *,
        api_client: kubernetes.client.ApiClient,
        request_timeout: float = 10.0,
        watch_timeout_seconds: int = 300,
        watch_read_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        cursor_store: CursorStore | None = None,
        cursor_interval: float = 1.0,
        on_watch_error: Callable[[str], Awaitable[None]] | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        """
        `request_timeout` (s) bounds every non-watch request. A watch request asks the server to
        end it after `watch_timeout_seconds` and gives up on a silent socket after
        `watch_read_timeout` (s); either way it resumes from the last resourceVersion, so short
        values only cost a reconnect. Reconnects after failures back off exponentially from
        `backoff_initial` to `backoff_max` (s) with jitter. Cursors are persisted at most every
        `cursor_interval` (s) per kind and namespace. Every request but the watch streams
        (each a connection held open for minutes) is timed for `observer`
        (`bot.adapters.calls`).
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
        self.observer = observer
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._apps = kubernetes.client.AppsV1Api(api_client)

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
        obj = await self.get_object(namespace, name)
        status = obj.get("status") or {}
        stable = status.get("stableRS") or (status.get("canary") or {}).get("stableRS")
        stable_rs_obj = await self._stable_replicaset(namespace, stable) if stable else None
        return core.parse_rollout(obj, stable_rs_obj=stable_rs_obj)

    # ── writes ───────────────────────────────────────────────────────────────

    async def apply(self, action: RolloutAction, namespace: str, name: str) -> list[Patch]:
        """Send the action's patches in order; return them as sent (fallbacks resolved)."""
        obj = await self.get_object(namespace, name)
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
        """List, then watch Rollouts and AnalysisRuns in each namespace until cancelled.

        Each (kind, namespace) pair has its own loop: list (every object delivered as ADDED),
        then watch from the list's resourceVersion with bookmarks, resuming from the last
        resourceVersion seen when a stream ends or drops. On 410 Gone it lists again and
        delivers what changed meanwhile (objects gone meanwhile as DELETED). Failures are
        reported once per outage through `on_watch_error` and retried with capped, jittered
        exponential backoff. Only cancellation ends it.
        """
        loops = [
            self._watch_loop(kind, namespace, on_event)
            for namespace in dict.fromkeys(namespaces)
            for kind in WATCHED_KINDS
        ]
        if not loops:
            await asyncio.Event().wait()  # nothing to watch: wait for cancellation
        async with asyncio.TaskGroup() as group:
            for loop in loops:
                group.create_task(loop)

    async def _watch_loop(
        self, kind: str, namespace: str, on_event: Callable[[WatchEvent], Awaitable[None]]
    ) -> None:
        cursor = _Cursor(kind, namespace)
        if self.cursor_store is not None:
            cursor.rv = await self._guard(self.cursor_store.get_cursor(kind, namespace), None)
            cursor.persisted = cursor.rv
        failures = 0
        reported = False
        while True:
            try:
                if cursor.rv is None:
                    await self._relist(cursor, on_event)
                dropped = await self._stream(cursor, on_event)
                if reported:
                    log.info("watch of %s in %s recovered", WATCHED_KINDS[kind], namespace)
                failures, reported = 0, False
                if dropped:
                    # An established stream broke off: reconnect, but not in a hot loop.
                    await asyncio.sleep(self._delay(0))
            except _Gone:
                log.info(
                    "watch of %s in %s expired (410): listing again", WATCHED_KINDS[kind], namespace
                )
                cursor.rv = None
            except (ApiException, _WatchFailed, *_TRANSPORT_ERRORS) as exc:
                if isinstance(exc, ApiException) and exc.status == 410:
                    cursor.rv = None
                    continue
                delay = self._delay(failures)
                failures += 1
                detail = translate(exc).message if not isinstance(exc, _WatchFailed) else str(exc)
                log.warning(
                    "watch of %s in %s failed (%s); retrying in %.1fs",
                    WATCHED_KINDS[kind],
                    namespace,
                    detail,
                    delay,
                )
                if not reported:
                    reported = True
                    await self._report(
                        f"Watching {WATCHED_KINDS[kind]} in `{namespace}` is degraded: {detail}. "
                        "Retrying with backoff; changes will be caught up on reconnect."
                    )
                await asyncio.sleep(delay)
            except Exception as exc:  # boundary: a surprise must not end every watch
                # e.g. a proxy answering the list with an HTML page (the client hands back a
                # str): one loop failing would cancel all of them through the TaskGroup and
                # leave rollbot blind while /readyz still said ready.
                delay = self._delay(failures)
                failures += 1
                log.exception(
                    "watch of %s in %s failed unexpectedly; retrying in %.1fs",
                    WATCHED_KINDS[kind],
                    namespace,
                    delay,
                )
                if not reported:
                    reported = True
                    await self._report(
                        f"Watching {WATCHED_KINDS[kind]} in `{namespace}` is degraded: "
                        f"unexpected {type(exc).__name__}. Retrying with backoff; changes "
                        "will be caught up on reconnect."
                    )
                await asyncio.sleep(delay)

    def _delay(self, failures: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** min(failures, 30)))
        return random.uniform(ceiling / 2, ceiling)

    async def _report(self, message: str) -> None:
        if self.on_watch_error is not None:
            await self._guard(self.on_watch_error(message), None)

    async def _guard(self, awaitable: Awaitable[Any], default: Any) -> Any:
        """Run a collaborator's coroutine; its failure must not end the watch."""
        try:
            return await awaitable
        except Exception:  # boundary: the watch outlives its callbacks
            log.exception("watch callback failed")
            return default

    async def _relist(
        self, cursor: _Cursor, on_event: Callable[[WatchEvent], Awaitable[None]]
    ) -> None:
        plural = WATCHED_KINDS[cursor.kind]
        result = await self._request(
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            cursor.namespace,
            plural,
            _request_timeout=self.request_timeout,
        )
        items = [i for i in result.get("items") or [] if isinstance(i, dict)]
        current: dict[str, dict[str, Any]] = {}
        for item in items:
            item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
            item.setdefault("kind", cursor.kind)
            meta = item.get("metadata") or {}
            name = str(meta.get("name") or "")
            current[name] = item
            previous = cursor.seen.get(name)
            prev_rv = (previous or {}).get("metadata", {}).get("resourceVersion")
            if previous is None or prev_rv != meta.get("resourceVersion"):
                await self._guard(on_event(WatchEvent("ADDED", cursor.kind, item)), None)
        for name, gone in list(cursor.seen.items()):
            if name not in current:
                await self._guard(on_event(WatchEvent("DELETED", cursor.kind, gone)), None)
        cursor.seen = current
        cursor.rv = str((result.get("metadata") or {}).get("resourceVersion") or "") or None
        await self._persist(cursor, force=True)

    async def _stream(
        self, cursor: _Cursor, on_event: Callable[[WatchEvent], Awaitable[None]]
    ) -> bool:
        """Run one watch request to its end. True when it broke off after being established."""
        plural = WATCHED_KINDS[cursor.kind]
        loop = asyncio.get_running_loop()
        stream = _Stream(loop)
        rv = cursor.rv

        def call() -> Any:
            return self._custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                cursor.namespace,
                plural,
                watch=True,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout_seconds,
                _preload_content=False,
                _request_timeout=(self.request_timeout, self.watch_read_timeout),
            )

        thread = threading.Thread(
            target=stream.run,
            args=(call,),
            name=f"rollbot-watch:{plural}:{cursor.namespace}",
            daemon=True,
        )
        thread.start()
        opened = False
        try:
            while True:
                tag, payload = await stream.queue.get()
                if tag == "open":
                    opened = True
                elif tag == "line":
                    await self._handle_line(cursor, payload, on_event)
                elif tag == "end":
                    return False
                else:  # "error"
                    if not opened:
                        raise payload
                    if isinstance(payload, urllib3.exceptions.ReadTimeoutError):
                        return False  # a quiet stream: resume from the last resourceVersion
                    log.info("watch of %s in %s broke off: %s", plural, cursor.namespace, payload)
                    return True
        finally:
            stream.cancel()
            await self._persist(cursor, force=True)

    async def _handle_line(
        self, cursor: _Cursor, line: str, on_event: Callable[[WatchEvent], Awaitable[None]]
    ) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            log.warning("unparseable watch line: %.200s", line)
            return
        type_ = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if type_ is None or not isinstance(obj, dict):
            log.warning("malformed watch event: %.200s", line)
            return
        if type_ == "ERROR":
            if obj.get("code") == 410:
                raise _Gone(obj.get("message", ""))
            raise _WatchFailed(
                f"watch ERROR {obj.get('code')} {obj.get('reason', '')}: {obj.get('message', '')}"
            )
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if type_ != "BOOKMARK":
            obj.setdefault("apiVersion", f"{GROUP}/{VERSION}")
            obj.setdefault("kind", cursor.kind)
            name = str((obj.get("metadata") or {}).get("name") or "")
            if type_ == "DELETED":
                cursor.seen.pop(name, None)
            else:
                cursor.seen[name] = obj
            await self._guard(on_event(WatchEvent(str(type_), cursor.kind, obj)), None)
        if rv:
            cursor.rv = str(rv)
        await self._persist(cursor)

    async def _persist(self, cursor: _Cursor, *, force: bool = False) -> None:
        if self.cursor_store is None or cursor.rv is None or cursor.rv == cursor.persisted:
            return
        now = time.monotonic()
        if not force and now - cursor.persisted_at < self.cursor_interval:
            return
        cursor.persisted, cursor.persisted_at = cursor.rv, now
        await self._guard(
            self.cursor_store.set_cursor(cursor.kind, cursor.namespace, cursor.rv), None
        )
