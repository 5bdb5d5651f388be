"""Linting a service runbook against the three-tier rollback playbook.

Pure: the caller reads the file, parses it with `bot.core.markdown.parse` (the same
markdown-it tokens the runbook page renders, so the linter and the page agree on what is a
heading, a code block, a link), parses the YAML of its front matter, and passes a callable
that says whether a relative link's target exists (`bot.runbooks` does all that for
``rollbot runbook lint``). Every problem carries the file line it is about: ``key_lines``
maps front-matter key paths to their lines; body lines come from the tokens' line maps.

The rules (the problems come back sorted by line):

    front matter   present (a ``---`` fenced YAML mapping at the top of the file);
                   ``service``, the catalog key (lowercase letters, digits, dashes);
                   ``owners`` with ``slack_usergroup`` and/or ``pagerduty_escalation_policy``;
                   ``flags`` with ``release`` and ``circuit`` (``experiment`` optional);
                   ``tiers``: exactly tiers 1, 2 and 3, each with a ``name`` and a ``time``
                   window ("0-60 s", "0–60 s", "30-120 min", "0 to 10 seconds") inside the
                   playbook's: tier 1 0–60 s, tier 2 0–10 s, tier 3 30–120 min
    catalog        when the service's catalog entry is given, the front matter agrees with
                   it on namespace, rollout and channel (when the front matter names them),
                   the three flags, the owners usergroup and the escalation policy; each
                   disagreement names both values
    body           a heading for each tier ("## Tier 1 — abort (0–60 s)", or a setext
                   heading), once; a window in a tier heading agrees with the playbook and
                   the front matter; each tier section (up to the next heading of the same
                   or a higher level) holds at least one command or step: a code span, a
                   fenced or indented code block or a numbered list item
    links          a relative link (``[text](../deploy/x.yaml)``, images and reference
                   definitions too) points at something that exists; URLs, ``#anchors``
                   and absolute paths are not checked
    placeholders   no ``TODO``, ``TBD``, ``FIXME`` or ``<fill me>`` anywhere (code included);
                   no ``<placeholder>`` in prose or in a front-matter value (in code,
                   ``<release SHA>`` is a command argument the responder fills in and is
                   fine)

``template=True`` (``runbooks/TEMPLATE.md``) allows ``<placeholders>`` (``<fill me>``
included) and skips the catalog, the service-name form and links with placeholders in
them, but requires every key a runbook may carry, so that a copy starts complete:
``service``, ``namespace``, ``rollout``, ``channel``, both owners keys, all three flags and
the tiers. ``TODO``/``TBD``/``FIXME`` are refused in the template too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from markdown_it.token import Token

from bot.core import markdown

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RunbookProblem:
    """One thing wrong with a runbook, at a line of its file (1-based)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class PlaybookTier:
    """One tier of the playbook and the time window it promises, in seconds."""

    tier: int
    name: str
    low_seconds: float
    high_seconds: float
    window: str  # as the playbook writes it


PLAYBOOK: tuple[PlaybookTier, ...] = (
    PlaybookTier(1, "abort", 0, 60, "0–60 s"),
    PlaybookTier(2, "circuit breaker", 0, 10, "0–10 s"),
    PlaybookTier(3, "full revert", 30 * 60, 120 * 60, "30–120 min"),
)
"""Tier 1 automatic/abort, Tier 2 circuit breaker, Tier 3 full revert (Git)."""

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
_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
}
_NUM = r"\d+(?:\.\d+)?"
_RANGE = (
    rf"(?P<low>{_NUM})\s*(?P<low_unit>[a-z]+)?\s*(?:-|–|—|to)\s*(?P<high>{_NUM})\s*(?P<unit>[a-z]+)"
)
_WINDOW = re.compile(rf"^\s*{_RANGE}\s*$", re.IGNORECASE)
_WINDOW_IN_TEXT = re.compile(rf"(?<![\w.]){_RANGE}\b", re.IGNORECASE)

