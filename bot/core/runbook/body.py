"""The runbook linter's body rules, over the markdown-it tokens the runbook page renders.

`lint_body` checks the Markdown after the front matter: a heading for each playbook tier,
once, whose window (if it gives one) agrees with the playbook and the front matter, over a
section holding a command or a step; relative links, images and reference definitions
that resolve; and no placeholder left in the text (``<placeholders>`` in prose only, since
in code they are the arguments a responder types).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from markdown_it.token import Token

from bot.core import markdown
from bot.core.runbook.text import (
    FILL_ME,
    MARKER_WORD,
    SCHEME,
    WINDOW_IN_TEXT,
    format_window,
    placeholders,
    window_of,
)
from bot.core.runbook.values import PLAYBOOK, PlaybookTier, RunbookProblem, inside, playbook_tier

_TIER_IN_HEADING = re.compile(r"\btier\s*([1-9])\b", re.IGNORECASE)


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
        spec = playbook_tier(int(tier_match.group(1)))
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
    match = WINDOW_IN_TEXT.search(title)
    window = window_of(match) if match else None
    if match is None or window is None:
        return []
    written = match.group(0)
    if not inside(window, spec):
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
        if SCHEME.match(target) or target.startswith(("#", "/")):
            continue
        if "<" in unquote(target) or ">" in unquote(target) or MARKER_WORD.search(target):
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
        found = [m.group(0) for m in MARKER_WORD.finditer(text)]
        if not template:
            # <fill me> anywhere; other <placeholders> in prose only (in code they are
            # the arguments a responder types: <release SHA>)
            found += [m.group(0) for m in FILL_ME.finditer(text)]
            words = "".join(prose.get(number, []))
            found += [p for p in placeholders(words) if not FILL_ME.fullmatch(p)]
        problems += [
            RunbookProblem(path, number, f"placeholder {text!r} left in the runbook")
            for text in found
        ]
    return problems
