"""Informers: a cache of Kubernetes objects kept by list + watch, as client-go's reflector
and shared informer keep theirs, on the event loop (no thread per watch).

    Informer(kinds, namespaces, ...).run()
      for each kind, one reflector:
        LIST across the cluster, from the API server's watch cache (`resourceVersion=0`,
            as client-go's reflector lists); a 403 there (RBAC grants namespaced Roles
            only) makes it one reflector per watched namespace for that kind, for good
        WATCH from the list's resourceVersion: `allowWatchBookmarks`, a server timeout drawn
            from [t, 2t] (client-go's jitter, so watches do not expire together), a read
            timeout above the bookmark interval; a stream that ends or goes quiet resumes
            from the last resourceVersion at once; one that breaks off resumes after a
            short jittered delay; 410 Gone lists again and delivers what changed meanwhile
            (objects gone meanwhile as DELETED)
      every object goes through its kind's `slim` (client-go's transform) before it is
      cached, so only what rollbot reads is held; an event whose slim object did not change
      (a ReplicaSet's replica counts, an AnalysisRun's measurements) updates the cached
      resourceVersion and is not delivered

What it promises `on_event`: after the first list (`synced`), every change of a watched
object is delivered once, in the order of one kind's stream, with the object as the
watch carried it (slimmed); `get` then answers from the cache, with no request. Objects in
namespaces not watched (a cluster-wide stream carries them) are neither cached nor
delivered.

Restarts: the last resourceVersion of each reflector is persisted (`cursor_store`, at
most every `cursor_interval` s). A process that starts with a stored cursor lists as
always, then delivers only the objects changed since it (a resourceVersion above the
cursor; etcd's revisions are integers, and the API server's are comparable as such, see
KEP-5504), so an unchanged Rollout is not read again; without a cursor, or when either
is not an integer, it delivers every object (ADDED). Failures are reported once per
outage through `on_error` and retried with capped, jittered exponential backoff; only
cancellation ends `run`.

This module speaks HTTP with httpx; the caller (bot.adapters.kubernetes) makes the client
from the kubeconfig and hands over a function giving the current auth headers (a token
that rotates is read again for each request).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from bot.adapters._http import header, parse_retry_after
from bot.adapters.calls import CallObserver, timed
from bot.core.errors import Forbidden, InvalidRequest, RollbotError, Unreachable
from bot.core.ports import WatchEvent

__all__ = ["Informer", "Kind", "StatusError"]

log = logging.getLogger(__name__)

SERVICE = "Kubernetes API"

OnEvent = Callable[[WatchEvent], Awaitable[None]]


class CursorStore(Protocol):
    async def get_cursor(self, kind: str, namespace: str) -> str | None: ...

    async def set_cursor(self, kind: str, namespace: str, resource_version: str) -> None: ...


@dataclass(frozen=True)
class Kind:
    """One kind an informer keeps: where it is served and what of it is kept."""

    kind: str  # "Rollout"
    api_path: str  # "/apis/argoproj.io/v1alpha1"
    plural: str  # "rollouts"
    label_selector: str = ""
    slim: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    index: Callable[[dict[str, Any]], str | None] | None = None  # a second key, per namespace
    # True: an event whose slim object equals the cached one but for its resourceVersion is
    # cached and not delivered (for kinds whose slim copy drops what churns)
    quiet: bool = False

    def path(self, namespace: str | None) -> str:
        if namespace is None:
            return f"{self.api_path}/{self.plural}"
        return f"{self.api_path}/namespaces/{namespace}/{self.plural}"


class StatusError(Exception):
    """An answer other than 200 to a list or a watch, with the API server's message."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after

    def typed(self) -> RollbotError:
        if self.status in (401, 403):
            return Forbidden(SERVICE, self.message)
        if self.status == 429 or self.status >= 500:
            return Unreachable(
                SERVICE, f"HTTP {self.status}: {self.message}", delay=self.retry_after
            )
        return InvalidRequest(f"The Kubernetes API refused (HTTP {self.status}): {self.message}")


class _Gone(Exception):
    """410: the resourceVersion is older than the server keeps: list again."""