_TIER_IN_HEADING = re.compile(r"\btier\s*([1-9])\b", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_MARKER_WORD = re.compile(r"\b(?:TODO|TBD|FIXME)\b")  # upper case: "to do" is prose
_FILL_ME = re.compile(r"<\s*fill[\s_-]*(?:me|in)\b[^<>\n]*>", re.IGNORECASE)
_ANGLE = re.compile(r"<(?=[^\s<>])([^<>\n]*?)(?<=\S)>")
_HTML_TAG = re.compile(r"^/?([a-z][a-z0-9]*)(\s[^<>]*)?/?$", re.IGNORECASE)
_HTML_TAG_NAMES = (
    "a abbr b br code dd del details div dl dt em h1 h2 h3 h4 h5 h6 hr i img ins kbd li ol p "
    "pre q s samp small span strong sub summary sup table tbody td th thead tr u ul var"
)
_HTML_TAGS = frozenset(_HTML_TAG_NAMES.split())


# ─── the entry points ───────────────────────────────────────────────────────────────────


def lint(
    front_matter: Mapping[str, Any] | None,
    body: str | markdown.Document,
    *,
    path: str,
    catalog_entry: Mapping[str, Any] | None = None,
    exists: Callable[[str], bool] | None = None,
    template: bool = False,
    body_line: int = 1,
    key_lines: Mapping[KeyPath, int] | None = None,
) -> list[RunbookProblem]:
    """Every problem of one runbook, in file order.

    `front_matter`: the parsed YAML mapping, or None when the file has none. `body`: the
    whole file parsed (`bot.core.markdown.parse`: the tokens the runbook page renders,
    with file lines), or the text after the closing ``---`` (the whole file without front
    matter) starting at file line `body_line`. `catalog_entry`: the service's catalog
    entry as plain data (the shape of ``services.<name>`` in rollbot.yaml, e.g.
    ``ServiceSettings.model_dump()``), None to skip the comparison. `exists`: says whether
    a relative link target (percent-decoded, without ``#fragment``; the caller resolves it
    against the runbook's directory) exists; None skips the link check. `template`: lint
    as the template (see the module docstring). `key_lines`: front-matter key paths
    (``("tiers", 0, "time")``) to file lines; a path not in it is reported at its nearest
    listed parent, else line 1.
    """
    problems = lint_front_matter(
        front_matter,
        path=path,
        catalog_entry=catalog_entry,
        template=template,
        key_lines=key_lines,
    )
    problems += lint_body(
        body,
        path=path,
        exists=exists,
        template=template,
        body_line=body_line,
        windows=_declared_windows(front_matter),
    )
    return sorted(problems, key=lambda p: p.line)


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


def lint_body(
    body: str | markdown.Document,
    *,
    path: str,
    exists: Callable[[str], bool] | None = None,
    template: bool = False,
    body_line: int = 1,
    windows: Mapping[int, tuple[float, float]] | None = None,
) -> list[RunbookProblem]:
    """The body rules alone (also for a file whose front matter could not be read).

    `windows`: the front matter's tier windows in seconds, to compare the headings with.
    """
    parsed = _body(body, body_line)
    problems = _tier_sections(parsed, path, windows or {})
    problems += _links(parsed, path, exists, template=template)
    problems += _body_placeholders(parsed, path, template=template)
    return sorted(problems, key=lambda p: p.line)


def parse_window(text: str) -> tuple[float, float] | None:
    """``"0-60 s"``, ``"0–60 s"``, ``"30-120 min"``, ``"0 to 10 seconds"``, ``"30 min-2 h"``
    → (low, high) in seconds; None when it is not such a window (or low > high)."""
    match = _WINDOW.match(text)
    return _window_of(match) if match else None


def format_window(low: float, high: float) -> str:
    """(0, 60) → ``0–60 s``; (1800, 7200) → ``30–120 min``."""
    if low % 60 == 0 and high % 60 == 0 and high >= 60 * 5:
        return f"{_number(low / 60)}–{_number(high / 60)} min"
    return f"{_number(low)}–{_number(high)} s"


# ─── front matter ───────────────────────────────────────────────────────────────────────


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
        spec = _playbook(number)
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
    if not _inside(window, spec):
        return [
            at.problem(
                key,
                f"tier {spec.tier} time {value!r} ({format_window(*window)}) is outside the "
                f"playbook's {spec.window} for {spec.name}",
            )
        ]
    return []


def _declared_windows(fm: Mapping[str, Any] | None) -> dict[int, tuple[float, float]]:
    out: dict[int, tuple[float, float]] = {}
    raw = fm.get("tiers") if fm is not None else None
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return out
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        spec = _playbook(item.get("tier"))
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
        if _MARKER_WORD.search(value) or (not template and _placeholders(value)):
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


def _playbook(number: Any) -> PlaybookTier | None:
    if isinstance(number, bool) or not isinstance(number, int):
        return None
    return next((spec for spec in PLAYBOOK if spec.tier == number), None)


def _inside(window: tuple[float, float], spec: PlaybookTier) -> bool:
    low, high = window
    return spec.low_seconds <= low and high <= spec.high_seconds


def _window_of(match: re.Match[str]) -> tuple[float, float] | None:
    unit = _UNITS.get(match["unit"].lower())
    low_unit = _UNITS.get(match["low_unit"].lower()) if match["low_unit"] else unit
    if unit is None or low_unit is None:
        return None
    low, high = float(match["low"]) * low_unit, float(match["high"]) * unit
    return (low, high) if low <= high else None


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


# ─── body ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class _Body:
    """The body as markdown-it parsed it. `offset`: file line = 1-based document line +
    offset; `lines`: (file line, text) of each body line; `first`: its first file line."""

    tokens: tuple[Token, ...]
    lines: tuple[tuple[int, str], ...]
    offset: int
    first: int

    def line(self, token: Token) -> int:
        """The file line a block token starts on."""
        return (token.map[0] if token.map else 0) + 1 + self.offset

    def inline(self) -> Iterator[tuple[int, Token]]:
        """Every inline token (text, code span, link, image and what an image holds) with
        the file line it is on, and the reference definitions, in document order."""
        for token in self.tokens:
            if token.type == "definition":
                yield self.line(token), token
            if token.type != "inline":
                continue
            number = self.line(token)
            for child in token.children or ():
                yield number, child
                for grandchild in child.children or ():  # an image's alt text
                    yield number, grandchild
                if child.type in ("softbreak", "hardbreak"):
                    number += 1


def _body(body: str | markdown.Document, body_line: int) -> _Body:
    document, offset = (
        (body, 0) if isinstance(body, markdown.Document) else (markdown.parse(body), body_line - 1)
    )
    start = document.body_line
    lines = tuple(
        (offset + number, text) for number, text in enumerate(document.lines[start - 1 :], start)
    )
    return _Body(document.tokens, lines, offset, offset + start)


@dataclass(frozen=True, slots=True)
class _Heading:
    index: int  # of its heading_open token
    level: int
    title: str  # as written
    line: int


def _headings(body: _Body) -> list[_Heading]:
    return [
        _Heading(
            index, int(token.tag[1:]), body.tokens[index + 1].content.strip(), body.line(token)
        )
        for index, token in enumerate(body.tokens)
        if token.type == "heading_open"
    ]


def _tier_sections(
    body: _Body, path: str, windows: Mapping[int, tuple[float, float]]
) -> list[RunbookProblem]:
    problems = []
    headings = _headings(body)
    found: dict[int, int] = {}  # tier → file line of its heading
    for position, heading in enumerate(headings):
        tier_match = _TIER_IN_HEADING.search(heading.title)
        if tier_match is None:
            continue
        spec = _playbook(int(tier_match.group(1)))
        if spec is None:
            problems.append(
                RunbookProblem(
                    path,
                    heading.line,
                    f"heading {heading.title!r}: the playbook has tiers 1, 2 and 3",
                )
            )
            continue
        if spec.tier in found:
            problems.append(
                RunbookProblem(
                    path,
                    heading.line,
                    f"a second heading for Tier {spec.tier} (the first is at line "
                    f"{found[spec.tier]})",
                )
            )
            continue
        found[spec.tier] = heading.line
        problems += _heading_window(heading.title, spec, windows, path, heading.line)
        end = next(
            (h.index for h in headings[position + 1 :] if h.level <= heading.level),
            len(body.tokens),
        )
        # the section: after the heading's open, inline and close tokens, up to `end`
        if not _has_step(body.tokens[heading.index + 3 : end]):
            problems.append(
                RunbookProblem(
                    path,
                    heading.line,
                    f"the Tier {spec.tier} section has no command or step: add the exact "
                    "command (a `code span` or a fenced block) or a numbered list of steps",
                )
            )
    # a missing tier is reported at the title (the first heading), else the body's start
    anchor = headings[0].line if headings else body.first
    problems += [
        RunbookProblem(
            path,
            anchor,
            f'no heading for Tier {spec.tier} ({spec.name}): add "## Tier {spec.tier} — '
            f'{spec.name} ({spec.window})" with its commands',
        )
        for spec in PLAYBOOK
        if spec.tier not in found
    ]
    return problems


def _heading_window(
    title: str,
    spec: PlaybookTier,
    windows: Mapping[int, tuple[float, float]],
    path: str,
    number: int,
) -> list[RunbookProblem]:
    match = _WINDOW_IN_TEXT.search(title)
    window = _window_of(match) if match else None
    if match is None or window is None:
        return []
    written = match.group(0)
    if not _inside(window, spec):
        return [
            RunbookProblem(
                path,
                number,
                f"Tier {spec.tier} heading says {written!r}, outside the playbook's "
                f"{spec.window} for {spec.name}",
            )
        ]
    declared = windows.get(spec.tier)
    if declared is not None and declared != window:
        return [
            RunbookProblem(
                path,
                number,
                f"Tier {spec.tier} heading says {written!r} but the front matter says "
                f"{format_window(*declared)}",
            )
        ]
    return []


def _has_step(tokens: Sequence[Token]) -> bool:
    """A command or a step: a code block with something in it, a code span, or an item
    of a numbered list with something in it."""
    numbered = 0
    for token in tokens:
        numbered += {"ordered_list_open": 1, "ordered_list_close": -1}.get(token.type, 0)
        code = token.type in ("fence", "code_block") and token.content.strip()
        inline = token.type == "inline"
        item = inline and numbered > 0 and token.content.strip()
        span = inline and any(child.type == "code_inline" for child in token.children or ())
        if code or item or span:
            return True
    return False


def _targets(body: _Body) -> Iterator[tuple[int, str]]:
    """(file line, target as markdown-it normalised it) of every link, image and reference
    definition. A reference link or image is checked at its definition (markdown-it
    labels reference links; an image whose target a definition holds is taken for one)."""
    defined = {t.meta.get("url") for t in body.tokens if t.type == "definition"}
    for number, token in body.inline():
        if token.type == "link_open" and not token.meta.get("label"):
            yield number, str(token.attrGet("href") or "")
        elif token.type == "image" and token.attrGet("src") not in defined:
            yield number, str(token.attrGet("src") or "")
        elif token.type == "definition":
            yield number, str(token.meta.get("url", ""))


def _links(
    body: _Body, path: str, exists: Callable[[str], bool] | None, *, template: bool
) -> list[RunbookProblem]:
    if exists is None:
        return []
    problems = []
    for number, target in _targets(body):
        if not target:
            problems.append(RunbookProblem(path, number, "a link with no target"))
            continue
        if _SCHEME.match(target) or target.startswith(("#", "/")):
            continue
        if "<" in unquote(target) or ">" in unquote(target) or _MARKER_WORD.search(target):
            continue  # a placeholder: reported (or allowed in the template) as such
        file = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if file and not exists(file):
            problems.append(
                RunbookProblem(
                    path,
                    number,
                    f"link to {file!r}: no such file (relative to the runbook's directory)",
                )
            )
    return problems


def _prose(body: _Body) -> dict[int, list[str]]:
    """The prose of each file line, as the page shows it: text, link and image targets;
    code spans and code blocks left out (a code span is a space, so ``<`` `x` ``>``
    joins nothing)."""
    prose: dict[int, list[str]] = {}
    for number, token in body.inline():
        if token.type == "text":
            prose.setdefault(number, []).append(token.content)
        elif token.type == "code_inline":
            prose.setdefault(number, []).append(" ")
    for number, target in _targets(body):
        prose.setdefault(number, []).append(" " + unquote(target))
    return prose


def _body_placeholders(body: _Body, path: str, *, template: bool) -> list[RunbookProblem]:
    prose = _prose(body) if not template else {}
    problems = []
    for number, text in body.lines:
        found = [m.group(0) for m in _MARKER_WORD.finditer(text)]
        if not template:
            # <fill me> anywhere; other <placeholders> in prose only (in code they are
            # the arguments a responder types: <release SHA>)
            found += [m.group(0) for m in _FILL_ME.finditer(text)]
            words = "".join(prose.get(number, []))
            found += [p for p in _placeholders(words) if not _FILL_ME.fullmatch(p)]
        problems += [
            RunbookProblem(path, number, f"placeholder {text!r} left in the runbook")
            for text in found
        ]
    return problems


def _placeholders(text: str) -> list[str]:
    """The ``<placeholders>`` in `text`: not autolinks, e-mail addresses, HTML comments or
    known HTML tags, and with a letter or digit in them (``a <-> b`` is no placeholder)."""
    return [m.group(0) for m in _ANGLE.finditer(text) if not _not_placeholder(m.group(1))]


def _not_placeholder(inner: str) -> bool:
    if not re.search(r"[a-z0-9]", inner, re.IGNORECASE):
        return True
    if _SCHEME.match(inner) or inner.startswith("!") or ("@" in inner and " " not in inner):
        return True
    tag = _HTML_TAG.match(inner)
    return tag is not None and tag.group(1).lower() in _HTML_TAGS


def _is_angle(value: str) -> bool:
    stripped = value.strip()
    return stripped.startswith("<") and stripped.endswith(">")
