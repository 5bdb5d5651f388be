"""A Kubernetes API server simulation, over real HTTP on loopback.

The bot (and ``kubectl``-shaped tools such as the official ``kubernetes`` Python client) talks to
it exactly as to a real API server: list / get / create / replace / delete, the ``status``
subresource, merge and JSON patches, chunked watches with bookmarks and ``410 Expired``, the
discovery documents, and ``Status`` error bodies.

What it serves (all namespaced, plural names)::

    argoproj.io/v1alpha1         rollouts (status; scale in discovery), analysisruns,
                                 analysistemplates, applications (Argo CD's)
    apps/v1                      replicasets (status)
    coordination.k8s.io/v1       leases

Faithful behaviour (as the real kube-apiserver does it):

* ``resourceVersion`` is one global increasing integer, as etcd's revision; a write that changes
  nothing is a no-op (no new resourceVersion, no event).
* ``metadata.generation`` moves when anything but ``metadata`` and ``status`` changes.
* For kinds with a status subresource, writes to the main resource ignore ``.status`` and writes
  to ``/status`` change only ``.status``.  The Argo CRDs decide which kinds have one: Rollouts do,
  AnalysisRuns, AnalysisTemplates and Applications do not (their CRDs declare
  ``subresources: {}``).
* Custom resources are pruned (unknown fields dropped, ``null`` dropped unless ``nullable``) and
  validated against the real CRD ``openAPIV3Schema`` (shipped in ``bot/sim/crds``); invalid
  objects get ``422 Invalid``.
* A JSON-patch body that is not a list is ``400 BadRequest`` with Go's decoding message; a
  strategic merge patch on a custom resource is ``415 UnsupportedMediaType``.
* A stale ``metadata.resourceVersion`` in an update is ``409 Conflict``; creating an existing
  name is ``409 AlreadyExists``.
* A watch from a resourceVersion older than the retained history streams one ``ERROR`` event
  with a ``410 Expired`` Status and ends, like the watch cache does.
* RBAC's answer to a service account with namespaced Roles only: for the plurals in
  ``namespaced_only``, a list or watch across the cluster is ``403 Forbidden`` with the
  authorizer's message ("… cannot list resource "rollouts" in API group "argoproj.io" at the
  cluster scope"); the same in a namespace is served.

Simplified: no field selectors other than ``metadata.name`` / ``metadata.namespace``, no
server-side apply, no managedFields, strategic merge patches on built-in kinds are applied as
merge patches, label-selector transitions in watches are not turned into synthetic
DELETED/ADDED events.

How the package is split:

* ``resources``: the resource types served, by plural and kind;
* ``errors``: ``ApiError`` and the ``Status`` failures the real server answers;
* ``schema``: the CRDs (package data in ``bot/sim/crds``), pruning and validation;
* ``patch``: merge, JSON and strategic merge patches;
* ``selectors``: label and field selectors;
* ``store``: the objects, ``resourceVersion``, the watch history and the watchers;
* ``discovery``: ``/version``, ``/api``, ``/apis`` and the resource lists;
* ``http``: routes, watch streaming, injected failures and held answers, the protocol that
  cuts connections;
* ``sim``: ``KubeSim``, the store served on loopback with its test controls.
"""

from bot.sim.kube.errors import ApiError
from bot.sim.kube.patch import JsonPatchError, json_patch, merge_patch
from bot.sim.kube.resources import RESOURCE_TYPES, ResourceType
from bot.sim.kube.schema import CrdSchema, default_crd_dir, load_crd_schemas, prune, schema_errors
from bot.sim.kube.sim import BOOKMARK_INTERVAL, DEFAULT_TOKEN, KubeSim

__all__ = [
    "BOOKMARK_INTERVAL",
    "DEFAULT_TOKEN",
    "RESOURCE_TYPES",
    "ApiError",
    "CrdSchema",
    "JsonPatchError",
    "KubeSim",
    "ResourceType",
    "default_crd_dir",
    "json_patch",
    "load_crd_schemas",
    "merge_patch",
    "prune",
    "schema_errors",
]
