"""A Kubernetes API server simulation, over real HTTP on loopback.

The bot (and ``kubectl``-shaped tools such as the official ``kubernetes`` Python client) talks to
it exactly as to a real API server: list / get / create / replace / delete, the ``status``
subresource, merge and JSON patches, chunked watches with bookmarks and ``410 Expired``, the
discovery documents, and ``Status`` error bodies.

What it serves (all namespaced, plural names)::

    argoproj.io/v1alpha1         rollouts (status; scale in discovery), analysisruns,
                                 analysistemplates
    apps/v1                      replicasets (status)
    coordination.k8s.io/v1       leases

Faithful behaviour (as the real kube-apiserver does it):

* ``resourceVersion`` is one global increasing integer, as etcd's revision; a write that changes
  nothing is a no-op (no new resourceVersion, no event).
* ``metadata.generation`` moves when anything but ``metadata`` and ``status`` changes.
* For kinds with a status subresource, writes to the main resource ignore ``.status`` and writes
  to ``/status`` change only ``.status``.  The Argo CRDs decide which kinds have one: Rollouts do,
  AnalysisRuns and AnalysisTemplates do not (their CRDs declare ``subresources: {}``).
* Custom resources are pruned (unknown fields dropped, ``null`` dropped unless ``nullable``) and
  validated against the real CRD ``openAPIV3Schema`` (shipped in ``bot/sim/crds``); invalid
  objects get ``422 Invalid``.
* A JSON-patch body that is not a list is ``400 BadRequest`` with Go's decoding message; a
  strategic merge patch on a custom resource is ``415 UnsupportedMediaType``.
* A stale ``metadata.resourceVersion`` in an update is ``409 Conflict``; creating an existing
  name is ``409 AlreadyExists``.
* A watch from a resourceVersion older than the retained history streams one ``ERROR`` event
  with a ``410 Expired`` Status and ends, like the watch cache does.

Simplified: no field selectors other than ``metadata.name`` / ``metadata.namespace``, no
server-side apply, no managedFields, strategic merge patches on built-in kinds are applied as
merge patches, label-selector transitions in watches are not turned into synthetic
DELETED/ADDED events.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import json
import logging
import pathlib
import re
import secrets
import socket
import string
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "rollbot-sim-token"
BOOKMARK_INTERVAL = 1.0
CUSTOM_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")
BUILTIN_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def default_crd_dir() -> pathlib.Path:
    """The Argo Rollouts CRDs shipped in the package (``bot/sim/crds``, see its SOURCES.md)."""
    return pathlib.Path(__file__).resolve().parent / "crds"


# --------------------------------------------------------------------------------------------
# resource types


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    scale_subresource: bool = False
    custom: bool = True
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]

RESOURCE_TYPES: dict[str, ResourceType] = {
    rt.plural: rt
    for rt in (
        ResourceType(
            "argoproj.io",
            "v1alpha1",
            "rollouts",
            "rollout",
            "Rollout",
            ("ro",),
            status_subresource=True,
            scale_subresource=True,
        ),
        ResourceType(
            "argoproj.io", "v1alpha1", "analysisruns", "analysisrun", "AnalysisRun", ("ar",)
        ),
        ResourceType(
            "argoproj.io",
            "v1alpha1",
            "analysistemplates",
            "analysistemplate",
            "AnalysisTemplate",
            ("at",),
        ),
        ResourceType(
            "apps",
            "v1",
            "replicasets",
            "replicaset",
            "ReplicaSet",
            ("rs",),
            status_subresource=True,
            scale_subresource=True,
            custom=False,
        ),
        ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", custom=False),
    )
}
KIND_TO_PLURAL = {rt.kind: rt.plural for rt in RESOURCE_TYPES.values()}
GROUP_VERSIONS = {"argoproj.io": "v1alpha1", "apps": "v1", "coordination.k8s.io": "v1"}


# --------------------------------------------------------------------------------------------
# errors


REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
DEFAULT_MESSAGES = {
    401: "Unauthorized",
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: simulated failure",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted",
}


class ApiError(Exception):
    """A failure answered as a ``Status`` object."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        f'{rt.group_resource} "{name}" not found',
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def _conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def _already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'{rt.group_resource} "{name}" already exists',
        reason="AlreadyExists",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def _invalid(rt: ResourceType, name: str, causes: list[dict[str, str]]) -> ApiError:
    summary = ", ".join(
        c["message"] if not c.get("field") else f"{c['field']}: {c['message']}" for c in causes[:10]
    )
    if len(causes) > 1:
        summary = f"[{summary}]"
    return ApiError(
        422,
        f'{rt.kind}.{rt.group} "{name}" is invalid: {summary}',
        details={"name": name, "group": rt.group, "kind": rt.kind, "causes": causes},
    )


