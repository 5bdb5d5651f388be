"""The resource types the Kubernetes sim serves, and how a plural or kind names one.

One table (``RESOURCE_TYPES``) drives everything else: the store keys objects by plural, the
HTTP layer matches URLs and writes the discovery documents from it.  Whether a type has a
``status`` subresource is decided by its CRD when there is one (see ``schema``); the flag here
is the fallback for built-in kinds.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "GROUP_VERSIONS",
    "KIND_TO_PLURAL",
    "RESOURCE_TYPES",
    "VERBS",
    "ResourceType",
    "resource_type",
]


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
            "argoproj.io",
            "v1alpha1",
            "applications",
            "application",
            "Application",
            ("app", "apps"),
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


def resource_type(plural_or_kind: str) -> ResourceType:
    """The type named by a plural (``rollouts``) or a kind (``Rollout``); ``KeyError`` if none."""
    plural = KIND_TO_PLURAL.get(plural_or_kind, plural_or_kind)
    if plural not in RESOURCE_TYPES:
        raise KeyError(f"unknown resource {plural_or_kind!r}")
    return RESOURCE_TYPES[plural]
