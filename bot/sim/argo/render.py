"""The manifests an Argo CD Application's source holds at a revision, as its repo server
renders them (the Argo CD sync loop sim's part of `kustomize build`).

Read from a real bare repository (`bot.sim.git.BareRepo`) at a commit:

* a directory with a ``kustomization.yaml`` (or ``.yml``, or ``Kustomization``) is the
  Kustomize source type: its ``resources:`` (files, or directories with a kustomization of
  their own), then its ``namespace:`` and ``images:`` (``newName``, ``newTag``, ``digest``
  replace the name, tag or digest of every container and init container image whose name
  matches, as ``kustomize edit set image`` writes them);
* any other directory is the Directory source type: every ``.yaml``, ``.yml`` and ``.json``
  file in it (not its subdirectories), each possibly holding several documents.

A source that cannot be rendered (no such path, YAML that does not parse, a resource that
is not there, a document without ``kind``) raises `ManifestError` with the reason, which the
sync loop reports the way Argo CD reports a manifest generation error.

Simplified: no Helm, no plugins, no other kustomize transformers (patches, generators,
commonLabels…).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.sim.git import BareRepo

__all__ = ["KUSTOMIZATION_FILES", "ManifestError", "Rendered", "render", "set_image"]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class ManifestError(Exception):
    """The source could not be rendered at that revision; the message says why."""


@dataclass
class Rendered:
    """What a source holds at a revision: its objects, and the source type Argo CD names."""

    source_type: str  # Kustomize | Directory
    objects: list[dict[str, Any]] = field(default_factory=list)


def _ls(repo: BareRepo, rev: str, path: str) -> list[tuple[str, str]] | None:
    """(type, name) of each entry of directory `path` at `rev` (None when not a directory)."""
    spec = f"{rev}:{path}" if path else f"{rev}:"
    kind = repo.run("cat-file", "-t", spec, check=False).strip()
    if kind != "tree":
        return None
    out = repo.run("ls-tree", spec)
    entries = []
    for line in out.splitlines():
        meta, name = line.split("\t", 1)
        entries.append((meta.split()[1], name))
    return entries


def _documents(text: str, where: str) -> list[dict[str, Any]]:
    try:
        if where.endswith(".json"):
            docs: list[Any] = [json.loads(text)]
        else:
            docs = list(yaml.safe_load_all(text))
    except (yaml.YAMLError, ValueError) as exc:
        raise ManifestError(f"failed to unmarshal {where}: {exc}") from None
    out = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
            raise ManifestError(f"{where}: Object 'Kind' is missing in '{json.dumps(doc)[:200]}'")
        out.append(doc)
    return out


def _read(repo: BareRepo, rev: str, path: str) -> str:
    text = repo.show(rev, path)
    if text is None:
        raise ManifestError(f"{path}: no such file or directory")
    return text


def _kustomization(repo: BareRepo, rev: str, path: str) -> str | None:
    entries = _ls(repo, rev, path) or []
    names = {name for kind, name in entries if kind == "blob"}
    return next((n for n in KUSTOMIZATION_FILES if n in names), None)


def _kustomize(repo: BareRepo, rev: str, path: str, file: str) -> list[dict[str, Any]]:
    where = posixpath.join(path, file)
    try:
        kustomization = yaml.safe_load(_read(repo, rev, where)) or {}
    except yaml.YAMLError as exc:
        raise ManifestError(f"failed to unmarshal {where}: {exc}") from None
    if not isinstance(kustomization, dict):
        raise ManifestError(f"{where}: a kustomization must be a mapping")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources") or []:
        target = posixpath.normpath(posixpath.join(path, str(resource)))
        if _ls(repo, rev, target) is not None:
            inner = _kustomization(repo, rev, target)
            if inner is None:
                raise ManifestError(
                    f"accumulating resources: '{target}' must be a directory "
                    "with a kustomization file"
                )
            objects.extend(_kustomize(repo, rev, target, inner))
            continue
        text = repo.show(rev, target)
        if text is None:
            raise ManifestError(
                f"accumulating resources: accumulation err='accumulating resources from "
                f"'{resource}': open {target}: no such file or directory'"
            )
        objects.extend(_documents(text, target))
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = namespace
    for image in kustomization.get("images") or []:
        if not isinstance(image, dict) or not image.get("name"):
            raise ManifestError(f"{where}: an images entry needs a name: {image!r}")
        for obj in objects:
            _set_images(obj, image)
    return objects


def _split(ref: str) -> tuple[str, str, str]:
    """`registry/name:tag@digest` → (name, ":tag" or "", "@digest" or "")."""
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon:]
    return name, tag, f"@{digest}" if digest else ""


def set_image(ref: str, image: dict[str, Any]) -> str:
    """`ref` with one kustomize `images:` entry applied (unchanged when its name differs)."""
    name, tag, digest = _split(ref)
    if name != image["name"]:
        return ref
    if image.get("newName"):
        name = str(image["newName"])
    if image.get("digest"):
        tag, digest = "", f"@{image['digest']}"
    elif image.get("newTag") is not None:
        tag, digest = f":{image['newTag']}", ""
    return name + tag + digest


def _set_images(obj: dict[str, Any], image: dict[str, Any]) -> None:
    pod = (((obj.get("spec") or {}).get("template") or {}).get("spec")) or {}
    for key in ("containers", "initContainers"):
        for container in pod.get(key) or []:
            if isinstance(container, dict) and isinstance(container.get("image"), str):
                container["image"] = set_image(container["image"], image)


def render(repo: BareRepo, rev: str, path: str) -> Rendered:
    """The objects under `path` at commit `rev` (see the module). ManifestError if none can
    be made."""
    path = posixpath.normpath(path.strip("/")) if path.strip("/") else ""
    if path == ".":
        path = ""
    entries = _ls(repo, rev, path)
    if entries is None:
        raise ManifestError(f"{path or '.'}: app path does not exist")
    kustomization = _kustomization(repo, rev, path)
    if kustomization is not None:
        return Rendered("Kustomize", _kustomize(repo, rev, path, kustomization))
    objects: list[dict[str, Any]] = []
    for kind, name in sorted(entries, key=lambda e: e[1]):
        if kind == "blob" and name.endswith((".yaml", ".yml", ".json")):
            where = posixpath.join(path, name)
            objects.extend(_documents(_read(repo, rev, where), where))
    return Rendered("Directory", objects)