class _Broken(Exception):
    """An established stream broke off (not a quiet one, not an end)."""


def _typed(exc: BaseException) -> BaseException:
    if isinstance(exc, StatusError):
        return exc.typed()
    if isinstance(exc, httpx.TransportError):
        return Unreachable(SERVICE, f"{type(exc).__name__}: {exc}")
    return exc


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _rv(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("resourceVersion") or "")


def _without_rv(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in _meta(obj).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


def changed_since(resource_version: str, cursor: str) -> bool:
    """Whether an object at `resource_version` changed after `cursor`; True when either is
    not an integer (then nothing can be said, and delivering again is the safe side)."""
    if resource_version.isdigit() and cursor.isdigit():
        return int(resource_version) > int(cursor)
    return True


def _message(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:300]
    if isinstance(parsed, dict) and parsed.get("message"):
        return str(parsed["message"])[:500]
    return body.decode("utf-8", "replace").strip()[:300]


@dataclass
class _Reflector:
    """One list + watch: a kind across the cluster (namespace None) or in one namespace."""

    kind: Kind
    namespace: str | None
    rv: str | None = None
    persisted: str | None = None
    persisted_at: float = 0.0
    names: set[tuple[str, str]] = field(default_factory=set)  # (namespace, name) it holds

    @property
    def scope(self) -> str:
        return self.namespace or ""

    def where(self) -> str:
        return f"`{self.namespace}`" if self.namespace else "the cluster"


class Informer:
    """A cache of `kinds` in `namespaces`, kept by list + watch (see the module docstring)."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        auth_headers: Callable[[], Mapping[str, str]],
        kinds: Sequence[Kind],
        namespaces: Sequence[str],
        on_event: OnEvent,
        on_error: Callable[[str], Awaitable[None]] | None = None,
        on_synced: Callable[[float], None] | None = None,
        cursor_store: CursorStore | None = None,
        cursor_interval: float = 1.0,
        request_timeout: float = 10.0,
        watch_timeout_seconds: int = 300,
        watch_read_timeout: float = 90.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        observer: CallObserver | None = None,
    ) -> None:
        self.client = client
        self.auth_headers = auth_headers
        self.kinds = list(kinds)
        self.namespaces = list(dict.fromkeys(namespaces))
        self._watched = set(self.namespaces)
        self.on_event = on_event
        self.on_error = on_error
        self.on_synced = on_synced
        self.cursor_store = cursor_store
        self.cursor_interval = cursor_interval
        self.request_timeout = request_timeout
        self.watch_timeout_seconds = watch_timeout_seconds
        self.watch_read_timeout = watch_read_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.observer = observer
        # kind -> (namespace, name) -> slim object; kind -> (namespace, index key) -> object
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            k.kind: {} for k in self.kinds
        }
        self._indexed: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            k.kind: {} for k in self.kinds
        }
        self._unsynced: set[tuple[str, str]] = set()
        self.synced = asyncio.Event()
        self.synced_after: float | None = None  # seconds from run() to the first full list
        self.scopes: dict[str, str] = {}  # kind -> "cluster" | "namespaces"

    # ── reads ────────────────────────────────────────────────────────────────

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The cached object (slim), or None. No request."""
        return self._objects.get(kind, {}).get((namespace, name))

    def by_index(self, kind: str, namespace: str, key: str) -> dict[str, Any] | None:
        """The cached object of `kind` in `namespace` whose index key is `key`, or None."""
        return self._indexed.get(kind, {}).get((namespace, key))

    def has_synced(self, kind: str) -> bool:
        """Whether every reflector of `kind` has listed once (then a miss means absent)."""
        return self.synced.is_set() or not any(k == kind for k, _ in self._unsynced)

    def count(self, kind: str) -> int:
        return len(self._objects.get(kind, {}))

    # ── running ──────────────────────────────────────────────────────────────

    async def run(self) -> None:
        """List and watch every kind until cancelled."""
        if not self.namespaces or not self.kinds:
            self.synced.set()
            await asyncio.Event().wait()  # nothing to watch: wait for cancellation
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for kind in self.kinds:
                self._unsynced.add((kind.kind, ""))
                group.create_task(self._kind(kind, group, started))

    async def _kind(self, kind: Kind, group: asyncio.TaskGroup, started: float) -> None:
        """Across the cluster where RBAC allows it; else one reflector per namespace."""
        cluster = _Reflector(kind, None)
        try:
            await self._start(cluster, started)
        except StatusError as exc:
            if exc.status != 403:
                raise  # pragma: no cover - _start retries everything else
            self.scopes[kind.kind] = "namespaces"
            log.info(
                "no cluster-wide list of %s (%s): watching %d namespaces one by one",
                kind.plural,
                exc.message,
                len(self.namespaces),
            )
            for namespace in self.namespaces:
                self._unsynced.add((kind.kind, namespace))
            self._done_listing(kind.kind, "", started)
            for namespace in self.namespaces:
                group.create_task(self._start(_Reflector(kind, namespace), started))

    async def _start(self, ref: _Reflector, started: float) -> None:
        """The reflector's first list (with the stored cursor), then its loop."""
        since = None
        if self.cursor_store is not None:
            since = await self._guard(self.cursor_store.get_cursor(ref.kind.kind, ref.scope), None)
        ref.persisted = since
        failures, reported = 0, False
        while True:
            try:
                changes = await self._list(ref, since=since, initial=True)
                break
            except StatusError as exc:
                if exc.status == 403 and ref.namespace is None:
                    raise  # the caller falls back to namespaces
                delay = exc.retry_after or self._delay(failures)
                failures += 1
                reported = await self._failed(ref, exc, delay, reported)
                await asyncio.sleep(delay)
            except (httpx.TransportError, ValueError) as exc:
                delay = self._delay(failures)
                failures += 1
                reported = await self._failed(ref, exc, delay, reported)
                await asyncio.sleep(delay)
        if reported:
            log.info("watch of %s in %s recovered", ref.kind.plural, ref.where())
        if ref.namespace is None:
            self.scopes[ref.kind.kind] = "cluster"
        self._done_listing(ref.kind.kind, ref.scope, started)
        # As client-go's controllers wait for every informer's HasSynced: nothing is handed
        # on before every kind has listed, so a handler reads a whole cache (a Rollout's
        # stable ReplicaSet is there), never the API server.
        await self.synced.wait()
        await self._hand_on(ref, changes)
        await self._loop(ref)

    def _done_listing(self, kind: str, scope: str, started: float) -> None:
        self._unsynced.discard((kind, scope))
        if not self._unsynced and not self.synced.is_set():
            self.synced_after = time.monotonic() - started
            self.synced.set()
            log.info(
                "watch synced in %.2f s: %s",
                self.synced_after,
                ", ".join(f"{self.count(k.kind)} {k.plural}" for k in self.kinds),
            )
            if self.on_synced is not None:
                self.on_synced(self.synced_after)

    async def _loop(self, ref: _Reflector) -> None:
        failures, reported = 0, False
        while True:
            try:
                if ref.rv is None:
                    await self._hand_on(ref, await self._list(ref, since=None, initial=False))
                await self._watch(ref)
                if reported:
                    log.info("watch of %s in %s recovered", ref.kind.plural, ref.where())
                failures, reported = 0, False
            except _Gone:
                log.info(
                    "watch of %s in %s expired (410): listing again", ref.kind.plural, ref.where()
                )
                ref.rv = None
            except _Broken as exc:
                log.info("watch of %s in %s broke off: %s", ref.kind.plural, ref.where(), exc)
                failures, reported = 0, False
                await asyncio.sleep(self._delay(0))
            except (StatusError, httpx.TransportError, ValueError) as exc:
                if isinstance(exc, StatusError) and exc.status == 410:
                    ref.rv = None
                    continue
                delay = (exc.retry_after if isinstance(exc, StatusError) else None) or self._delay(
                    failures
                )
                failures += 1
                reported = await self._failed(ref, exc, delay, reported)
                await asyncio.sleep(delay)
            except Exception as exc:  # boundary: a surprise must not end every watch
                delay = self._delay(failures)
                failures += 1
                log.exception(
                    "watch of %s in %s failed unexpectedly; retrying in %.1fs",
                    ref.kind.plural,
                    ref.where(),
                    delay,
                )
                reported = await self._failed(ref, exc, delay, reported, logged=True)
                await asyncio.sleep(delay)

    async def _failed(
        self,
        ref: _Reflector,
        exc: BaseException,
        delay: float,
        reported: bool,
        *,
        logged: bool = False,
    ) -> bool:
        typed = _typed(exc)
        detail = (
            typed.message if isinstance(typed, RollbotError) else f"unexpected {type(exc).__name__}"
        )
        if not logged:
            log.warning(
                "watch of %s in %s failed (%s); retrying in %.1fs",
                ref.kind.plural,
                ref.where(),
                detail,
                delay,
            )
        if not reported and self.on_error is not None:
            await self._guard(
                self.on_error(
                    f"Watching {ref.kind.plural} in {ref.where()} is degraded: {detail}. "
                    "Retrying with backoff; changes will be caught up on reconnect."
                ),
                None,
            )
        return True

    def _delay(self, failures: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** min(failures, 30)))
        return random.uniform(ceiling / 2, ceiling)

    async def _guard(self, awaitable: Awaitable[Any], default: Any) -> Any:
        """Run a collaborator's coroutine; its failure must not end the watch."""
        try:
            return await awaitable
        except Exception:  # boundary: the watch outlives its callbacks
            log.exception("watch callback failed")
            return default

    # ── list ─────────────────────────────────────────────────────────────────

    def _params(self, ref: _Reflector) -> dict[str, str]:
        return {"labelSelector": ref.kind.label_selector} if ref.kind.label_selector else {}

    async def _list(self, ref: _Reflector, *, since: str | None, initial: bool) -> list[WatchEvent]:
        """List `ref`'s objects into the cache; what changed, to hand on: every object
        (ADDED) on a first list without `since`; those changed after `since` on a first
        list with it; on a re-list, those new or changed (ADDED) and those gone
        (DELETED)."""
        params = {**self._params(ref), "resourceVersion": "0"}
        with timed(self.observer, classify=_typed) as call:
            response = await self.client.get(
                ref.kind.path(ref.namespace),
                params=params,
                headers=dict(self.auth_headers()),
                timeout=self.request_timeout,
            )
            call.status(response.status_code)
        if response.status_code != 200:
            raise StatusError(
                response.status_code,
                _message(response.content),
                parse_retry_after(header(response.headers, "Retry-After")),
            )
        body = await asyncio.to_thread(json.loads, response.content)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):  # e.g. a proxy's page, or a Status with a 200
            raise ValueError(f"the answer to a list of {ref.kind.plural} is not a list")
        objects = self._objects[ref.kind.kind]
        listed: set[tuple[str, str]] = set()
        changes: list[WatchEvent] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            obj = self._slim(ref.kind, item)
            meta = _meta(obj)
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            if key[0] not in self._watched:
                continue
            listed.add(key)
            before = objects.get(key)
            self._put(ref.kind, key, obj)
            if initial and since is not None:
                if changed_since(_rv(obj), since):
                    changes.append(WatchEvent("MODIFIED", ref.kind.kind, obj))
            elif before is None or _rv(before) != _rv(obj):
                changes.append(WatchEvent("ADDED", ref.kind.kind, obj))
        for key in ref.names - listed:
            gone = objects.get(key)
            self._drop(ref.kind, key)
            if gone is not None:
                changes.append(WatchEvent("DELETED", ref.kind.kind, gone))
        ref.names = listed
        ref.rv = str((body.get("metadata") or {}).get("resourceVersion") or "") or None
        return changes

    async def _hand_on(self, ref: _Reflector, changes: list[WatchEvent]) -> None:
        """Deliver a list's changes, then keep its resourceVersion (not before: a process
        that dies in between must deliver them again)."""
        for event in changes:
            await self._guard(self.on_event(event), None)
        await self._persist(ref, force=True)

    def _slim(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("kind", kind.kind)
        return kind.slim(obj) if kind.slim is not None else obj

    def _put(self, kind: Kind, key: tuple[str, str], obj: dict[str, Any]) -> None:
        objects = self._objects[kind.kind]
        if kind.index is not None:
            before = objects.get(key)
            if before is not None:
                old = kind.index(before)
                if old is not None:
                    self._indexed[kind.kind].pop((key[0], old), None)
            new = kind.index(obj)
            if new is not None:
                self._indexed[kind.kind][(key[0], new)] = obj
        objects[key] = obj

    def _drop(self, kind: Kind, key: tuple[str, str]) -> None:
        gone = self._objects[kind.kind].pop(key, None)
        if gone is not None and kind.index is not None:
            old = kind.index(gone)
            if old is not None and self._indexed[kind.kind].get((key[0], old)) is gone:
                del self._indexed[kind.kind][(key[0], old)]

    # ── watch ────────────────────────────────────────────────────────────────

    async def _watch(self, ref: _Reflector) -> None:
        """One watch request to its end (server timeout, a quiet stream: resume at once);
        _Broken when it broke off after it was established."""
        params = {
            **self._params(ref),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(
                random.randint(self.watch_timeout_seconds, 2 * self.watch_timeout_seconds)
            ),
        }
        if ref.rv:
            params["resourceVersion"] = ref.rv
        timeout = httpx.Timeout(self.request_timeout, read=self.watch_read_timeout)
        opened = False
        try:
            async with self.client.stream(
                "GET",
                ref.kind.path(ref.namespace),
                params=params,
                headers=dict(self.auth_headers()),
                timeout=timeout,
            ) as response:
                if response.status_code != 200:
                    raw = await response.aread()
                    raise StatusError(
                        response.status_code,
                        _message(raw),
                        parse_retry_after(header(response.headers, "Retry-After")),
                    )
                opened = True
                async for line in response.aiter_lines():
                    if line:
                        await self._line(ref, line)
        except httpx.ReadTimeout:
            if not opened:
                raise
            return  # a quiet stream: resume from the last resourceVersion
        except httpx.TransportError as exc:
            if not opened:
                raise
            raise _Broken(f"{type(exc).__name__}: {exc}") from exc
        finally:
            await self._persist(ref, force=True)

    async def _line(self, ref: _Reflector, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            log.warning("unparseable watch line: %.200s", line)
            return
        type_ = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(type_, str) or not isinstance(obj, dict):
            log.warning("malformed watch event: %.200s", line)
            return
        if type_ == "ERROR":
            if obj.get("code") == 410:
                raise _Gone(str(obj.get("message", "")))
            raise StatusError(int(obj.get("code") or 500), str(obj.get("message", "")))
        rv = _rv(obj)
        if type_ != "BOOKMARK":
            change = self._apply(ref, type_, obj)
            if rv:
                ref.rv = rv
            if change is not None:
                await self._guard(self.on_event(change), None)
        elif rv:
            ref.rv = rv
        await self._persist(ref)

    def _apply(self, ref: _Reflector, type_: str, raw: dict[str, Any]) -> WatchEvent | None:
        """Keep the event's object in the cache (slim); the event to deliver, or None."""
        kind = ref.kind
        obj = self._slim(kind, raw)
        meta = _meta(obj)
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if key[0] not in self._watched:
            return None
        before = self._objects[kind.kind].get(key)
        if type_ == "DELETED":
            self._drop(kind, key)
            ref.names.discard(key)
            return WatchEvent(type_, kind.kind, obj)
        self._put(kind, key, obj)
        ref.names.add(key)
        if kind.quiet and before is not None and _without_rv(before) == _without_rv(obj):
            return None  # only what rollbot does not keep changed
        return WatchEvent(type_, kind.kind, obj)

    async def _persist(self, ref: _Reflector, *, force: bool = False) -> None:
        if self.cursor_store is None or ref.rv is None or ref.rv == ref.persisted:
            return
        now = time.monotonic()
        if not force and now - ref.persisted_at < self.cursor_interval:
            return
        ref.persisted, ref.persisted_at = ref.rv, now
        await self._guard(self.cursor_store.set_cursor(ref.kind.kind, ref.scope, ref.rv), None)
