"""The runbook linter's front-matter rules: required keys, tiers, placeholders, catalog.

`lint_front_matter` checks the parsed YAML mapping at the top of a runbook (the keys a
runbook must carry, its tier list against the playbook, placeholders in its values, and,
given the service's catalog entry, that the two agree); each problem is reported at the
file line of the key it is about. `declared_windows` reads the tier windows the body's
headings are compared with. `FLAG_ROLES`, `REQUIRED_FLAGS`, `OWNER_KEYS` and
`TEMPLATE_KEYS` name the keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.runbook.text import MARKER_WORD, format_window, parse_window, placeholders
from bot.core.runbook.values import (
    PLAYBOOK,
    KeyPath,
    PlaybookTier,
    RunbookProblem,
    inside,
    playbook_tier,
)

FLAG_ROLES: tuple[str, ...] = ("release", "experiment", "circuit")
_FLAG_WHY = {
    "release": "the release toggle, which stays where it is during an incident",
    "experiment": "",
    "circuit": "the ops toggle Tier 2 sets to true",
}
REQUIRED_FLAGS: tuple[str, ...] = ("release", "circuit")
OWNER_KEYS: tuple[str, ...] = ("slack_usergroup", "pagerduty_escalation_policy")
TEMPLATE_KEYS: tuple[str, ...] = ("namespace", "rollout", "channel")
"""Keys only the template must show (a runbook may leave them to the catalog)."""

_SERVICE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def lint_front_matter(
    front_matter: Mapping[str, Any] | None,
    *,
    path: str,
    catalog_entry: Mapping[str, Any] | None = None,
    template: bool = False,
    key_lines: Mapping[KeyPath, int] | None = None,
) -> list[RunbookProblem]:
    """The front-matter and catalog rules alone."""
    at = _Locator(path, key_lines or {})
    if front_matter is None:
        return [
            at.problem(
                (),
                "no front matter: start the file with a `---` fenced YAML block holding "
                "service, owners, flags and tiers (see runbooks/TEMPLATE.md)",
            )
        ]
    problems = _required(front_matter, at, template=template)
    problems += _tiers(front_matter.get("tiers"), at)
    problems += _front_matter_placeholders(front_matter, at, template=template)
    if catalog_entry is not None and not template:
        problems += _catalog(front_matter, catalog_entry, at)
    return problems


@dataclass(frozen=True, slots=True)
class _Locator:
    path: str
    key_lines: Mapping[KeyPath, int]

    def line(self, key: KeyPath) -> int:
        for end in range(len(key), 0, -1):
            found = self.key_lines.get(key[:end])
            if found is not None:
                return found
        return 1

    def problem(self, key: KeyPath, message: str) -> RunbookProblem:
        return RunbookProblem(self.path, self.line(key), message)


def _text(value: Any) -> str | None:
    """A non-empty string value, else None."""
    return value if isinstance(value, str) and value.strip() else None


def _flag_key(value: Any) -> str | None:
    """A flag as written: its key, or the ``key`` of a flag-inventory mapping."""
    if isinstance(value, Mapping):
        return _text(value.get("key"))
    return _text(value)


def _required(fm: Mapping[str, Any], at: _Locator, *, template: bool) -> list[RunbookProblem]:
    problems = []
    service = fm.get("service")
    if _text(service) is None:
        problems.append(
            at.problem(("service",), "`service` is missing: the service's key in the catalog")
        )
    elif not template and not _SERVICE_NAME.match(str(service)) and not _is_angle(str(service)):
        problems.append(
            at.problem(
                ("service",),
                f"service {service!r} is not a catalog key: lowercase letters, digits and "
                "dashes, like 'payment-router'",
            )
        )

    owners = fm.get("owners")
    if not isinstance(owners, Mapping):
        problems.append(
            at.problem(
                ("owners",),
                "`owners` is missing: a mapping with slack_usergroup and/or "
                "pagerduty_escalation_policy (who may act)",
            )
        )
    elif template:
        problems += [
            at.problem(("owners",), f"owners.{key} is missing (the template shows every key)")
            for key in OWNER_KEYS
            if _text(owners.get(key)) is None
        ]
    elif all(_text(owners.get(key)) is None for key in OWNER_KEYS):
        problems.append(
            at.problem(
                ("owners",),
                "owners needs slack_usergroup and/or pagerduty_escalation_policy (who may act)",
            )
        )

    flags = fm.get("flags")
    if not isinstance(flags, Mapping):
        problems.append(
            at.problem(
                ("flags",),
                "`flags` is missing: a mapping with release and circuit (experiment optional)",
            )
        )
    else:
        needed = FLAG_ROLES if template else REQUIRED_FLAGS
        for role in FLAG_ROLES:
            value = flags.get(role)
            if value is None and role in needed:
                why = "the template shows every key" if template else _FLAG_WHY[role]
                problems.append(at.problem(("flags",), f"flags.{role} is missing ({why})"))
            elif value is not None and _flag_key(value) is None:
                problems.append(
                    at.problem(("flags", role), f"flags.{role} must be a flag key (a string)")
                )
        unknown = sorted(str(k) for k in flags if k not in FLAG_ROLES)
        problems += [
            at.problem(
                ("flags", key),
                f"flags.{key} is not a flag role; the roles are {', '.join(FLAG_ROLES)}",
            )
            for key in unknown
        ]

    if template:
        problems += [
            at.problem((), f"`{key}` is missing (the template shows every key)")
            for key in TEMPLATE_KEYS
            if _text(fm.get(key)) is None
        ]
    if fm.get("tiers") is None:
        problems.append(
            at.problem(
                (),
                "`tiers` is missing: list tiers 1, 2 and 3, each with a name and a time "
                "window (" + ", ".join(f"tier {t.tier} {t.window}" for t in PLAYBOOK) + ")",
            )
        )
    return problems


def _tiers(raw: Any, at: _Locator) -> list[RunbookProblem]:
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return [
            at.problem(
                ("tiers",),
                "tiers must be a list of {tier, name, time} mappings, one per tier 1, 2, 3",
            )
        ]
    problems = []
    seen: dict[int, int] = {}
    for index, item in enumerate(raw):
        key: KeyPath = ("tiers", index)
        if not isinstance(item, Mapping):
            problems.append(
                at.problem(key, f"tiers[{index}] must be a mapping {{tier, name, time}}")
            )
            continue
        number = item.get("tier")
        spec = playbook_tier(number)
        if spec is None:
            problems.append(
                at.problem(
                    (*key, "tier"),
                    f"tiers[{index}].tier is {number!r}: the playbook has tiers 1, 2 and 3",
                )
            )
            continue
        if spec.tier in seen:
            problems.append(
                at.problem((*key, "tier"), f"tier {spec.tier} is listed twice (tiers[{index}])")
            )
            continue
        seen[spec.tier] = index
        if _text(item.get("name")) is None:
            problems.append(
                at.problem(key, f"tier {spec.tier} has no name (e.g. name: {spec.name})")
            )
        problems += _tier_window(item.get("time"), spec, at, (*key, "time"))
    problems += [
        at.problem(
            ("tiers",),
            f"tier {spec.tier} ({spec.name}, {spec.window}) is missing from tiers",
        )
        for spec in PLAYBOOK
        if spec.tier not in seen
    ]
    return problems


def _tier_window(
    value: Any, spec: PlaybookTier, at: _Locator, key: KeyPath
) -> list[RunbookProblem]:
    if value is None:
        return [at.problem(key[:-1], f"tier {spec.tier} has no time window (time: {spec.window})")]
    window = parse_window(value) if isinstance(value, str) else None
    if window is None:
        return [
            at.problem(
                key,
                f"tier {spec.tier} time {value!r} is not a time window: write it like "
                f"'{spec.window}' (a range and a unit: s, min or h)",
            )
        ]
    if not inside(window, spec):
        return [
            at.problem(
                key,
                f"tier {spec.tier} time {value!r} ({format_window(*window)}) is outside the "
                f"playbook's {spec.window} for {spec.name}",
            )
        ]
    return []


def declared_windows(fm: Mapping[str, Any] | None) -> dict[int, tuple[float, float]]:
    """The tier windows the front matter declares, in seconds, by tier (the first entry
    of a tier that reads as a window; nothing for what does not)."""
    out: dict[int, tuple[float, float]] = {}
    raw = fm.get("tiers") if fm is not None else None
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return out
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        spec = playbook_tier(item.get("tier"))
        time = item.get("time")
        window = parse_window(time) if isinstance(time, str) else None
        if spec is not None and window is not None:
            out.setdefault(spec.tier, window)
    return out


def _catalog(fm: Mapping[str, Any], entry: Mapping[str, Any], at: _Locator) -> list[RunbookProblem]:
    service = _text(fm.get("service")) or "?"
    owners = _mapping(fm.get("owners"))
    flags = _mapping(fm.get("flags"))
    cat_owners = _mapping(entry.get("owners"))
    cat_pd = _mapping(entry.get("pagerduty"))
    cat_flags = _mapping(entry.get("flags"))
    # (front-matter key path, its value, catalog key, catalog value, compared when absent)
    pairs: list[tuple[KeyPath, str | None, str, str | None, bool]] = [
        (
            (key,),
            _text(fm.get(key)),
            key,
            _text(entry.get(key)),
            False,  # optional in the front matter: compared only when written
        )
        for key in ("namespace", "rollout", "channel")
    ]
    pairs += [
        (
            ("flags", role),
            _flag_key(flags.get(role)),
            f"flags.{role}",
            _flag_key(cat_flags.get(role)),
            True,
        )
        for role in FLAG_ROLES
    ]
    pairs.append(
        (
            ("owners", "slack_usergroup"),
            _text(owners.get("slack_usergroup")),
            "owners.slack_usergroup",
            _text(cat_owners.get("slack_usergroup")),
            True,
        )
    )
    pairs.append(
        (
            ("owners", "pagerduty_escalation_policy"),
            _text(owners.get("pagerduty_escalation_policy")),
            "pagerduty.escalation_policy_id",
            _text(cat_pd.get("escalation_policy_id")),
            True,
        )
    )
    problems = []
    for key, mine, cat_key, theirs, when_absent in pairs:
        if mine == theirs or (mine is None and not when_absent):
            continue
        dotted = ".".join(str(k) for k in key)
        said = f"says {mine!r}" if mine is not None else "has none"
        cat_said = f"says {theirs!r}" if theirs is not None else "has none"
        problems.append(
            at.problem(
                key,
                f"{dotted} disagrees with the catalog: the runbook {said}, "
                f"services.{service}.{cat_key} {cat_said}",
            )
        )
    return problems


def _front_matter_placeholders(
    fm: Mapping[str, Any], at: _Locator, *, template: bool
) -> list[RunbookProblem]:
    problems = []
    for key, value in _strings(fm, ()):
        if MARKER_WORD.search(value) or (not template and placeholders(value)):
            problems.append(
                at.problem(key, f"{_dotted(key)} is a placeholder ({value!r}): fill it in")
            )
    return problems


def _strings(value: Any, key: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, (*key, str(k)))
    elif isinstance(value, Sequence):
        for i, v in enumerate(value):
            yield from _strings(v, (*key, i))


def _dotted(key: KeyPath) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_angle(value: str) -> bool:
    stripped = value.strip()
    return stripped.startswith("<") and stripped.endswith(">")
