"""Patch application as the API server does it: JSON merge, JSON patch, strategic merge.

``check_patch_type`` refuses a content type the resource does not accept (custom resources
take no strategic merge patch: ``415``); ``apply_patch`` applies a decoded body to the stored
object and answers malformed ones with Go's decoding messages (``400``) or a failed JSON-patch
operation (``422``).  Strategic merge patches on built-in kinds are applied as merge patches.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar, cast

from bot.sim.kube.errors import ApiError

__all__ = [
    "BUILTIN_PATCH_TYPES",
    "CUSTOM_PATCH_TYPES",
    "JsonPatchError",
    "apply_patch",
    "check_patch_type",
    "clone",
    "json_patch",
    "merge_patch",
]

CUSTOM_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")
BUILTIN_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


_T = TypeVar("_T")


def clone(value: _T) -> _T:
    """A deep copy of a JSON-shaped value (dicts, lists, scalars), three to four times as
    fast as `copy.deepcopy`, which keeps a memo for shared and cyclic references a decoded
    JSON body cannot have; the store copies every object several times per write, so this
    sets how many writes a second the sim serves (bench: 5,000 Rollouts churned at 1,000/s).
    Anything else is handed to `copy.deepcopy`."""
    kind = type(value)
    if kind is dict:
        return cast(_T, {k: clone(v) for k, v in cast(dict[Any, Any], value).items()})
    if kind is list:
        return cast(_T, [clone(v) for v in cast(list[Any], value)])
    if kind in (str, int, float, bool) or value is None:
        return value
    return copy.deepcopy(value)


def check_patch_type(content_type: str, *, custom: bool) -> None:
    """``415`` unless a resource (custom or built-in) accepts patches of ``content_type``."""
    accepted = CUSTOM_PATCH_TYPES if custom else BUILTIN_PATCH_TYPES
    if content_type not in accepted:
        listed = ", ".join((*accepted, "application/apply-patch+yaml"))
        raise ApiError(
            415,
            "the body of the request was in an unknown format - accepted "
            f"media types include: {listed}",
        )


def apply_patch(current: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """``current`` with ``patch`` applied (a new object; ``current`` is left alone)."""
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
                "json: cannot unmarshal array into Go value of type map[string]interface {}",
            )
        patched = merge_patch(current, patch)
    if not isinstance(patched, dict):
        raise ApiError(400, "json: cannot unmarshal into Go value of type map[string]interface {}")
    return patched


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
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
    doc = clone(doc)
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
            value = clone(_resolve(doc, from_parts, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, from_parts, op.get("from", ""))
            doc = _add(doc, parts, value, path)
            continue
        if kind == "add":
            doc = _add(doc, parts, clone(op.get("value")), path)
        elif kind == "remove":
            doc = _remove(doc, parts, path)
        elif kind == "replace":
            _resolve(doc, parts, path)
            if not parts:
                doc = clone(op.get("value"))
            else:
                parent = _resolve(doc, parts[:-1], path)
                key: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
                parent[key] = clone(op.get("value"))
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
