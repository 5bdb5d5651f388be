"""Label and field selectors, as lists and watches take them (``labelSelector=``,
``fieldSelector=``).

Label selectors support equality (``=``, ``==``, ``!=``), set-based (``in``, ``notin``) and
existence (``key``, ``!key``) terms; field selectors only ``metadata.name`` and
``metadata.namespace``, as for custom resources.  A term the parser does not understand is a
``400 BadRequest``.  ``Filter`` combines them with the namespace of the request's URL.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from bot.sim.kube.errors import ApiError

__all__ = ["Filter"]


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


class Filter:
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
