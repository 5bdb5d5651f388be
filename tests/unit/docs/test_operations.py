"""docs/operations.md, the operator's guide, held to the code and the manifests.

Aspects:
- every `rollbot …` command the guide names (inline code, shell blocks, a manifest's
  `command:`) parses with rollbot's own command line, each `--option` it gives included;
  the check is not vacuous (the commands an operator needs are there, a misspelt one fails);
- every message `/readyz` can give, read from the code that makes them (the readiness
  check, the schema check, the Slack token check, the leader lease), is in the guide as a
  whole code span; a message the code produces matches one of those read, and a new source
  of problems in the readiness check is noticed;
- every alert of deploy/prometheus/rollbot-self.rules.yaml has its section, and every
  section names an alert there;
- every secret setting (each `SecretStr`, and the database URL) and every Secret key the
  rendered overlays read is in the guide's rotation section;
- the manifests in the guide: every YAML block parses; the Job and the Pod validate with
  `kubernetes-validate --strict` for the supported Kubernetes versions; the overlay example
  renders with its image and catalog; the Socket Mode patch renders over each overlay into
  a pod that configures itself with the app token and no signing secret;
- every link into the guide or README names a heading there, and README links the guide.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from alembic.script import ScriptDirectory
from pydantic import BaseModel, SecretStr

from bot.cli import main
from bot.core.errors import PermanentError, TemporaryError
from bot.runtime.leader import Leadership, Role
from bot.runtime.slack_token import SlackTokenCheck
from bot.settings import Settings, check_config, load_settings
from bot.settings.sources import dict_value_of, model_of
from bot.store.migrate import alembic_config, head_revision, schema_problem
from tests.unit.deploy.kustomize import (
    DEPLOY,
    KUBE,
    OVERLAYS,
    REPO,
    SUPPORTED_KUBERNETES,
    deploy_tool,
    env_of,
    kustomize,
    lay_out,
    one,
    render,
    secret_keys_read,
    secret_value,
)

GUIDE = REPO / "docs" / "operations.md"
TEXT = GUIDE.read_text()


# -- reading the guide -----------------------------------------------------------------------

FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.M | re.S)


def fenced(language: str | None = None) -> list[str]:
    """The fenced code blocks (of `language`), their indentation removed."""
    blocks = []
    for m in FENCE.finditer(TEXT):
        if language is None or m.group(2) == language:
            indent = len(m.group(1))
            blocks.append("\n".join(line[indent:] for line in m.group(3).splitlines()))
    return blocks


def spans(text: str = TEXT) -> list[str]:
    """The inline code spans outside the fenced blocks, their line breaks made spaces."""
    prose = FENCE.sub("", text)
    return [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose)]


def section(title: str) -> str:
    """The text of the `## title` section, up to the next `## `."""
    start = TEXT.index(f"\n## {title}\n")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start : end if end != -1 else None]


def yaml_docs() -> list[dict[str, Any]]:
    return [d for block in fenced("yaml") for d in yaml.safe_load_all(block) if d]


# -- rollbot's commands ----------------------------------------------------------------------

#: What may come right before a command: nothing, a separator, `--` (kubectl exec), `env`.
COMMAND_FOLLOWS = {"--", "|", "&&", ";", "env"}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
#: Where a command ends: a pipe, a separator, a redirection, a comment.
COMMAND_ENDS = {"|", "&&", ";", ">", "#"}


def commands_in(unit: str) -> Iterator[list[str]]:
    """The arguments of each `rollbot …` command in a line of shell or a code span: the
    word `rollbot` where a command starts (not `-n rollbot`, a path, or a word in a message)."""
    words = unit.split()
    for i, word in enumerate(words):
        before = words[i - 1] if i else None
        starts = before is None or before in COMMAND_FOLLOWS or ASSIGNMENT.match(before)
        if word != "rollbot" or not starts or i + 1 == len(words):
            continue
        args = []
        for arg in shlex.split(" ".join(words[i + 1 :])):
            if arg in COMMAND_ENDS:
                break
            args.append(arg)
        if args[:1] != ["…"]:  # `rollbot …`: any command
            yield args


#: How the guide says a command does not exist: "There is no `rollbot db downgrade`".
ABSENT = re.compile(r"\bno `rollbot ([^`]+)`")


def absent_commands() -> list[list[str]]:
    return [shlex.split(" ".join(m.split())) for m in ABSENT.findall(FENCE.sub("", TEXT))]


def named_commands() -> list[list[str]]:
    """Every command the guide gives, but those it says do not exist."""
    absent = absent_commands()
    found = [a for unit in spans() for a in commands_in(unit) if a not in absent]
    for block in fenced("sh"):
        for line in block.splitlines():
            found += list(commands_in(line))
    for doc in yaml_docs():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", spec)
        for container in pod.get("containers", []):
            command = [*container.get("command", []), *container.get("args", [])]
            if command[:1] == ["rollbot"]:
                found.append(command[1:])
    return found


def parses(args: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    """None when rollbot's command line takes `args` (and every `--option` in them), else
    why not. Asked for the help of the command `args` reach, so nothing runs."""
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    out, err = capsys.readouterr()
    if exited.value.code != 0:
        return err.strip().splitlines()[-1]
    unknown = [a for a in args if a.startswith("--") and a.split("=")[0] not in out]
    return f"unknown option {unknown}" if unknown else None


def test_every_rollbot_command_in_the_guide_parses(capsys: pytest.CaptureFixture[str]) -> None:
    named = named_commands()
    refused = {" ".join(a): why for a in named if (why := parses(a, capsys))}
    assert not refused, refused
    said = {" ".join(a[:2]) for a in named}
    for needed in ("check-config", "db upgrade", "audit verify", "audit export"):
        assert any(s.startswith(needed) for s in said), (needed, said)


def test_every_command_the_guide_says_is_missing_is(capsys: pytest.CaptureFixture[str]) -> None:
    absent = absent_commands()
    assert ["db", "downgrade"] in absent
    assert all(parses(args, capsys) is not None for args in absent)


def test_a_misspelt_command_would_be_caught(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(commands_in("kubectl -n rollbot exec deploy/rollbot -- rollbot db migrate")) == [
        ["db", "migrate"]
    ]
    assert parses(["db", "migrate"], capsys) is not None
    assert parses(["audit", "verify", "--konfig", "x"], capsys) is not None
    assert parses(["audit", "verify", "--config", "x"], capsys) is None


# -- /readyz ---------------------------------------------------------------------------------

#: Where /readyz's problems are made: (file, the function or class that makes them).
READINESS_SOURCES = (
    ("bot/wiring/rollbot.py", "readiness_problems"),
    ("bot/store/migrate.py", "schema_problem"),
    ("bot/runtime/slack_token.py", "SlackTokenCheck"),
    ("bot/runtime/leader.py", "problem"),
)
#: What readiness_problems appends besides its own literals: the other sources' answers.
DELEGATED = {"schema", "standby", "self.slack_token.problem"}


def _named(tree: ast.AST, name: str) -> ast.AST:
    for node in ast.walk(tree):
        kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        if isinstance(node, kinds) and node.name == name:
            return node
    raise LookupError(name)


def _template(node: ast.expr) -> str | None:
    """A message as a regular expression (each `{…}` a word or a `<placeholder>`), or None
    when `node` is no string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(re.escape(str(value.value)))
            else:
                parts.append(r"(?:<[^<>]+>|[\w.-]+)")
        return "".join(parts)
    return None


