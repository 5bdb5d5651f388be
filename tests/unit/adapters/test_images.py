"""Setting a stable image back in a GitOps directory (bot.adapters._images), on files in
tmp_path.

Aspects under test:

- image references split into repository, tag and digest (a registry port is not a tag);
- kustomization.yaml: the entry named (or newName'd) for the repository gets the tag, or
  the digest with newTag dropped (and the reverse); a missing key is inserted under the
  entry's indentation; flow-style entries; a tag YAML would read as a number is quoted;
  comments, quoting and the other entries stay byte for byte;
- manifests: every `image:` of the repository in every document of every YAML file under
  the path, quoting kept; files that are not YAML (templates) are skipped; a symlink is
  not followed out of the repository;
- refusals (ImageNotSet, nothing written): no tag or digest, the image already set, no
  matching entry or field (the message lists what was tried), a path outside the root.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.adapters._images import ImageNotSet, ImageRef, parse_image, set_image

ROUTER = "registry.example.com/payment-router"
DIGEST = "sha256:" + "0f" * 32


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("nginx", ImageRef("nginx", None, None)),
        ("nginx:1.25", ImageRef("nginx", "1.25", None)),
        ("registry:5000/team/app", ImageRef("registry:5000/team/app", None, None)),
        ("registry:5000/team/app:2.0", ImageRef("registry:5000/team/app", "2.0", None)),
        (f"{ROUTER}@{DIGEST}", ImageRef(ROUTER, None, DIGEST)),
        (f"{ROUTER}:1.4@{DIGEST}", ImageRef(ROUTER, "1.4", DIGEST)),
    ],
)
def test_parse_image(ref: str, parsed: ImageRef) -> None:
    assert parse_image(ref) == parsed
    assert parsed.text == ref


KUSTOMIZATION = f"""\
# payment-router, production
resources: [rollout.yaml]
images:
- name: {ROUTER}   # the router
  newTag: '1.5.0'  # bumped by CI
- name: sidecar
  newName: registry.example.com/sidecar
  digest: {DIGEST}
- {{name: {ROUTER}-canary, newTag: "9"}}
"""


def test_kustomize_tag_set_and_everything_else_kept(tmp_path: Path) -> None:
    _write(tmp_path, {"svc/kustomization.yaml": KUSTOMIZATION, "svc/rollout.yaml": "kind: R\n"})
    edit = set_image(tmp_path, "svc", f"{ROUTER}:1.4.0")
    assert edit.files == ("svc/kustomization.yaml",) and edit.where == "kustomize images"
    assert (tmp_path / "svc/kustomization.yaml").read_text() == KUSTOMIZATION.replace(
        "'1.5.0'", "'1.4.0'"
    )
    assert (tmp_path / "svc/rollout.yaml").read_text() == "kind: R\n"


def test_kustomize_digest_replaces_the_tag_and_back(tmp_path: Path) -> None:
    _write(tmp_path, {"svc/kustomization.yml": KUSTOMIZATION})
    set_image(tmp_path, "svc", f"{ROUTER}@{DIGEST}")
    text = (tmp_path / "svc/kustomization.yml").read_text()
    assert text == KUSTOMIZATION.replace(
        "  newTag: '1.5.0'  # bumped by CI\n", f"  digest: {DIGEST}\n"
    )
    set_image(tmp_path, "svc", "registry.example.com/sidecar:1.10")  # matched by newName
    loaded = yaml.safe_load((tmp_path / "svc/kustomization.yml").read_text())
    assert loaded["images"][1] == {
        "name": "sidecar",
        "newName": "registry.example.com/sidecar",
        "newTag": "1.10",  # quoted: a plain 1.10 would read as the number 1.1
    }


def test_kustomize_flow_entry_gets_the_key_inserted(tmp_path: Path) -> None:
    _write(tmp_path, {"svc/kustomization.yaml": KUSTOMIZATION})
    set_image(tmp_path, "svc", f"{ROUTER}-canary@{DIGEST}")
    text = (tmp_path / "svc/kustomization.yaml").read_text()
    assert f"- {{name: {ROUTER}-canary, digest: {DIGEST}}}\n" in text


def test_kustomize_missing_tag_is_inserted_under_the_entry(tmp_path: Path) -> None:
    text = f"images:\n  - name: {ROUTER}  # no tag yet\n    newName: {ROUTER}\nresources: []\n"
    _write(tmp_path, {"svc/kustomization.yaml": text})
    set_image(tmp_path, "svc", f"{ROUTER}:1.4.0")
    assert (tmp_path / "svc/kustomization.yaml").read_text() == (
        f"images:\n  - name: {ROUTER}  # no tag yet\n    newTag: 1.4.0\n"
        f"    newName: {ROUTER}\nresources: []\n"
    )


MANIFEST = f"""\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
spec:
  template:
    spec:
      initContainers:
        - image: "{ROUTER}:1.5.0"   # migrations
      containers:
        - name: router
          image: {ROUTER}:1.5.0
        - name: proxy
          image: envoyproxy/envoy:v1.30
