"""Runbook files: find, read, split front matter, lint; and the signed links to their pages."""

from bot.runbooks.files import (
    FrontMatter,
    LintReport,
    find_runbooks,
    is_template,
    lint_file,
    lint_paths,
    parse_front_matter,
    split_front_matter,
)

__all__ = [
    "FrontMatter",
    "LintReport",
    "find_runbooks",
    "is_template",
    "lint_file",
    "lint_paths",
    "parse_front_matter",
    "split_front_matter",
]
