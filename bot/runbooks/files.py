"""Runbook files: find them, read them, split off their front matter, lint them.

The I/O side of `bot.core.runbook` (the rules live there):

    find_runbooks(paths)                      -> (files, problems)   a directory: its *.md
    split_front_matter(text)                  -> FrontMatter          the ``---`` fences
    lint_file(path, settings=…, template=…)   -> problems of one runbook
    lint_paths(paths, settings=…)             -> LintReport           all of them

A runbook is Markdown with YAML front matter between a ``---`` line at the very top and
the next ``---`` (or ``...``) line. The file is parsed once with `bot.core.markdown.parse`,
the parser the runbook page renders with, so the linter finds the front matter, headings,
code and links exactly where the page shows them. The front matter is parsed with
``yaml.safe_load``; a YAML error is a problem at its line, and the body is still linted.
``TEMPLATE.md`` is linted as the template (placeholders allowed, every key required).
With settings, each runbook is compared with the catalog entry of its ``service``, and the
catalog's ``runbook`` path must lead to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bot.core import markdown
from bot.core import runbook as rules
from bot.core.runbook import KeyPath, RunbookProblem

if TYPE_CHECKING:
    from bot.settings import Settings

TEMPLATE_NAME = "TEMPLATE.md"
SKIPPED_NAMES = frozenset({"readme.md"})
"""Files in a runbook directory that are not runbooks (only when a directory is given)."""


@dataclass(frozen=True, slots=True)
class FrontMatter:
    """A runbook split at its front matter fences.

    `text`: the YAML between the fences (None: no front matter); `start_line`: the line
    of the opening fence; `body`, `body_line`: the rest and the line it starts on;
    `error`: why the fences could not be read (an unclosed front matter); `document`: the
    whole file as the runbook page parses it.
    """

    text: str | None
    body: str
    body_line: int
    document: markdown.Document
    start_line: int = 1
    error: str | None = None


@dataclass
class LintReport:
    """What `lint_paths` found."""

    files: list[Path] = field(default_factory=list)
    problems: list[RunbookProblem] = field(default_factory=list)

    @property
    def failed_files(self) -> list[Path]:
        """The runbooks with at least one problem."""
        paths = {p.path for p in self.problems}
        return [f for f in self.files if str(f) in paths]

    def summary(self, *, against: str | None = None) -> str:
        """``2 runbooks OK.`` or ``3 problem(s) in 1 of 2 runbook(s).``"""
        where = f" against the catalog in {against}" if against else ""
        checked = len(self.files)
        if not self.problems:
            return f"{checked} runbook{'' if checked == 1 else 's'} OK{where}."
        return (
            f"{len(self.problems)} problem(s) in {len(self.failed_files)} of {checked} "
            f"runbook(s){where}."
        )


def split_front_matter(text: str) -> FrontMatter:
    """Parse `text` and split it at its ``---`` fences (a BOM and CRLF line ends are
    tolerated)."""
    document = markdown.parse(text)
    split = FrontMatter(document.front_matter, document.body, document.body_line, document)
    if document.front_matter is None and document.lines[0].rstrip() == "---":
        return replace(
            split,
            error="the front matter opened on line 1 is never closed: end it with a `---` line",
        )
    return split


def parse_front_matter(
    split: FrontMatter,
) -> tuple[Mapping[str, Any] | None, dict[KeyPath, int], str | None, int]:
    """(mapping, key lines, error, error line) of the front matter. The error is None when
    the front matter is absent or a readable mapping."""
    if split.text is None:
        return None, {}, split.error, split.start_line
    offset = split.start_line + 1  # the YAML's first line in the file
    try:
        loaded = yaml.safe_load(split.text)
        node = yaml.compose(split.text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = offset + mark.line if mark is not None else split.start_line
        problem = getattr(exc, "problem", None) or str(exc)
        return None, {}, f"front matter is not valid YAML: {problem}", line
    if not isinstance(loaded, dict):
        kind = "empty" if loaded is None else f"a {type(loaded).__name__}"
        return (
            None,
            {},
            f"front matter is {kind}: it must be a mapping with service, owners, flags and tiers",
            split.start_line,
        )
    lines: dict[KeyPath, int] = {}
    _key_lines(node, (), offset, lines)
    return loaded, lines, None, split.start_line


def _key_lines(node: yaml.Node | None, key: KeyPath, offset: int, out: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*key, str(key_node.value))
            out.setdefault(child, offset + key_node.start_mark.line)
            _key_lines(value_node, child, offset, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*key, index)
            out.setdefault(child, offset + item.start_mark.line)
            _key_lines(item, child, offset, out)


def find_runbooks(paths: Iterable[str | Path]) -> tuple[list[Path], list[RunbookProblem]]:
    """The runbook files under `paths`: a file as given, a directory's ``*.md`` (sorted,
    README.md left out). A path that does not exist, or a directory without runbooks, is a
    problem."""
    files: list[Path] = []
    problems = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.glob("*.md") if p.is_file() and p.name.lower() not in SKIPPED_NAMES
            )
            if not found:
                problems.append(RunbookProblem(str(path), 1, "no runbooks (*.md) in directory"))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(RunbookProblem(str(path), 1, "no such file or directory"))
    unique = list(dict.fromkeys(files))
    return unique, problems


def is_template(path: Path) -> bool:
    return path.name.lower() == TEMPLATE_NAME.lower()


def lint_file(
    path: Path, *, settings: Settings | None = None, template: bool | None = None
) -> list[RunbookProblem]:
    """Every problem of the runbook at `path` (as `str(path)` in the problems).

    `settings`: compare with the catalog entry of the runbook's ``service``. `template`:
    lint as the template; None: when the file is named TEMPLATE.md.
    """
    name = str(path)
    as_template = is_template(path) if template is None else template
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [RunbookProblem(name, 1, f"cannot read: {exc}")]
    split = split_front_matter(text)
    front_matter, key_lines, error, error_line = parse_front_matter(split)

    def exists(target: str) -> bool:
        return (path.parent / target).exists()

    if error is not None:
        problems = [RunbookProblem(name, error_line, error)]
        problems += rules.lint_body(split.document, path=name, exists=exists, template=as_template)
        return sorted(problems, key=lambda p: p.line)

    catalog_entry = None
    catalog_problems: list[RunbookProblem] = []
    if settings is not None and front_matter is not None and not as_template:
        catalog_entry, catalog_problems = _catalog_entry(
            front_matter, path, settings, line=key_lines.get(("service",), 1)
        )
    problems = rules.lint(
        front_matter,
        split.document,
        path=name,
        catalog_entry=catalog_entry,
        exists=exists,
        template=as_template,
        key_lines=key_lines,
    )
    return sorted(catalog_problems + problems, key=lambda p: p.line)


def _catalog_entry(
    front_matter: Mapping[str, Any], path: Path, settings: Settings, *, line: int
) -> tuple[dict[str, Any] | None, list[RunbookProblem]]:
    service = front_matter.get("service")
    if not isinstance(service, str) or not service or service.startswith("<"):
        return None, []  # reported by the rules
    name = str(path)
    svc = settings.services.get(service)
    if svc is None:
        known = ", ".join(sorted(settings.services)) or "none"
        return None, [
            RunbookProblem(
                name, line, f"service {service!r} is not in the catalog (services: {known})"
            )
        ]
    problems = []
    if svc.runbook is None:
        problems.append(
            RunbookProblem(
                name,
                line,
                f"services.{service}.runbook is not set in the catalog, so cards and "
                "PagerDuty carry no link to this runbook",
            )
        )
    else:
        target = settings.runbook_path(service)
        if target is None or target.resolve() != path.resolve():
            problems.append(
                RunbookProblem(
                    name,
                    line,
                    f"services.{service}.runbook is {svc.runbook!r}, which "
                    + ("is not found" if target is None else f"is {target}, not this file"),
                )
            )
    return svc.model_dump(mode="json"), problems


def lint_paths(paths: Iterable[str | Path], *, settings: Settings | None = None) -> LintReport:
    """Find the runbooks under `paths` and lint each one."""
    files, problems = find_runbooks(paths)
    report = LintReport(files=files, problems=problems)
    for path in files:
        report.problems += lint_file(path, settings=settings)
    return report