def readiness_templates() -> list[str]:
    templates: list[str] = []
    for path, name in READINESS_SOURCES:
        node = _named(ast.parse((REPO / path).read_text()), name)
        for sub in ast.walk(node):
            value: ast.expr | None = None
            if isinstance(sub, ast.Return):
                value = sub.value
            elif isinstance(sub, ast.Assign | ast.AnnAssign):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                if any(ast.unparse(t) == "self.problem" for t in targets):
                    value = sub.value
            elif isinstance(sub, ast.Call) and ast.unparse(sub.func) == "problems.append":
                (value,) = sub.args
                if _template(value) is None:
                    assert ast.unparse(value) in DELEGATED, (
                        f"{path}: readiness_problems appends {ast.unparse(value)}, a source "
                        "of /readyz problems this test does not read: add it to "
                        "READINESS_SOURCES and the guide"
                    )
            if value is not None and (template := _template(value)) is not None:
                templates.append(template)
    return templates


def test_every_readyz_message_is_in_the_guide() -> None:
    templates = readiness_templates()
    assert len(templates) >= 7, templates
    listed = spans(section("What `/readyz` says"))
    missing = [t for t in templates if not any(re.fullmatch(t, s) for s in listed)]
    assert not missing, missing


async def test_the_messages_read_are_those_the_code_gives() -> None:
    """The reading above is not vacuous: each message the code gives fits one read."""
    oldest = list(ScriptDirectory.from_config(alembic_config()).walk_revisions())[-1].revision
    given = [schema_problem(None), schema_problem(oldest) if oldest != head_revision() else None]

    async def refused() -> str:
        raise PermanentError("invalid_auth")

    async def unreachable() -> str:
        raise TemporaryError("connection refused")

    for probe in (refused, unreachable):
        check = SlackTokenCheck(probe, first_wait=1, retry_initial=60)
        given.append(check.problem)
        await check.start()
        given.append(check.problem)
        await check.close()
    leadership = Leadership(object())
    leadership.role = Role.LOST
    given.append(await leadership.problem())
    given.append(f"database: {ConnectionRefusedError.__name__}")
    templates = readiness_templates()
    for message in filter(None, given):
        assert any(re.fullmatch(t, message) for t in templates), message


