"""The Argo Rollouts CRDs and Argo CD's Application CRD, and what the API server does with
a custom resource's schema.

The CRDs are package data (``bot/sim/crds``, see its SOURCES.md).  From each one's
``openAPIV3Schema`` the sim prunes unknown fields (and ``null`` where not ``nullable``) and
validates what is left with ``jsonschema``, turning the errors into the ``causes`` of a
``422 Invalid`` Status.  Also here: the RFC 1123 rule every object name must follow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import re
from collections.abc import Iterable
from typing import Any

import yaml

__all__ = [
    "NAME_RE",
    "CrdSchema",
    "default_crd_dir",
    "load_crd_schemas",
    "prune",
    "schema_errors",
]


def default_crd_dir() -> pathlib.Path:
    """The Argo Rollouts and Argo CD CRDs shipped in the package (``bot/sim/crds``, see its
    SOURCES.md)."""
    return pathlib.Path(__file__).resolve().parent.parent / "crds"


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
class CrdSchema:
    raw: dict[str, Any]
    validator: Any
    status_subresource: bool


@functools.cache
def load_crd_schemas(crd_dir: str) -> dict[str, CrdSchema]:
    """kind → schema, from every ``*.yaml`` CRD in ``crd_dir`` (cached per directory)."""
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out: dict[str, CrdSchema] = {}
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
                out[kind] = CrdSchema(
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


NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _field_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def schema_errors(schema: CrdSchema, obj: dict[str, Any]) -> list[dict[str, str]]:
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
