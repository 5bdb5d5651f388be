"""The discovery documents of the Kubernetes sim: ``/version``, ``/api``, ``/apis`` and each
group's resource list, as ``kubectl`` and the Python client read them before anything else.

They are written from the resource-type table; which types list a ``/status`` subresource
comes from the store (the CRDs decide for custom kinds).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from bot.sim.kube.errors import path_not_found
from bot.sim.kube.resources import GROUP_VERSIONS, RESOURCE_TYPES, VERBS, ResourceType

__all__ = ["VERSION", "discovery_document"]

VERSION = {
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


def discovery_document(
    path: str, *, server_address: str, has_status_subresource: Callable[[str], bool]
) -> dict[str, Any] | None:
    """The document a ``GET`` on ``path`` answers, or None when ``path`` is not a discovery one.

    An unknown group (``/apis/nope``) or version (``/apis/apps/v2``) is a ``404``.
    """
    parts = [p for p in path.split("/") if p]
    if path in ("/version", "/version/"):
        return VERSION
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }
    if parts == ["api", "v1"]:
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}
    if parts == ["apis"]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_api_group(g) for g in GROUP_VERSIONS],
        }
    if len(parts) == 2 and parts[0] == "apis":
        if parts[1] not in GROUP_VERSIONS:
            raise path_not_found()
        return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(parts[1])}
    if len(parts) == 3 and parts[0] == "apis":
        if GROUP_VERSIONS.get(parts[1]) != parts[2]:
            raise path_not_found()
        return _resource_list(parts[1], parts[2], has_status_subresource)
    return None


def _resource_list(
    group: str, version: str, has_status_subresource: Callable[[str], bool]
) -> dict[str, Any]:
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
        if has_status_subresource(rt.plural):
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


def _api_group(group: str) -> dict[str, Any]:
    version = GROUP_VERSIONS[group]
    gv = {"groupVersion": f"{group}/{version}", "version": version}
    return {"name": group, "versions": [gv], "preferredVersion": gv}


def _storage_hash(rt: ResourceType) -> str:
    digest = hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()
