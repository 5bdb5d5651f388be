"""What the deploy tests share: the manifests of deploy/kubernetes as `kubectl kustomize`
renders them, the pod of a rendered Deployment laid out on disk as the kubelet would, the
Secret keys the manifests read and the ones they document, the CRD schemas as JSON Schema,
and the tools of the deploy venv (`make deploy-tools`).

`kubectl` is a real peer (the machine image has it): without it these tests skip, and fail
under ROLLBOT_REQUIRE_PEERS=1. So do the deploy tools, looked for in
``$ROLLBOT_DEPLOY_TOOLS``, then ``.venv-deploy/bin`` of this checkout.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from bot.sim.kube import default_crd_dir
from tests.plugins.fixtures import FIXTURES
from tests.plugins.peers import require_peer

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
OVERLAYS = ("single", "ha")
COMPONENTS = tuple(sorted(p.name for p in (KUBE / "components").iterdir() if p.is_dir()))
SUPPORTED_KUBERNETES = ("1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35")
"""The Kubernetes minor versions the manifests are validated against (README, Deploying)."""

SECRET_MOUNT = "/var/run/secrets/rollbot"
SECRET_NAME = "rollbot-secrets"

Doc = dict[str, Any]


# -- rendering -----------------------------------------------------------------------------


def kubectl() -> str:
    binary = os.environ.get("ROLLBOT_KUBECTL") or shutil.which("kubectl")
    require_peer("kubectl", binary is not None, "kubectl not found (ROLLBOT_KUBECTL)")
    assert binary is not None
    return binary


def kustomize(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@functools.cache
def _rendered(path: Path) -> tuple[Doc, ...]:
    done = kustomize(path)
    assert done.returncode == 0, f"kubectl kustomize {path}:\n{done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def render(overlay: str) -> list[Doc]:
    """The overlay's objects, as `kubectl apply -k` would send them (a copy to mutate)."""
    return copy.deepcopy(list(_rendered(KUBE / "overlays" / overlay)))


def render_with(
    workdir: Path, *, resources: Iterable[Path] = (), components: Iterable[Path] = ()
) -> list[Doc]:
    """A kustomization of our own in `workdir` (kustomize takes relative paths only)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(p, workdir) for p in resources],
                "components": [os.path.relpath(p, workdir) for p in components],
            }
        )
    )
    return list(_rendered(workdir))


def by_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def container(docs: Iterable[Doc]) -> Doc:
    (only,) = one(docs, "Deployment", "rollbot")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(docs: Iterable[Doc]) -> dict[str, str]:
    """The container's environment; every variable a plain value (secrets are files)."""
    env: dict[str, str] = {}
    for var in container(docs).get("env") or []:
        assert "valueFrom" not in var, f"{var['name']}: a secret comes from a file, not env"
        env[var["name"]] = var["value"]
    return env


def container_port(docs: Iterable[Doc], name: str) -> int:
    (port,) = [p for p in container(docs)["ports"] if p["name"] == name]
    return int(port["containerPort"])


# -- the Secret's keys ---------------------------------------------------------------------

FILE_VARIABLE = re.compile(r"^ROLLBOT_[A-Z0-9_]+_FILE$")


def secret_keys_read(docs: Iterable[Doc]) -> dict[str, str]:
    """{Secret key: the ROLLBOT_…_FILE variable that reads it} in a rendered Deployment."""
    out: dict[str, str] = {}
    for name, value in env_of(docs).items():
        if FILE_VARIABLE.match(name):
            assert value.startswith(SECRET_MOUNT + "/"), (name, value)
            out[value.removeprefix(SECRET_MOUNT + "/")] = name
    return out


_DOCUMENTED = re.compile(r"^#\s+([a-z0-9][a-z0-9-]*)\s+(ROLLBOT_[A-Z0-9_]+_FILE)\s")