# -- rollbot's own alerts ----------------------------------------------------------------------


def test_every_self_alert_has_its_section() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rollbot-self.rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    headings = set(re.findall(r"^### (\S+)$", section("rollbot's own alerts"), re.M))
    assert alerts, rules
    assert headings == alerts


# -- secrets -------------------------------------------------------------------------------------


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def secret_settings(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if _is_secret(field.annotation):
            yield path
        elif (inner := model_of(field.annotation)) is not None:
            yield from secret_settings(inner, path + ".")
        elif (entry := model_of(dict_value_of(field.annotation))) is not None:
            yield from secret_settings(entry, f"{path}.<name>.")  # the catalog's services


def test_every_secret_setting_has_its_rotation() -> None:
    found = set(secret_settings())
    assert {"slack.bot_token", "services.<name>.pagerduty.routing_key"} <= found, found
    rotation = " ".join(spans(section("Rotate secrets")))
    missing = [s for s in sorted(found | {"database.url"}) if s not in rotation]
    assert not missing, missing


def test_every_secret_key_the_manifests_read_has_its_rotation() -> None:
    keys: dict[str, str] = {}
    for overlay in OVERLAYS:
        keys.update(secret_keys_read(render(overlay)))
    rotation = section("Rotate secrets")
    generic = {k: re.sub(r"payment-router$", "<name>", k) for k in keys}
    missing = [k for k, g in generic.items() if f"`{g}`" not in rotation]
    assert not missing, missing
    variables = {re.sub(r"PAYMENT_ROUTER", "<NAME>", v) for v in keys.values()}
    assert not [v for v in variables if v not in rotation]


# -- manifests -----------------------------------------------------------------------------------


def test_every_yaml_block_parses() -> None:
    for block in fenced("yaml"):
        assert list(yaml.safe_load_all(block)), block


def test_the_guides_job_and_pod_validate(tmp_path: Path) -> None:
    objects = [d for d in yaml_docs() if d.get("kind") in ("Job", "Pod")]
    assert {d["kind"] for d in objects} == {"Job", "Pod"}
    for doc in objects:
        assert doc["metadata"]["namespace"] == "rollbot"
        labels = doc["spec"].get("template", {}).get("metadata", {}).get("labels", {})
        assert labels.get("app.kubernetes.io/name") != "rollbot"  # not the Service's pods
    path = tmp_path / "guide.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    versions = [a for v in SUPPORTED_KUBERNETES for a in ("-k", f"{v}.0")]
    done = subprocess.run(
        [deploy_tool("kubernetes-validate"), "--strict", *versions, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _overlay_of_own(tmp_path: Path, **fields: Any) -> Path:
    """A kustomization of one's own in `tmp_path`, made of `fields`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        **fields,
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return tmp_path


def _rendered(path: Path) -> list[dict[str, Any]]:
    done = kustomize(path)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_overlay_example_renders_with_its_image_and_catalog(tmp_path: Path) -> None:
    (example,) = [d for d in yaml_docs() if d.get("kind") == "Kustomization"]
    catalog = (KUBE / "base" / "rollbot.yaml").read_text() + "# ours\n"
    (tmp_path / "rollbot.yaml").write_text(catalog)
    ha = os.path.relpath(KUBE / "overlays" / "ha", tmp_path)
    docs = _rendered(_overlay_of_own(tmp_path, **{**example, "resources": [ha]}))
    (image,) = example["images"]
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{image['name']}:{image['newTag']}"
    config = [d for d in docs if d["kind"] == "ConfigMap" and "rollbot.yaml" in d["data"]]
    assert [c["data"]["rollbot.yaml"] for c in config] == [catalog]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_socket_mode_patch_gives_the_app_token_and_no_signing_secret(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (patched,) = [d for d in yaml_docs() if "patches" in d and "kind" not in d]
    target = os.path.relpath(KUBE / "overlays" / overlay, tmp_path)
    # The guide's components are relative to an overlay of one's own beside the shipped ones.
    components = [
        os.path.relpath(KUBE / "overlays" / "production" / c, tmp_path)
        for c in patched["components"]
    ]
    docs = _rendered(
        _overlay_of_own(
            tmp_path, resources=[target], components=components, patches=patched["patches"]
        )
    )
    env = env_of(docs)
    assert "ROLLBOT_SLACK__SIGNING_SECRET_FILE" not in env
    keys = secret_keys_read(docs)
    assert keys["slack-app-token"] == "ROLLBOT_SLACK__APP_TOKEN_FILE"
    secret = {k: secret_value(k) for k in keys}
    laid = lay_out(docs, tmp_path / "pod", secret)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    config = laid.path(env["ROLLBOT_CONFIG"])
    assert check_config(config, environ=laid.env) == []
    settings = load_settings(config, environ=laid.env)
    assert settings.slack.signing_secret is None
    assert settings.slack.app_token is not None


# -- links ---------------------------------------------------------------------------------------


def _slugs(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


LINK = re.compile(r"\]\(([^)#]*)#([^)]+)\)")


def test_every_link_names_a_heading() -> None:
    readme = (REPO / "README.md").read_text()
    ours, theirs = _slugs(TEXT), _slugs(readme)
    for target, anchor in LINK.findall(TEXT):
        assert anchor in {"": ours, "../README.md": theirs}[target], (target, anchor)
    into_guide = [a for target, a in LINK.findall(readme) if target == "docs/operations.md"]
    assert into_guide, "README links the guide"
    assert not [a for a in into_guide if a not in ours], into_guide


def test_slugs_are_read_as_github_makes_them() -> None:
    assert _slugs("## What `/readyz` says\n### The flag provider's tokens\n") == {
        "what-readyz-says",
        "the-flag-providers-tokens",
    }