---
kind: Job
spec:
  template:
    spec:
      containers: [{{name: warm, image: '{ROUTER}:1.5.0'}}]
"""


def test_manifest_image_fields(tmp_path: Path) -> None:
    template = "image: {{ .Values.image }}\nkind: [\n"
    _write(
        tmp_path,
        {
            "svc/base/rollout.yaml": MANIFEST,
            "svc/chart.yaml": template,
            "svc/README.md": f"image: {ROUTER}:1.5.0\n",
            "svc/kustomization.yaml": "resources: [base/rollout.yaml]\n",
        },
    )
    edit = set_image(tmp_path, "svc", f"{ROUTER}:1.4.0")
    assert edit.files == ("svc/base/rollout.yaml",) and edit.where == "manifest image fields"
    assert (tmp_path / "svc/base/rollout.yaml").read_text() == MANIFEST.replace("1.5.0", "1.4.0")
    assert (tmp_path / "svc/chart.yaml").read_text() == template
    assert (tmp_path / "svc/README.md").read_text() == f"image: {ROUTER}:1.5.0\n"


def test_a_symlink_out_of_the_repository_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(f"image: {ROUTER}:1.5.0\n")
    root = tmp_path / "repo"
    (root / "svc").mkdir(parents=True)
    (root / "svc/rollout.yaml").symlink_to(outside)
    with pytest.raises(ImageNotSet, match="no YAML file under `svc`"):
        set_image(root, "svc", f"{ROUTER}:1.4.0")
    assert outside.read_text() == f"image: {ROUTER}:1.5.0\n"
    with pytest.raises(ImageNotSet, match="not a directory of the repository"):
        set_image(root, "../", f"{ROUTER}:1.4.0")


def test_refusals_write_nothing(tmp_path: Path) -> None:
    _write(tmp_path, {"svc/kustomization.yaml": KUSTOMIZATION, "svc/rollout.yaml": MANIFEST})
    with pytest.raises(ImageNotSet, match="names no tag or digest"):
        set_image(tmp_path, "svc", ROUTER)
    with pytest.raises(ImageNotSet, match="already sets"):
        set_image(tmp_path, "svc", f"{ROUTER}:1.5.0")
    with pytest.raises(ImageNotSet) as caught:
        set_image(tmp_path, "svc", "registry.example.com/other:1.0")
    assert caught.value.message == (
        "could not set the stable image back: svc/kustomization.yaml has no `images:` entry "
        "named `registry.example.com/other`; no YAML file under `svc` has an `image:` of "
        "`registry.example.com/other`"
    )
    assert (tmp_path / "svc/kustomization.yaml").read_text() == KUSTOMIZATION
    assert (tmp_path / "svc/rollout.yaml").read_text() == MANIFEST
