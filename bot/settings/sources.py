"""The sources of setting values: the YAML file, the environment and ``*_FILE`` secret
files, merged into one mapping by `gather` before any validation.

Where values come from, later wins:

1. the defaults of the models (`bot.settings.sections`, `bot.settings.catalog`; each field
   says why it has its default);
2. one YAML file: the ``path`` argument, else ``$ROLLBOT_CONFIG``, else ``./rollbot.yaml``
   if it exists, else nothing. An explicit setting beats the implicit default, so in a
   container ``ROLLBOT_CONFIG=/etc/rollbot/rollbot.yaml`` is never shadowed by a stray file
   in the working directory;
3. environment variables ``ROLLBOT_<SECTION>__<KEY>[__<KEY>…]``.

How environment variable names map to keys:

- ``__`` separates levels, a single ``_`` belongs to the key, names are case-insensitive:
  ``ROLLBOT_SLACK__BOT_TOKEN`` → ``slack.bot_token``;
  ``ROLLBOT_SERVICES__PAYMENT_ROUTER__OWNERS__SLACK_USERGROUP`` →
  ``services.payment-router.owners.slack_usergroup``.
- Service names are lowercase letters, digits and dashes (like the Kubernetes names they
  stand for), so the ``_`` of a variable maps back to ``-`` without ambiguity:
  ``PAYMENT_ROUTER`` → ``payment-router``. A name not yet in the catalog adds a service.
- ``ROLLBOT_<…>_FILE`` reads the value from a file (a mounted Kubernetes Secret), trailing
  newline stripped: ``ROLLBOT_SLACK__BOT_TOKEN_FILE=/var/run/secrets/rollbot/bot-token``.
  Setting both ``X`` and ``X_FILE`` is an error.
- Lists: JSON (``["payments","fx"]``) or comma-separated (``payments,fx``). A whole
  mapping: JSON (``ROLLBOT_SERVICES__FX_RATES__SLO='{"error_rate": 0.01}'``).
- An empty value means null (unsets an optional key).
- ``ROLLBOT_CONFIG`` and variables without ``__`` after the prefix (``ROLLBOT_REQUIRE_PEERS``)
  are not settings. An unknown key is an error, in the environment as in the YAML.

Secrets (every ``SecretStr`` field) come only from the environment or files: a secret in
the YAML is an error, and so is a database URL with a password in it. ``SecretStr`` keeps
them out of ``repr``/``str``/logs; the database URL is left out of ``repr`` too.

The sources are merged here rather than with pydantic-settings' sources because those read
``os.environ`` directly, cannot map dashed service names, and stop at the first failing
source instead of listing every problem: `gather` records each problem and goes on.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, SecretStr

from bot.settings.problems import ConfigProblem
from bot.settings.root import Settings

ENV_PREFIX = "ROLLBOT_"
CONFIG_ENV = "ROLLBOT_CONFIG"
DEFAULT_CONFIG_FILE = "rollbot.yaml"
FILE_SUFFIX = "_file"


@dataclass
class Gathered:
    """What the sources hold, merged: the values as written, the problems met reading them,
    which environment variable set each key path, and the YAML file read (if any)."""

    data: dict[str, Any] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    origins: dict[tuple[str, ...], str] = field(default_factory=dict)
    config_path: Path | None = None


def _unwrap(annotation: Any) -> Any:
    """`X | None` → X, `Annotated[X, …]` → X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``X``, ``X | None``, ``Annotated[X, …]``), or None."""
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def dict_value_of(annotation: Any) -> Any | None:
    """The value type of a field that holds a ``dict`` (the catalog's services), or None."""
    inner = _unwrap(annotation)
    if get_origin(inner) is dict:
        return get_args(inner)[1]
    return None


def _is_secret(annotation: Any) -> bool:
    return _unwrap(annotation) is SecretStr


def env_name(keys: Iterable[str]) -> str:
    """The environment variable that sets key path `keys` (``ROLLBOT_SLACK__BOT_TOKEN``)."""
    return ENV_PREFIX + "__".join(k.upper().replace("-", "_") for k in keys)


def _config_file(
    path: str | Path | None, environ: Mapping[str, str]
) -> tuple[Path | None, ConfigProblem | None]:
    if path is not None:
        chosen = Path(path)
    elif environ.get(CONFIG_ENV):
        chosen = Path(environ[CONFIG_ENV])
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        return Path(DEFAULT_CONFIG_FILE).resolve(), None
    else:
        return None, None
    if not chosen.is_file():
        how = "" if path is not None else f" (from {CONFIG_ENV})"
        return None, ConfigProblem(str(chosen), f"config file not found{how}")
    return chosen.resolve(), None


def _read_yaml(path: Path, out: Gathered) -> None:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        out.problems.append(ConfigProblem(str(path), f"cannot read: {exc.strerror}"))
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        out.problems.append(ConfigProblem(str(path), f"not valid YAML{where}: {problem}"))
        return
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        out.problems.append(
            ConfigProblem(str(path), f"must be a mapping of sections, not {type(loaded).__name__}")
        )
        return
    out.data = loaded
    _reject_yaml_secrets(out)


def _reject_yaml_secrets(out: Gathered) -> None:
    _reject_secrets_in(Settings, out.data, (), out)
    db = out.data.get("database")
    if isinstance(db, dict) and isinstance(db.get("url"), str):
        try:
            password = urlsplit(db["url"]).password
        except ValueError:
            password = None
        if password:
            del db["url"]
            out.problems.append(
                ConfigProblem(
                    "database.url",
                    "contains a password: secrets must come from the environment "
                    "(ROLLBOT_DATABASE__URL) or a file (ROLLBOT_DATABASE__URL_FILE)",
                )
            )


def _reject_secrets_in(
    model: type[BaseModel], values: dict[str, Any], path: tuple[str, ...], out: Gathered
) -> None:
    """Every secret field, at any depth (a service's PagerDuty routing key too), is removed
    from the YAML's values and reported: it must come from the environment or a file."""
    for key, finfo in model.model_fields.items():
        value = values.get(key)
        if value is None:
            continue
        keys = (*path, key)
        if _is_secret(finfo.annotation):
            del values[key]  # never let it reach the model
            env = env_name(keys)
            out.problems.append(
                ConfigProblem(
                    ".".join(keys),
                    f"secrets must come from the environment ({env}) "
                    f"or a file ({env}_FILE), not the YAML file",
                )
            )
        elif (sub := model_of(finfo.annotation)) is not None and isinstance(value, dict):
            _reject_secrets_in(sub, value, keys, out)
        elif (entry := model_of(dict_value_of(finfo.annotation))) is not None and isinstance(
            value, dict
        ):
            for name, item in value.items():
                if isinstance(item, dict):
                    _reject_secrets_in(entry, item, (*keys, str(name)), out)


def _resolve_env(segments: list[str]) -> tuple[list[str], Any, bool] | ConfigProblem:
    """Walk the model along `segments`: (keys, annotation at the end, read from file)."""
    annotation: Any = Settings
    keys: list[str] = []
    from_file = False
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        model = model_of(annotation)
        value_type = dict_value_of(annotation)
        if not segment:
            return ConfigProblem(".".join(keys) or "(root)", "empty key (three '_' in a row?)")
        if model is not None:
            fields = model.model_fields
            base = segment.removesuffix(FILE_SUFFIX)
            if segment in fields:
                keys.append(segment)
                annotation = fields[segment].annotation
            elif last and segment.endswith(FILE_SUFFIX) and base in fields:
                keys.append(base)
                annotation = fields[base].annotation
                from_file = True
            else:
                known = ", ".join(sorted(fields))
                return ConfigProblem(
                    ".".join([*keys, segment]), f"unknown key; known keys: {known}"
                )
        elif value_type is not None:
            keys.append(segment.replace("_", "-"))
            annotation = value_type
        else:
            return ConfigProblem(".".join(keys), f"is a single value, it has no key {segment!r}")
    return keys, annotation, from_file


def _convert(raw: str, annotation: Any) -> Any:
    if raw.strip() == "":
        return None
    inner = _unwrap(annotation)
    if get_origin(inner) is list:
        if raw.lstrip().startswith("["):
            return json.loads(raw)
        return [item.strip() for item in raw.split(",") if item.strip()]
    if model_of(inner) is not None or get_origin(inner) is dict:
        return json.loads(raw)
    return raw


def _apply_env(environ: Mapping[str, str], out: Gathered) -> None:
    names = sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX) :]
    )
    for name in names:
        resolved = _resolve_env(name[len(ENV_PREFIX) :].lower().split("__"))
        if isinstance(resolved, ConfigProblem):
            out.problems.append(
                ConfigProblem(resolved.key_path, f"{resolved.message} (from {name})")
            )
            continue
        keys, annotation, from_file = resolved
        dotted = ".".join(keys)
        raw = environ[name]
        if from_file:
            try:
                raw = Path(raw).read_text(encoding="utf-8").strip()
            except OSError as exc:
                out.problems.append(
                    ConfigProblem(dotted, f"cannot read {raw!r} (from {name}): {exc.strerror}")
                )
                continue
            if not raw:
                out.problems.append(ConfigProblem(dotted, f"file {environ[name]!r} is empty"))
                continue
        try:
            value = _convert(raw, annotation)
        except json.JSONDecodeError as exc:
            out.problems.append(ConfigProblem(dotted, f"{name} is not valid JSON: {exc.msg}"))
            continue
        path = tuple(keys)
        if path in out.origins:
            out.problems.append(
                ConfigProblem(dotted, f"set by both {out.origins[path]} and {name}; keep one")
            )
            continue
        out.origins[path] = name
        target = out.data
        for key in keys[:-1]:
            child = target.get(key)
            if child is None:
                child = target[key] = {}
            elif not isinstance(child, dict):
                out.problems.append(ConfigProblem(key, f"is not a mapping, cannot apply {name}"))
                break
            target = child
        else:
            target[keys[-1]] = value


def gather(path: str | Path | None, environ: Mapping[str, str]) -> Gathered:
    """Read the config file (chosen from `path`, ``$ROLLBOT_CONFIG``, ``./rollbot.yaml``)
    and apply `environ` over it; every problem met is recorded, none raised."""
    out = Gathered()
    config_path, problem = _config_file(path, environ)
    if problem is not None:
        out.problems.append(problem)
    if config_path is not None:
        out.config_path = config_path
        _read_yaml(config_path, out)
    _apply_env(environ, out)
    return out
