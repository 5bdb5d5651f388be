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

The package, by responsibility:

    values         `RunbookProblem`, `KeyPath`, `PlaybookTier` and `PLAYBOOK`
    text           time windows (`parse_window`, `format_window`) and placeholders: the
                   text rules and regexes the front matter and the body share
    front_matter   `lint_front_matter`: the front-matter and catalog rules
    body           `lint_body`: headings, tier sections, steps, links, prose placeholders
    (here)         `lint`: both, in file order
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.core import markdown
from bot.core.runbook.body import lint_body
from bot.core.runbook.front_matter import (
    FLAG_ROLES,
    OWNER_KEYS,
    REQUIRED_FLAGS,
    TEMPLATE_KEYS,
    declared_windows,
    lint_front_matter,
)
from bot.core.runbook.text import format_window, parse_window
from bot.core.runbook.values import PLAYBOOK, KeyPath, PlaybookTier, RunbookProblem

__all__ = [
    "FLAG_ROLES",
    "OWNER_KEYS",
    "PLAYBOOK",
    "REQUIRED_FLAGS",
    "TEMPLATE_KEYS",
    "KeyPath",
    "PlaybookTier",
    "RunbookProblem",
    "format_window",
    "lint",
    "lint_body",
    "lint_front_matter",
    "parse_window",
]


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
        windows=declared_windows(front_matter),
    )
    return sorted(problems, key=lambda p: p.line)
