"""Setting a container image back in a GitOps directory, as a person would by hand: the
Tier 3 revert's fallback when `git revert` conflicts (`bot.adapters.git`).

    set_image(root, path, image)
        1. `<path>/kustomization.yaml` (or `.yml`): the `images:` entry whose `name` (or
           `newName`) is the image's repository gets `newTag` (or `digest` for an
           `…@sha256:…` image); the other of the two is dropped, `newName` set when it
           names another repository.
        2. otherwise every `image:` field in the YAML files under `path` whose repository
           is the image's gets the whole image.

The files are edited as text, never re-dumped: the YAML parser (`yaml.compose_all`) only
says where each value starts and ends, and exactly those characters are replaced (or a
line inserted or removed), so formatting, comments, key order and quoting stay as they
are. Each edited file is then loaded again with `yaml.safe_load_all`: every document must
still parse and the image must read back as the one asked, or nothing is written.

`ImageNotSet` (a PermanentError) says what was tried when neither applies. Synchronous
file I/O on small files: the git adapter runs it in a thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.core.errors import PermanentError

__all__ = ["ImageEdit", "ImageNotSet", "ImageRef", "parse_image", "set_image"]

KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml")
_SUFFIXES = (".yaml", ".yml")


class ImageNotSet(PermanentError):
    """Neither a kustomize `images:` entry nor a manifest `image:` field could be set."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """`registry[:port]/name[:tag][@digest]`, split."""

    repository: str
    tag: str | None
    digest: str | None

    @property
    def text(self) -> str:
        return (
            self.repository
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


def parse_image(ref: str) -> ImageRef:
    name, _, digest = ref.strip().partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:  # a colon after the last slash is the tag's (before it: a port)
        return ImageRef(name[:colon], name[colon + 1 :] or None, digest or None)
    return ImageRef(name, None, digest or None)


@dataclass(frozen=True, slots=True)
class ImageEdit:
    """What `set_image` wrote: the files (relative to the repository root) and where."""

    files: tuple[str, ...]
    where: str  # "kustomize images" | "manifest image fields"


def set_image(root: Path, path: str, image: str) -> ImageEdit:
    """Set `image` under `root/path` (see the module docstring); the files changed.
    ImageNotSet when nothing applies or the image is already set."""
    root = root.resolve()
    wanted = parse_image(image)
    if not wanted.repository or not (wanted.tag or wanted.digest):
        raise ImageNotSet(f"the stable image `{image}` names no tag or digest to set back")
    directory = _inside(root, root / path)
    if directory is None or not directory.is_dir():
        raise ImageNotSet(f"`{path}` is not a directory of the repository")
    tried: list[str] = []
    for name in KUSTOMIZATIONS:
        file = directory / name
        if not _plain_file(root, file):
            continue
        relative = file.relative_to(root).as_posix()
        text = file.read_text()
        edited = _kustomize(text, wanted, relative)
        if edited is None:
            tried.append(f"{relative} has no `images:` entry named `{wanted.repository}`")
            continue
        if edited == text:
            raise ImageNotSet(
                f"{relative} already sets `{wanted.repository}` to `{wanted.text}`: "
                f"there is no image to set back"
            )
        _check_kustomize(edited, wanted, relative)
        file.write_text(edited)
        return ImageEdit((relative,), "kustomize images")
    changed: dict[Path, str] = {}
    matched = False
    for file in _manifests(root, directory):
        text = file.read_text()
        try:
            edited, found = _manifest(text, wanted)
        except yaml.YAMLError:
            continue  # not YAML (a template): not ours to edit
        matched = matched or found
        if edited != text:
            _check_manifest(edited, wanted, file.relative_to(root).as_posix())
            changed[file] = edited
    if not changed:
        tried.append(
            f"no YAML file under `{path}` has an `image:` of `{wanted.repository}`"
            if not matched
            else f"every `image:` of `{wanted.repository}` under `{path}` is already `{image}`"
        )
        raise ImageNotSet("could not set the stable image back: " + "; ".join(tried))
    for file, edited in changed.items():
        file.write_text(edited)
    files = tuple(sorted(f.relative_to(root).as_posix() for f in changed))
    return ImageEdit(files, "manifest image fields")


# ── kustomization.yaml ────────────────────────────────────────────────────────────────


def _kustomize(text: str, wanted: ImageRef, relative: str) -> str | None:
    """`text` with the matching `images:` entry set; None when there is no such entry."""
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise ImageNotSet(f"{relative} is not valid YAML: {_first_line(err)}") from None
    if not isinstance(document, yaml.MappingNode):
        return None
    images = _get(document, "images")
    if not isinstance(images, yaml.SequenceNode):
        return None
    for entry in images.value:
        if not isinstance(entry, yaml.MappingNode):
            continue
        name, new_name = _scalar(_get(entry, "name")), _scalar(_get(entry, "newName"))
        if wanted.repository not in (name, new_name):
            continue
        edits = _Edits(text)
        if new_name is not None and new_name != wanted.repository:
            edits.set(entry, "newName", wanted.repository)
        if wanted.digest:
            edits.set(entry, "digest", wanted.digest)
            edits.drop(entry, "newTag")
        else:
            edits.set(entry, "newTag", wanted.tag or "")
            edits.drop(entry, "digest")
        return edits.apply()
    return None


def _check_kustomize(text: str, wanted: ImageRef, relative: str) -> None:
    loaded = _load_all(text, relative)
    entries = [
        e
        for doc in loaded
        if isinstance(doc, dict)
        for e in doc.get("images") or []
        if isinstance(e, dict) and wanted.repository in (e.get("name"), e.get("newName"))
    ]
    ok = bool(entries) and all(
        e.get("newName", e.get("name")) == wanted.repository
        and (
            (e.get("digest") == wanted.digest and "newTag" not in e)
            if wanted.digest
            else (e.get("newTag") == wanted.tag and "digest" not in e)
        )
        for e in entries
    )
    if not ok:
        raise ImageNotSet(
            f"setting `{wanted.text}` in {relative}'s `images:` did not read back as asked "
            f"(an unusual layout?): nothing was written"
        )


# ── manifests ─────────────────────────────────────────────────────────────────────────


def _manifests(root: Path, directory: Path) -> Iterator[Path]:
    for file in sorted(directory.rglob("*")):
        if file.suffix in _SUFFIXES and file.name not in KUSTOMIZATIONS and _plain_file(root, file):
            yield file


def _manifest(text: str, wanted: ImageRef) -> tuple[str, bool]:
    """`text` with every `image:` of the repository set; whether any was found."""
    edits = _Edits(text)
    found = False
    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        for value in _image_fields(document):
            if parse_image(value.value).repository != wanted.repository:
                continue
            found = True
            if value.value != wanted.text:
                edits.replace(value, wanted.text)
    return edits.apply(), found


def _image_fields(node: yaml.Node | None) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if _scalar(key) == "image" and isinstance(value, yaml.ScalarNode):
                yield value
            else:
                yield from _image_fields(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _image_fields(item)


def _check_manifest(text: str, wanted: ImageRef, relative: str) -> None:
    images = [
        image
        for doc in _load_all(text, relative)
        for image in _loaded_images(doc)
        if parse_image(image).repository == wanted.repository
    ]
    if not images or any(image != wanted.text for image in images):
        raise ImageNotSet(
            f"setting `{wanted.text}` in {relative} did not read back as asked: nothing was written"
        )


def _loaded_images(data: object) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from _loaded_images(value)
    elif isinstance(data, list):
        for item in data:
            yield from _loaded_images(item)


# ── text edits at the parser's marks ──────────────────────────────────────────────────


class _Edits:
    """Replacements of character ranges of `text`, applied from the end."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._edits: list[tuple[int, int, str]] = []

    def replace(self, node: yaml.ScalarNode, value: str) -> None:
        quote = node.style if node.style in ("'", '"') else ""
        if not quote and not isinstance(yaml.safe_load(value), str):
            quote = '"'  # a tag such as 1.10 must stay a string
        self._edits.append((node.start_mark.index, node.end_mark.index, quote + value + quote))

    def set(self, mapping: yaml.MappingNode, key: str, value: str) -> None:
        existing = _get(mapping, key)
        if isinstance(existing, yaml.ScalarNode):
            if existing.value != value:
                self.replace(existing, value)
            return
        if existing is not None:
            raise ImageNotSet(f"`{key}` is not a plain value")
        quoted = value if isinstance(yaml.safe_load(value), str) else f'"{value}"'
        if mapping.flow_style:  # {name: x, newTag: y}: before the closing brace
            end = mapping.end_mark.index - 1
            self._edits.append((end, end, f", {key}: {quoted}"))
            return
        first_key, first_value = mapping.value[0]
        at = self.text.find("\n", first_value.end_mark.index)
        indent = " " * first_key.start_mark.column
        if at < 0:
            self._edits.append((len(self.text), len(self.text), f"\n{indent}{key}: {quoted}\n"))
        else:
            self._edits.append((at + 1, at + 1, f"{indent}{key}: {quoted}\n"))

    def drop(self, mapping: yaml.MappingNode, key: str) -> None:
        for k, v in mapping.value:
            if _scalar(k) != key:
                continue
            if mapping.flow_style:  # {a: 1, key: 2}: from the comma before it (or after)
                before = self.text.rfind(",", mapping.start_mark.index, k.start_mark.index)
                if before >= 0:
                    self._edits.append((before, v.end_mark.index, ""))
                    continue
                after = self.text.find(",", v.end_mark.index, mapping.end_mark.index)
                if after < 0:
                    raise ImageNotSet(f"`{key}` is the only key of its entry: not removed")
                end = after + 1
                while self.text[end] in " \t":
                    end += 1
                self._edits.append((k.start_mark.index, end, ""))
                continue
            line_start = self.text.rfind("\n", 0, k.start_mark.index) + 1
            if self.text[line_start : k.start_mark.index].strip():
                raise ImageNotSet(f"`{key}` shares its line with another key: not removed")
            line_end = self.text.find("\n", v.end_mark.index)
            self._edits.append((line_start, len(self.text) if line_end < 0 else line_end + 1, ""))

    def apply(self) -> str:
        text = self.text
        # From the end; at one offset a removal before an insertion (the inserted line then
        # takes the removed one's place).
        for start, end, value in sorted(self._edits, key=lambda e: (e[0], e[1]), reverse=True):
            text = text[:start] + value + text[end:]
        return text


def _get(mapping: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(mapping, yaml.MappingNode):
        for k, v in mapping.value:
            if _scalar(k) == key:
                node: yaml.Node = v
                return node
    return None


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _load_all(text: str, relative: str) -> list[object]:
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        raise ImageNotSet(
            f"setting the image made {relative} invalid YAML ({_first_line(err)}): "
            f"nothing was written"
        ) from None


def _plain_file(root: Path, file: Path) -> bool:
    """A regular file inside the clone, not a symlink (which could lead out of it)."""
    return not file.is_symlink() and file.is_file() and _inside(root, file) is not None


def _inside(root: Path, path: Path) -> Path | None:
    """`path` resolved, when it stays inside `root` (a symlink out of the clone is not
    followed)."""
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(root.resolve()) else None


def _first_line(err: BaseException) -> str:
    return re.sub(r"\s+", " ", str(err)).strip()[:200]