class _DroppedWatch(Exception):
    """Raised inside a watch stream to make uvicorn cut the connection mid-stream."""


class _QuietDroppedWatch(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen:
            if isinstance(exc, _DroppedWatch):
                return False
            seen.add(id(exc))
            if isinstance(exc, BaseExceptionGroup) and any(
                isinstance(e, _DroppedWatch) for e in exc.exceptions
            ):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


logging.getLogger("uvicorn.error").addFilter(_QuietDroppedWatch())


# --------------------------------------------------------------------------------------------
# CRD schemas: pruning and validation


def _translate_schema(schema: Any) -> Any:
    """OpenAPI v3 (with Kubernetes extensions) to JSON Schema that ``jsonschema`` understands."""
    if isinstance(schema, list):
        return [_translate_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _translate_schema(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
    out.pop("description", None)
    out.pop("format", None)
    out.pop("nullable", None)
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@dataclasses.dataclass
class _CrdSchema:
    raw: dict[str, Any]
    validator: Any
    status_subresource: bool


@functools.cache
def load_crd_schemas(crd_dir: str) -> dict[str, _CrdSchema]:
    """kind → schema, from every ``*.yaml`` CRD in ``crd_dir`` (cached per directory)."""
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out: dict[str, _CrdSchema] = {}
    for path in sorted(pathlib.Path(crd_dir).glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=loader):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            kind = doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if not version.get("storage", True):
                    continue
                raw = version["schema"]["openAPIV3Schema"]
                validator = jsonschema.Draft7Validator(_translate_schema(raw))
                out[kind] = _CrdSchema(
                    raw=raw,
                    validator=validator,
                    status_subresource="status" in (version.get("subresources") or {}),
                )
    return out


def prune(obj: Any, schema: dict[str, Any], *, root: bool = False) -> Any:
    """Drop fields the structural schema does not know, as the API server does."""
    if isinstance(obj, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key in list(obj):
            if root and key in ("apiVersion", "kind", "metadata"):
                continue
            if props is not None and key in props:
                sub = props[key]
            elif isinstance(addl, dict):
                sub = addl
            elif preserve or addl is True:
                continue
            else:
                del obj[key]
                continue
            if obj[key] is None and not sub.get("nullable"):
                del obj[key]
                continue
            prune(obj[key], sub)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            prune(item, schema["items"])
    return obj


_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _field_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def schema_errors(schema: _CrdSchema, obj: dict[str, Any]) -> list[dict[str, str]]:
    """Validation causes (``reason``/``message``/``field``) for ``obj``; empty when valid."""
    causes: list[dict[str, str]] = []
    for err in sorted(schema.validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        field = _field_path(err.absolute_path)
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else ""
            field = f"{field}.{missing}" if field else missing
            causes.append(
                {"reason": "FieldValueRequired", "message": "Required value", "field": field}
            )
            continue
        reason = "FieldValueTypeInvalid" if err.validator == "type" else "FieldValueInvalid"
        value = json.dumps(err.instance)[:200]
        detail = err.message
        if err.validator == "type":
            detail = f"{field or 'body'} in body must be of type {err.validator_value}: {value}"
        elif err.validator == "enum":
            allowed = ", ".join(json.dumps(v) for v in err.validator_value)
            reason = "FieldValueNotSupported"
            detail = f"Unsupported value: {value}: supported values: {allowed}"
        causes.append(
            {
                "reason": reason,
                "message": f"Invalid value: {value}: {detail}"
                if reason != "FieldValueNotSupported"
                else detail,
                "field": field,
            }
        )
    return causes


# --------------------------------------------------------------------------------------------
# patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class JsonPatchError(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise JsonPatchError(f"doc is missing path: {path}: missing value")
    return cur


def json_patch(doc: Any, ops: list[Any]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise JsonPatchError("Unexpected kind: unknown")
        kind = op["op"]
        path = op.get("path", "")
        parts = _pointer(path)
        if kind == "test":
            if _resolve(doc, parts, path) != op.get("value"):
                raise JsonPatchError(f"testing value {path} failed: test failed")
            continue
        if kind in ("move", "copy"):
            from_parts = _pointer(op.get("from", ""))
            value = copy.deepcopy(_resolve(doc, from_parts, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, from_parts, op.get("from", ""))
            doc = _add(doc, parts, value, path)
            continue
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")), path)
        elif kind == "remove":
            doc = _remove(doc, parts, path)
        elif kind == "replace":
            _resolve(doc, parts, path)
            if not parts:
                doc = copy.deepcopy(op.get("value"))
            else:
                parent = _resolve(doc, parts[:-1], path)
                key: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
                parent[key] = copy.deepcopy(op.get("value"))
        else:
            raise JsonPatchError(f"Unexpected kind: {kind}")
    return doc


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise JsonPatchError(f"add operation does not apply: doc is missing path: {path}")
    else:
        raise JsonPatchError(f"add operation does not apply: doc is missing path: {path}")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        return None
    _resolve(doc, parts, path)
    parent = _resolve(doc, parts[:-1], path)
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]
    return doc


# --------------------------------------------------------------------------------------------
# selectors


def _parse_label_selector(selector: str) -> list[Callable[[dict[str, str]], bool]]:
    preds: list[Callable[[dict[str, str]], bool]] = []
    for term in re.split(r",(?![^()]*\))", selector.strip()):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", term)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                preds.append(functools.partial(_label_in, key, vals))
            else:
                preds.append(functools.partial(_label_not_in, key, vals))
            continue
        m = re.match(r"^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$", term)
        if m:
            key, op, val = m.groups()
            if op == "!=":
                preds.append(functools.partial(_label_ne, key, val))
            else:
                preds.append(functools.partial(_label_eq, key, val))
            continue
        if term.startswith("!"):
            absent = term[1:].strip()
            preds.append(functools.partial(_label_absent, absent))
            continue
        if re.match(r"^[\w./-]+$", term):
            preds.append(functools.partial(_label_present, term))
            continue
        raise ApiError(400, f"unable to parse requirement: {term!r}")
    return preds


def _label_in(key: str, values: set[str], labels: dict[str, str]) -> bool:
    return labels.get(key) in values


def _label_not_in(key: str, values: set[str], labels: dict[str, str]) -> bool:
    return labels.get(key) not in values


def _label_eq(key: str, value: str, labels: dict[str, str]) -> bool:
    return labels.get(key) == value


def _label_ne(key: str, value: str, labels: dict[str, str]) -> bool:
    return labels.get(key) != value


def _label_absent(key: str, labels: dict[str, str]) -> bool:
    return key not in labels


def _label_present(key: str, labels: dict[str, str]) -> bool:
    return key in labels


def _meta_eq(key: str, value: str, obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get(key) == value)


def _meta_ne(key: str, value: str, obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get(key) != value)


def _parse_field_selector(selector: str) -> list[Callable[[dict[str, Any]], bool]]:
    preds: list[Callable[[dict[str, Any]], bool]] = []
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise ApiError(
                400,
                f'"{term.split("=")[0]}" is not a known field selector: only '
                '"metadata.name", "metadata.namespace"',
            )
        field, op, val = m.groups()
        key = field.split(".")[1]
        if op == "!=":
            preds.append(functools.partial(_meta_ne, key, val))
        else:
            preds.append(functools.partial(_meta_eq, key, val))
    return preds


class _Filter:
    def __init__(self, namespace: str | None, label_selector: str, field_selector: str) -> None:
        self.namespace = namespace
        self.labels = _parse_label_selector(label_selector) if label_selector else []
        self.fields = _parse_field_selector(field_selector) if field_selector else []

    def __call__(self, obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        return all(p(labels) for p in self.labels) and all(p(obj) for p in self.fields)


# --------------------------------------------------------------------------------------------
# the simulation


@dataclasses.dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    at: float
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Failure:
    remaining: int
    status: int
    path_contains: str


@dataclasses.dataclass
class _Event:
    rv: int
    type: str
    plural: str
    obj: dict[str, Any]


class _Watcher:
    def __init__(self, plural: str, flt: _Filter, loop: asyncio.AbstractEventLoop) -> None:
        self.plural = plural
        self.filter = flt
        self.loop = loop
        self.pending: deque[_Event] = deque()
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


class KubeSim:
    """A Kubernetes API server on loopback, in its own thread with its own event loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        validate: bool = True,
        crd_dir: pathlib.Path | str | None = None,
        token: str = DEFAULT_TOKEN,
        require_auth: bool = True,
        bookmark_interval: float = BOOKMARK_INTERVAL,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.require_auth = require_auth
        self.bookmark_interval = bookmark_interval
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._rv = 0
        self._history: list[_Event] = []
        self._floor = 0
        self._watchers: list[_Watcher] = []
        self._failures: list[_Failure] = []
        self._subscribers: list[Callable[[str, dict[str, Any]], None]] = []
        self._down = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._schemas: dict[str, _CrdSchema] = {}
        crd_path = pathlib.Path(crd_dir) if crd_dir is not None else default_crd_dir()
        if crd_path.is_dir() and any(crd_path.glob("*.yaml")):
            self._schemas = load_crd_schemas(str(crd_path.resolve()))
        elif validate:
            warnings.warn(
                f"Argo Rollouts CRDs not found in {crd_path}: schema validation is off",
                RuntimeWarning,
                stacklevel=2,
            )
        self.validate = validate and bool(self._schemas)
        self._status_sub = {
            rt.plural: (
                self._schemas[rt.kind].status_subresource
                if rt.kind in self._schemas
                else rt.status_subresource
            )
            for rt in RESOURCE_TYPES.values()
        }

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> KubeSim:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(
            self._build_app(),
            log_level="warning",
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http=_protocol_for(self),
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            started.set()
            try:
                loop.run_until_complete(server.serve(sockets=[sock]))
            finally:
                loop.close()
                sock.close()

        self._thread = threading.Thread(target=run, name=f"kube-sim:{self.port}", daemon=True)
        self._thread.start()
        started.wait(5)
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("kube sim did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        with self._lock:
            for w in self._watchers:
                w.closing = True
                w.notify()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = None
        self._thread = None

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: pathlib.Path, *, namespace: str = "default") -> pathlib.Path:
        """A kubeconfig for ``kubernetes.config.load_kube_config(config_file=path)``."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "rollbot-sim", "cluster": {"server": self.url}}],
            "users": [{"name": "rollbot", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "rollbot-sim",
                    "context": {
                        "cluster": "rollbot-sim",
                        "user": "rollbot",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "rollbot-sim",
            "preferences": {},
        }
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ---------------------------------------------------------------- test controls

    def fail_next(self, n: int, *, status: int = 503, path_contains: str = "") -> None:
        with self._lock:
            self._failures.append(_Failure(n, status, path_contains))

    def set_unreachable(self, down: bool) -> None:
        self._down = down

    @property
    def unreachable(self) -> bool:
        return self._down

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def drop_watches(self) -> int:
        with self._lock:
            watchers, self._watchers = self._watchers, []
            for w in watchers:
                w.dropped = True
                w.notify()
        return len(watchers)

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

    def requests_matching(
        self, method: str | None = None, path_contains: str = ""
    ) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and path_contains in r.path
            ]

    # ---------------------------------------------------------------- store (thread-safe)

    @staticmethod
    def _rt(plural_or_kind: str) -> ResourceType:
        plural = KIND_TO_PLURAL.get(plural_or_kind, plural_or_kind)
        if plural not in RESOURCE_TYPES:
            raise KeyError(f"unknown resource {plural_or_kind!r}")
        return RESOURCE_TYPES[plural]

    def has_status_subresource(self, plural: str) -> bool:
        return self._status_sub[self._rt(plural).plural]

    def create(self, obj: dict[str, Any], *, keep_status: bool = True) -> dict[str, Any]:
        """Like POST; the test-side helper keeps ``.status`` by default to seed a world."""
        rt = self._rt(obj.get("kind", ""))
        ns = obj.get("metadata", {}).get("namespace") or "default"
        return self._create(rt, ns, obj, keep_status=keep_status)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Like PUT on the main resource (``.status`` is kept as stored when subresourced)."""
        rt = self._rt(obj.get("kind", ""))
        meta = obj.get("metadata", {})
        return self._update(
            rt, meta.get("namespace") or "default", meta["name"], obj, subresource=None
        )

    def update_status(
        self, kind_plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace ``.status`` (like PUT on ``/status``)."""
        rt = self._rt(kind_plural)
        with self._lock:
            current = self._objects.get((rt.plural, namespace, name))
            if current is None:
                raise _not_found(rt, name)
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(status)
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
        return self._patch(self._rt(kind_plural), namespace, name, patch, content_type, subresource)

    def get(self, kind_plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        rt = self._rt(kind_plural)
        with self._lock:
            obj = self._objects.get((rt.plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, kind_plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rt = self._rt(kind_plural)
        with self._lock:
            return [
                copy.deepcopy(o)
                for (plural, ns, _), o in sorted(self._objects.items())
                if plural == rt.plural and (namespace is None or ns == namespace)
            ]

    def delete(self, kind_plural: str, namespace: str, name: str) -> None:
        self._delete(self._rt(kind_plural), namespace, name)

    # ---------------------------------------------------------------- store internals

    def _check(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj.get("metadata", {}).get("name", "")
        if rt.custom and rt.kind in self._schemas:
            schema = self._schemas[rt.kind]
            prune(obj, schema.raw, root=True)
            if self.validate:
                causes = schema_errors(schema, obj)
                if causes:
                    raise _invalid(rt, name, causes)
        if not _NAME_RE.match(name) or len(name) > 253:
            raise _invalid(
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

    def _create(
        self, rt: ResourceType, namespace: str, obj: dict[str, Any], *, keep_status: bool
    ) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
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
            raise _invalid(
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
                raise _already_exists(rt, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[obj_key] = obj
            self._emit(rt, "ADDED", obj)
            return copy.deepcopy(obj)

    def _merge_for_subresource(
        self,
        rt: ResourceType,
        current: dict[str, Any],
        incoming: dict[str, Any],
        subresource: str | None,
    ) -> dict[str, Any]:
        """What a write through the main resource or ``/status`` may change."""
        if subresource == "status":
            new = copy.deepcopy(current)
            if "status" in incoming:
                new["status"] = copy.deepcopy(incoming["status"])
            else:
                new.pop("status", None)
            return new
        new = copy.deepcopy(incoming)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        if self._status_sub[rt.plural]:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
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
            return copy.deepcopy(current)
        if _spec_part(new) != _spec_part(current):
            meta["generation"] = cur_meta.get("generation", 1) + 1
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._objects[(rt.plural, meta["namespace"], meta["name"])] = new
        self._emit(rt, "MODIFIED", new)
        return copy.deepcopy(new)

    def _update(
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
                raise _not_found(rt, name)
            given_rv = meta.get("resourceVersion")
            if require_rv and not given_rv and rt.custom:
                raise _invalid(
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
                raise _conflict(rt, name)
            new = self._merge_for_subresource(rt, current, obj, subresource)
            return self._commit(rt, current, new)

    def _patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        subresource: str | None,
    ) -> dict[str, Any]:
        accepted = CUSTOM_PATCH_TYPES if rt.custom else BUILTIN_PATCH_TYPES
        if content_type not in accepted:
            listed = ", ".join((*accepted, "application/apply-patch+yaml"))
            raise ApiError(
                415,
                "the body of the request was in an unknown format - accepted "
                f"media types include: {listed}",
            )
        with self._lock:
            current = self._objects.get((rt.plural, namespace, name))
            if current is None:
                raise _not_found(rt, name)
            if content_type == "application/json-patch+json":
                if not isinstance(patch, list):
                    kind = "object" if isinstance(patch, dict) else type(patch).__name__
                    raise ApiError(
                        400, f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch"
                    )
                try:
                    patched = json_patch(current, patch)
                except JsonPatchError as exc:
                    raise ApiError(422, str(exc)) from None
            else:
                if not isinstance(patch, dict):
                    raise ApiError(
                        400,
                        "json: cannot unmarshal array into Go value of type "
                        "map[string]interface {}",
                    )
                patched = merge_patch(current, patch)
            if not isinstance(patched, dict):
                raise ApiError(
                    400, "json: cannot unmarshal into Go value of type map[string]interface {}"
                )
            given_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if given_rv and given_rv != current["metadata"]["resourceVersion"]:
                raise _conflict(rt, name)
            new = self._merge_for_subresource(rt, current, patched, subresource)
            return self._commit(rt, current, new)

    def _delete(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            current = self._objects.pop((rt.plural, namespace, name), None)
            if current is None:
                raise _not_found(rt, name)
            self._rv += 1
            current["metadata"]["resourceVersion"] = str(self._rv)
            self._emit(rt, "DELETED", current)
            return copy.deepcopy(current)

    def _emit(self, rt: ResourceType, type_: str, obj: dict[str, Any]) -> None:
        snapshot = copy.deepcopy(obj)
        event = _Event(self._rv, type_, rt.plural, snapshot)
        self._history.append(event)
        for w in self._watchers:
            if w.plural == rt.plural and w.filter(snapshot):
                w.pending.append(event)
                w.notify()
        for cb in list(self._subscribers):
            try:
                cb(type_, copy.deepcopy(snapshot))
            except Exception:
                log.exception("kube sim subscriber failed")

    # ---------------------------------------------------------------- HTTP

    def _build_app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        content_type = request.headers.get("content-type")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        path = request.url.path
        query = dict(request.query_params)
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=path,
                    query=query,
                    content_type=content_type.split(";")[0].strip() if content_type else None,
                    body=body,
                    at=time.monotonic(),
                    headers=dict(request.headers),
                )
            )
        try:
            self._maybe_fail(request.method, path)
            return await self._route(request, path, query, body, raw, content_type)
        except ApiError as exc:
            return JSONResponse(exc.status(), status_code=exc.code, headers=exc.headers)

    def _maybe_fail(self, method: str, path: str) -> None:
        with self._lock:
            for rule in self._failures:
                if rule.remaining > 0 and rule.path_contains in path:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._failures.remove(rule)
                    break
            else:
                return
        code = rule.status
        message = DEFAULT_MESSAGES.get(code, f"simulated failure ({code})")
        details: dict[str, Any] | None = None
        headers: dict[str, str] = {}
        if code == 403:
            parsed = _parse_resource_path(path)
            verb = {
                "GET": "get",
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete",
            }.get(method, method.lower())
            if parsed:
                rt, ns, name, sub = parsed
                resource = f"{rt.plural}/{sub}" if sub else rt.plural
                target = f'{rt.group_resource} "{name}"' if name else rt.group_resource
                message = (
                    f'{target} is forbidden: User "system:serviceaccount:rollbot:rollbot" '
                    f'cannot {verb} resource "{resource}" in API group "{rt.group}"'
                    + (f' in the namespace "{ns}"' if ns else " at the cluster scope")
                )
                details = {"group": rt.group, "kind": rt.plural}
                if name:
                    details["name"] = name
            else:
                message = (
                    'forbidden: User "system:serviceaccount:rollbot:rollbot" cannot '
                    f'{verb} path "{path}"'
                )
        if code == 429:  # API Priority and Fairness answers 429 with Retry-After
            headers["Retry-After"] = "1"
            details = {"retryAfterSeconds": 1}
        raise ApiError(code, message, details=details, headers=headers)

    def _authorised(self, request: Request) -> None:
        if not self.require_auth:
            return
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized")

    async def _route(
        self,
        request: Request,
        path: str,
        query: dict[str, str],
        body: Any,
        raw: bytes,
        content_type: str | None,
    ) -> Response:
        method = request.method
        parts = [p for p in path.split("/") if p]
        if method == "GET" and path in ("/version", "/version/"):
            return JSONResponse(_VERSION)
        if method == "GET" and parts == ["api"]:
            return JSONResponse(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
                    ],
                }
            )
        if method == "GET" and parts == ["api", "v1"]:
            return JSONResponse({"kind": "APIResourceList", "groupVersion": "v1", "resources": []})
        if method == "GET" and parts == ["apis"]:
            return JSONResponse(
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [_api_group(g) for g in GROUP_VERSIONS],
                }
            )
        if method == "GET" and len(parts) == 2 and parts[0] == "apis":
            if parts[1] not in GROUP_VERSIONS:
                raise _path_not_found()
            return JSONResponse({"kind": "APIGroup", "apiVersion": "v1", **_api_group(parts[1])})
        if method == "GET" and len(parts) == 3 and parts[0] == "apis":
            if GROUP_VERSIONS.get(parts[1]) != parts[2]:
                raise _path_not_found()
            return JSONResponse(self._resource_list(parts[1], parts[2]))
        parsed = _parse_resource_path(path)
        if parsed is None:
            raise _path_not_found()
        self._authorised(request)
        rt, ns, name, sub = parsed
        if sub == "status" and not self._status_sub[rt.plural]:
            raise _path_not_found()
        if sub not in (None, "status"):
            raise _path_not_found()
        if name is None:
            if method == "GET":
                watch = query.get("watch", "").lower() in ("true", "1")
                if watch:
                    return await self._watch(rt, ns, query)
                return JSONResponse(self._list_body(rt, ns, query))
            if method == "POST" and ns is not None:
                if not isinstance(body, dict):
                    raise ApiError(400, "the body of the request could not be decoded")
                created = self._create(rt, ns, body, keep_status=False)
                return JSONResponse(created, status_code=201)
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if ns is None:
            raise _path_not_found()
        if method == "GET":
            obj = self.get(rt.plural, ns, name)
            if obj is None:
                raise _not_found(rt, name)
            return JSONResponse(obj)
        if method == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "the body of the request could not be decoded")
            return JSONResponse(self._update(rt, ns, name, body, subresource=sub, require_rv=True))
        if method == "PATCH":
            ctype = (content_type or "").split(";")[0].strip().lower()
            if raw and body is None and ctype in BUILTIN_PATCH_TYPES:
                raise ApiError(400, "invalid JSON in patch body")
            return JSONResponse(self._patch(rt, ns, name, body, ctype, sub))
        if method == "DELETE" and sub is None:
            deleted = self._delete(rt, ns, name)
            if rt.custom:
                return JSONResponse(deleted)
            return JSONResponse(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": deleted["metadata"]["uid"],
                    },
                }
            )
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for rt in RESOURCE_TYPES.values():
            if rt.group != group or rt.version != version:
                continue
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": VERBS,
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.custom:
                entry["categories"] = ["all"] if rt.plural == "rollouts" else []
                if not entry["categories"]:
                    del entry["categories"]
            entry["storageVersionHash"] = _storage_hash(rt)
            resources.append(entry)
            if self._status_sub[rt.plural]:
                resources.append(
                    {
                        "name": f"{rt.plural}/status",
                        "singularName": "",
                        "namespaced": True,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if rt.scale_subresource:
                resources.append(
                    {
                        "name": f"{rt.plural}/scale",
                        "singularName": "",
                        "namespaced": True,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}",
            "resources": resources,
        }

    def _list_body(self, rt: ResourceType, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        flt = _Filter(ns, query.get("labelSelector", ""), query.get("fieldSelector", ""))
        with self._lock:
            items = [
                copy.deepcopy(o)
                for (plural, _, _), o in sorted(self._objects.items())
                if plural == rt.plural and flt(o)
            ]
            rv = str(self._rv)
        for item in items:  # list items carry no apiVersion/kind on the wire for built-ins
            if not rt.custom:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {
            "apiVersion": rt.api_version,
            "kind": rt.list_kind,
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    async def _watch(self, rt: ResourceType, ns: str | None, query: dict[str, str]) -> Response:
        flt = _Filter(ns, query.get("labelSelector", ""), query.get("fieldSelector", ""))
        bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        rv_param = query.get("resourceVersion", "")
        loop = asyncio.get_running_loop()
        watcher = _Watcher(rt.plural, flt, loop)
        initial: list[dict[str, Any]] = []
        with self._lock:
            if rv_param in ("", "0"):
                for (plural, _, _), o in sorted(self._objects.items()):
                    if plural == rt.plural and flt(o):
                        initial.append({"type": "ADDED", "object": copy.deepcopy(o)})
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise ApiError(400, f"invalid resource version: {rv_param}") from None
                if since < self._floor:
                    expired = ApiError(410, f"too old resource version: {since} ({self._floor})")
                    initial.append({"type": "ERROR", "object": expired.status()})
                    watcher = None  # type: ignore[assignment]
                else:
                    for ev in self._history:
                        if ev.rv > since and ev.plural == rt.plural and flt(ev.obj):
                            initial.append({"type": ev.type, "object": copy.deepcopy(ev.obj)})
            if watcher is not None:
                self._watchers.append(watcher)

        async def stream() -> AsyncIterator[bytes]:
            for ev in initial:
                yield (json.dumps(ev) + "\n").encode()
            if watcher is None:
                return
            deadline = loop.time() + timeout if timeout is not None else None
            next_bookmark = loop.time() + self.bookmark_interval
            try:
                while True:
                    watcher.wakeup.clear()
                    with self._lock:
                        batch = list(watcher.pending)
                        watcher.pending.clear()
                        current_rv = self._rv
                    for pending in batch:
                        line = {"type": pending.type, "object": pending.obj}
                        yield (json.dumps(line) + "\n").encode()
                    if watcher.dropped:
                        raise _DroppedWatch()
                    if watcher.closing:
                        return
                    now = loop.time()
                    if deadline is not None and now >= deadline:
                        return
                    if bookmarks and now >= next_bookmark and not batch:
                        yield (
                            json.dumps(
                                {
                                    "type": "BOOKMARK",
                                    "object": {
                                        "kind": rt.kind,
                                        "apiVersion": rt.api_version,
                                        "metadata": {"resourceVersion": str(current_rv)},
                                    },
                                }
                            )
                            + "\n"
                        ).encode()
                        next_bookmark = now + self.bookmark_interval
                    wait = (next_bookmark - now) if bookmarks else 3600.0
                    if deadline is not None:
                        wait = min(wait, deadline - now)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(watcher.wakeup.wait(), max(wait, 0.0))
            finally:
                with self._lock:
                    if watcher in self._watchers:
                        self._watchers.remove(watcher)

        return StreamingResponse(stream(), media_type="application/json")


def _path_not_found() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", details={})


_RESOURCE_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)


def _parse_resource_path(
    path: str,
) -> tuple[ResourceType, str | None, str | None, str | None] | None:
    m = _RESOURCE_PATH.match(path)
    if not m:
        return None
    rt = RESOURCE_TYPES.get(m.group("plural"))
    if rt is None or rt.group != m.group("group") or rt.version != m.group("version"):
        return None
    return rt, m.group("ns"), m.group("name"), m.group("sub")


def _api_group(group: str) -> dict[str, Any]:
    version = GROUP_VERSIONS[group]
    gv = {"groupVersion": f"{group}/{version}", "version": version}
    return {"name": group, "versions": [gv], "preferredVersion": gv}


def _storage_hash(rt: ResourceType) -> str:
    import base64
    import hashlib

    digest = hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


_VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-rollbot-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _protocol_for(sim: KubeSim) -> type[H11Protocol]:
    class _SimProtocol(H11Protocol):
        """Closes connections without answering while the sim is "unreachable"."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if sim.unreachable:
                transport.abort()

        def data_received(self, data: bytes) -> None:
            if sim.unreachable:
                self.transport.abort()
                return
            super().data_received(data)

    return _SimProtocol