def secret_keys_documented(path: Path) -> dict[str, str]:
    """{key: variable} of the `#   key   ROLLBOT_…_FILE   what` lines of a kustomization."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if m := _DOCUMENTED.match(line):
            out[m.group(1)] = m.group(2)
    return out


#: A value for every key the manifests read, shaped as rollbot checks it.
SECRET_VALUES = {
    "slack-bot-token": "xoxb-0000-test",
    "slack-app-token": "xapp-1-test",
    "database-url": "postgresql+psycopg://rollbot:s3cret@postgres.db.svc:5432/rollbot",
}


def secret_value(key: str) -> str:
    return SECRET_VALUES.get(key, f"test-{key}")


# -- the pod on disk -----------------------------------------------------------------------


@dataclass
class LaidOut:
    """A rendered pod's files under `root` (each mount at root/<mountPath>) and its
    environment with those paths rewritten to match."""

    root: Path
    env: dict[str, str]
    mounts: dict[str, str]  # mountPath -> volume name

    def path(self, in_pod: str) -> Path:
        return self.root / in_pod.lstrip("/")


def lay_out(docs: list[Doc], root: Path, secret: Mapping[str, str]) -> LaidOut:
    """Write what the kubelet would mount: ConfigMaps (whole, or their `items`, also
    projected), the Secret `secret` (its data, as files), empty dirs for emptyDir and
    PersistentVolumeClaim volumes."""
    pod = one(docs, "Deployment", "rollbot")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}

    def write(target: Path, relpath: str, text: str) -> None:
        path = target / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def write_configmap(target: Path, source: Doc) -> None:
        data = configmaps[source["name"]]["data"]
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            write(target, item["path"], data[item["key"]])

    mounts: dict[str, str] = {}
    for mount in container(docs)["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        mounts[mount["mountPath"]] = mount["name"]
        if "projected" in volume:
            for source in volume["projected"]["sources"]:
                write_configmap(target, source["configMap"])
        elif "configMap" in volume:
            write_configmap(target, volume["configMap"])
        elif "secret" in volume:
            assert volume["secret"]["secretName"] == SECRET_NAME
            for key, value in secret.items():
                write(target, key, value + "\n")
        else:
            assert "emptyDir" in volume or "persistentVolumeClaim" in volume, volume

    def moved(value: str) -> str:
        for mount_path in mounts:
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(root / value.lstrip("/"))
        return value

    env = {name: moved(value) for name, value in env_of(docs).items()}
    return LaidOut(root, env, mounts)


# -- CRD schemas ---------------------------------------------------------------------------

CRDS = {
    "Rollout": default_crd_dir() / "rollout-crd.yaml",
    "AnalysisTemplate": default_crd_dir() / "analysis-template-crd.yaml",
    "ServiceMonitor": FIXTURES / "crds" / "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": FIXTURES / "crds" / "monitoring.coreos.com_prometheusrules.yaml",
    "VirtualService": FIXTURES / "crds" / "networking.istio.io_virtualservices.yaml",
}
"""The custom resources the manifests and examples use, and their CRDs kept in the repo
(bot/sim/crds/SOURCES.md, tests/fixtures/SOURCES.md)."""


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes structural) schema → JSON Schema, pruning like the API server:
    an object with `properties` and no `x-kubernetes-preserve-unknown-fields` takes no other
    field (as `kubectl apply --validate=strict` refuses one)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(out.get("pattern"), str):
        out["pattern"] = _python_pattern(out["pattern"])
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _python_pattern(pattern: str) -> str:
    """A Go (RE2) pattern as Python's `re` takes it: inline flags after the `^`, which RE2
    allows (PrometheusRule's ``^(?i)(abort|warn)?$``), go first."""
    if m := re.match(r"\^(\(\?[a-zA-Z]+\))", pattern):
        return m.group(1) + "^" + pattern[m.end() :]
    return pattern


@functools.cache
def crd_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    """A validator for `kind` at `api_version` (group/version), from its CRD in the repo."""
    crd = yaml.safe_load(CRDS[kind].read_text())
    group, _, version = api_version.partition("/")
    assert crd["spec"]["group"] == group, (kind, api_version)
    assert crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    schema = to_json_schema(served["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are the API server's own business, whether a CRD's
    # schema lists them (`metadata: {type: object}`) or not (Istio's do not).
    schema["properties"] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        **schema["properties"],
    }
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator_cls.check_schema(schema)
    return validator_cls(schema)


def crd_errors(doc: Doc) -> list[str]:
    validator = crd_validator(doc["kind"], doc["apiVersion"])
    return [
        f"{doc['kind']}/{doc['metadata']['name']}: "
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


# -- the deploy venv's tools ---------------------------------------------------------------


def deploy_tool(name: str) -> str:
    """A tool of the deploy venv (checkov, kubernetes-validate)."""
    candidates = []
    if os.environ.get("ROLLBOT_DEPLOY_TOOLS"):
        candidates.append(Path(os.environ["ROLLBOT_DEPLOY_TOOLS"]))
    candidates.append(REPO / ".venv-deploy" / "bin")
    for folder in candidates:
        if (folder / name).is_file():
            return str(folder / name)
    require_peer(name, False, f"not in {', '.join(map(str, candidates))}: run make deploy-tools")
    raise AssertionError("unreachable")
