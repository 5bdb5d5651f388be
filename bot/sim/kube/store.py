"""The Kubernetes sim's object store and its watch history, thread-safe.

What etcd and the watch cache do for the real API server: one global ``resourceVersion``
(a write that changes nothing is a no-op), ``metadata.generation``, the ``status`` subresource
split, pruning and validation against the CRDs, ``409`` on a stale ``resourceVersion`` or an
existing name; every write is an event in the history, handed to the open watchers and to the
in-process subscribers (the Argo controller sim).  A watch from before the retained history
(see ``compact``) gets one ``410 Expired`` ``ERROR`` event.

The watch faults a test can switch on: ``drop_watches`` cuts every open watch mid-stream (as
a restarting API server does); ``expire_next_watches(n)`` answers the next ``n`` watches that
resume from a resourceVersion with that ``410 Expired`` event (as an API server whose watch
cache restarted after their resourceVersion does). ``changes`` is the sim's own log: every
write ever made, with its resourceVersion and time, kept whatever ``compact`` drops, for a
test to compare with what a client saw.

Tests and sims call the store directly (``create``/``get``/``patch``… by plural or kind); the
HTTP layer calls the ``*_object`` methods with the resource type it parsed from the URL, and
``watch``/``watch_batch``/``end_watch`` to stream events.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.sim.kube.errors import ApiError, already_exists, conflict, invalid, not_found
from bot.sim.kube.patch import apply_patch, check_patch_type, clone
from bot.sim.kube.resources import RESOURCE_TYPES, ResourceType, resource_type
from bot.sim.kube.schema import NAME_RE, CrdSchema, prune, schema_errors
from bot.sim.kube.selectors import Filter

__all__ = ["Event", "ObjectStore", "Watcher"]

log = logging.getLogger("bot.sim.kube")


@dataclasses.dataclass
class Event:
    """One write, as watches see it: ``ADDED``/``MODIFIED``/``DELETED`` at ``rv``, made at
    ``at`` (``time.time()``)."""

    rv: int
    type: str
    plural: str
    obj: dict[str, Any]
    at: float = dataclasses.field(default_factory=time.time)


class Watcher:
    """One open watch: the events waiting for its stream, and how its stream should end."""

    def __init__(self, plural: str, flt: Filter, loop: asyncio.AbstractEventLoop) -> None:
        self.plural = plural
        self.filter = flt
        self.loop = loop
        self.pending: deque[Event] = deque()
        self.wakeup = asyncio.Event()
        self.dropped = False
        self.closing = False

    def notify(self) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed
            self.loop.call_soon_threadsafe(self.wakeup.set)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class ObjectStore:
    """Objects by (plural, namespace, name), the event history, and the open watches.

    ``schemas`` (kind → CRD schema) prune and, when ``validate``, validate custom resources;
    they also decide which custom kinds have a ``status`` subresource.  (Annotations in the
    class say ``builtins.list``: its ``list`` method shadows the type in the class body.)
    """

    def __init__(self, schemas: dict[str, CrdSchema], *, validate: bool) -> None:
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._rv = 0
        self._history: list[Event] = []  # what watches can resume from (see compact)
        self._changes: list[Event] = []  # every write ever: the sim's own log
        self._floor = 0
        self._expire_next = 0
        self.watches_dropped = 0  # streams cut by drop_watches, in all
        self.watches_expired = 0  # watches answered 410 Expired, in all
        self._watchers: list[Watcher] = []
        self._subscribers: list[Callable[[str, dict[str, Any]], None]] = []
        self._schemas = schemas
        self.validate = validate and bool(self._schemas)
        self._status_sub = {
            rt.plural: (
                self._schemas[rt.kind].status_subresource
                if rt.kind in self._schemas
                else rt.status_subresource
            )
            for rt in RESOURCE_TYPES.values()
        }

    # ---------------------------------------------------------------- test controls

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def drop_watches(self) -> int:
        """Cut every open watch mid-stream (after the events already due to it); how many."""
        with self._lock:
            watchers, self._watchers = self._watchers, []
            for w in watchers:
                w.dropped = True
                w.notify()
            self.watches_dropped += len(watchers)
        return len(watchers)

    def expire_next_watches(self, n: int = 1) -> None:
        """Answer the next ``n`` watches that resume from a resourceVersion (not ``""`` or
        ``"0"``) with one ``410 Expired`` ``ERROR`` event, whatever their resourceVersion: an
        API server whose watch cache (re)started after it answers so. The client must list
        again; a watch from the list's resourceVersion counts as one of the next ``n`` too."""
        with self._lock:
            self._expire_next += n

    def close_watches(self) -> None:
        """End every open watch cleanly (the server is stopping)."""
        with self._lock:
            for w in self._watchers:
                w.closing = True
                w.notify()

    def compact(self) -> None:
        with self._lock:
            self._history.clear()
            self._floor = self._rv

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    def open_watches(self) -> int:
        with self._lock:
            return len(self._watchers)

    def changes(
        self, kind_plural: str, namespace: str | None = None, name: str | None = None
    ) -> builtins.list[Event]:
        """Every write to objects of this type (in ``namespace``, named ``name``), oldest
        first, with its resourceVersion and time: the sim's own log, which ``compact`` does
        not touch. Copies."""
        rt = resource_type(kind_plural)
        with self._lock:
            return [
                dataclasses.replace(ev, obj=clone(ev.obj))
                for ev in self._changes
                if ev.plural == rt.plural
                and (namespace is None or ev.obj["metadata"].get("namespace") == namespace)
                and (name is None or ev.obj["metadata"].get("name") == name)
            ]

    # ---------------------------------------------------------------- by plural or kind

    def has_status_subresource(self, plural: str) -> bool:
        return self._status_sub[resource_type(plural).plural]

    def create(self, obj: dict[str, Any], *, keep_status: bool = True) -> dict[str, Any]:
        """Like POST; the test-side helper keeps ``.status`` by default to seed a world."""
        rt = resource_type(obj.get("kind", ""))
        ns = obj.get("metadata", {}).get("namespace") or "default"
        return self.create_object(rt, ns, obj, keep_status=keep_status)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Like PUT on the main resource (``.status`` is kept as stored when subresourced)."""
        rt = resource_type(obj.get("kind", ""))
        meta = obj.get("metadata", {})
        return self.update_object(
            rt, meta.get("namespace") or "default", meta["name"], obj, subresource=None
        )

    def update_status(
        self, kind_plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace ``.status`` (like PUT on ``/status``)."""
        rt = resource_type(kind_plural)
        with self._lock:
            current = self._objects.get((rt.plural, namespace, name))
            if current is None:
                raise not_found(rt, name)
            new = clone(current)
            new["status"] = clone(status)
            return self._commit(rt, current, new)

    def patch(
        self,
        kind_plural: str,
        namespace: str,
        name: str,
        patch: Any,
        *,
        content_type: str = "application/merge-patch+json",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return self.patch_object(
            resource_type(kind_plural), namespace, name, patch, content_type, subresource
        )

    def get(self, kind_plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        rt = resource_type(kind_plural)
        with self._lock:
            obj = self._objects.get((rt.plural, namespace, name))
            return clone(obj) if obj is not None else None

    def list(self, kind_plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rt = resource_type(kind_plural)
        with self._lock:
            return [
                clone(o)
                for (plural, ns, _), o in sorted(self._objects.items())
                if plural == rt.plural and (namespace is None or ns == namespace)
            ]

    def delete(self, kind_plural: str, namespace: str, name: str) -> None:
        self.delete_object(resource_type(kind_plural), namespace, name)

    # ---------------------------------------------------------------- by resource type

    def create_object(
        self, rt: ResourceType, namespace: str, obj: dict[str, Any], *, keep_status: bool
    ) -> dict[str, Any]:
        obj = clone(obj)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise ApiError(
                400,
                "the namespace of the provided object does not match the "
                "namespace sent on the request",
            )
        meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(
                secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5)
            )
            meta["name"] = meta["generateName"] + suffix
        if not meta.get("name"):
            raise invalid(
                rt,
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "field": "metadata.name",
                        "message": "Required value: name or generateName is required",
                    }
                ],
            )
        if self._status_sub[rt.plural] and not keep_status:
            obj.pop("status", None)
        for key in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "selfLink",
            "managedFields",
        ):
            meta.pop(key, None)
        self._check(rt, obj)
        with self._lock:
            obj_key = (rt.plural, namespace, meta["name"])
            if obj_key in self._objects:
                raise already_exists(rt, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[obj_key] = obj
            self._emit(rt, "ADDED", obj)
            return clone(obj)

    def update_object(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        *,
        subresource: str | None,
        require_rv: bool = False,
    ) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError(
                400,
                "the name of the object "
                f"({meta['name']}) does not match the name on the URL ({name})",
            )
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise ApiError(
                400,
                "the namespace of the provided object does not match the "
                "namespace sent on the request",
            )
        with self._lock:
            current = self._objects.get((rt.plural, namespace, name))
            if current is None:
                raise not_found(rt, name)
            given_rv = meta.get("resourceVersion")
            if require_rv and not given_rv and rt.custom:
                raise invalid(
                    rt,
                    name,
                    [
                        {
                            "reason": "FieldValueInvalid",
                            "field": "metadata.resourceVersion",
                            "message": "Invalid value: 0x0: must be specified for an update",
                        }
                    ],
                )
            if given_rv and given_rv != current["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            new = self._merge_for_subresource(rt, current, obj, subresource)
            return self._commit(rt, current, new)

    def patch_object(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        subresource: str | None,
    ) -> dict[str, Any]:
        check_patch_type(content_type, custom=rt.custom)
        with self._lock:
            current = self._objects.get((rt.plural, namespace, name))
            if current is None:
                raise not_found(rt, name)
            patched = apply_patch(current, patch, content_type)
            given_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if given_rv and given_rv != current["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            new = self._merge_for_subresource(rt, current, patched, subresource)
            return self._commit(rt, current, new)

    def delete_object(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            current = self._objects.pop((rt.plural, namespace, name), None)
            if current is None:
                raise not_found(rt, name)
            self._rv += 1
            current["metadata"]["resourceVersion"] = str(self._rv)
            self._emit(rt, "DELETED", current)
            return clone(current)

    def list_objects(
        self, rt: ResourceType, flt: Filter
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """Copies of the objects of type ``rt`` that ``flt`` lets through, and the list's rv."""
        with self._lock:
            items = [
                clone(o)
                for (plural, _, _), o in sorted(self._objects.items())
                if plural == rt.plural and flt(o)
            ]
            return items, str(self._rv)

    # ---------------------------------------------------------------- watches

    def watch(
        self, rt: ResourceType, flt: Filter, rv_param: str, loop: asyncio.AbstractEventLoop
    ) -> tuple[builtins.list[dict[str, Any]], Watcher | None]:
        """Open a watch from ``rv_param``: the events to send first, and the registered watcher.

        From ``""``/``"0"`` the first events are every current object as ``ADDED``; from an
        rv within the history, every later event; from before it (or while
        ``expire_next_watches`` has some left), one ``410`` ``ERROR`` event and no watcher
        (the stream ends after it).
        """
        watcher: Watcher | None = Watcher(rt.plural, flt, loop)
        initial: builtins.list[dict[str, Any]] = []
        with self._lock:
            if rv_param in ("", "0"):
                for (plural, _, _), o in sorted(self._objects.items()):
                    if plural == rt.plural and flt(o):
                        initial.append({"type": "ADDED", "object": clone(o)})
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise ApiError(400, f"invalid resource version: {rv_param}") from None
                if since < self._floor or self._expire_next > 0:
                    if since >= self._floor:
                        self._expire_next -= 1
                    oldest = self._floor if since < self._floor else since + 1
                    expired = ApiError(410, f"too old resource version: {since} ({oldest})")
                    initial.append({"type": "ERROR", "object": expired.status()})
                    watcher = None
                    self.watches_expired += 1
                else:
                    for ev in self._history:
                        if ev.rv > since and ev.plural == rt.plural and flt(ev.obj):
                            initial.append({"type": ev.type, "object": clone(ev.obj)})
            if watcher is not None:
                self._watchers.append(watcher)
        return initial, watcher

    def watch_batch(self, watcher: Watcher) -> tuple[builtins.list[Event], int]:
        """The events waiting for ``watcher`` (taken), and the current resourceVersion."""
        with self._lock:
            batch = list(watcher.pending)
            watcher.pending.clear()
            return batch, self._rv

    def end_watch(self, watcher: Watcher) -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    # ---------------------------------------------------------------- internals

    def _check(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj.get("metadata", {}).get("name", "")
        if rt.custom and rt.kind in self._schemas:
            schema = self._schemas[rt.kind]
            prune(obj, schema.raw, root=True)
            if self.validate:
                causes = schema_errors(schema, obj)
                if causes:
                    raise invalid(rt, name, causes)
        if not NAME_RE.match(name) or len(name) > 253:
            raise invalid(
                rt,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                        "consist of lower case alphanumeric characters, '-' or '.', and must "
                        "start and end with an alphanumeric character",
                    }
                ],
            )
        return obj

    def _merge_for_subresource(
        self,
        rt: ResourceType,
        current: dict[str, Any],
        incoming: dict[str, Any],
        subresource: str | None,
    ) -> dict[str, Any]:
        """What a write through the main resource or ``/status`` may change."""
        if subresource == "status":
            new = clone(current)
            if "status" in incoming:
                new["status"] = clone(incoming["status"])
            else:
                new.pop("status", None)
            return new
        new = clone(incoming)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        if self._status_sub[rt.plural]:
            if "status" in current:
                new["status"] = clone(current["status"])
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        cur_meta = current["metadata"]
        for key in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        ):
            if key in cur_meta:
                meta[key] = cur_meta[key]
        return new

    def _commit(
        self, rt: ResourceType, current: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        """Validate and store ``new`` over ``current`` (lock held by caller)."""
        self._check(rt, new)
        meta = new["metadata"]
        cur_meta = current["metadata"]
        for key in ("uid", "creationTimestamp", "resourceVersion"):
            meta[key] = cur_meta[key]
        meta["generation"] = cur_meta.get("generation", 1)
        if new == current:
            return clone(current)
        if _spec_part(new) != _spec_part(current):
            meta["generation"] = cur_meta.get("generation", 1) + 1
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._objects[(rt.plural, meta["namespace"], meta["name"])] = new
        self._emit(rt, "MODIFIED", new)
        return clone(new)

    def _emit(self, rt: ResourceType, type_: str, obj: dict[str, Any]) -> None:
        snapshot = clone(obj)
        event = Event(self._rv, type_, rt.plural, snapshot)
        self._history.append(event)
        self._changes.append(event)
        for w in self._watchers:
            if w.plural == rt.plural and w.filter(snapshot):
                w.pending.append(event)
                w.notify()
        for cb in list(self._subscribers):
            try:
                cb(type_, clone(snapshot))
            except Exception:
                log.exception("kube sim subscriber failed")
