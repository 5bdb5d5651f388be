"""`rollbot runbook lint`, as CI and an author run it.

Aspects under test:
- the repository's runbooks (the payment-router playbook and the template) pass, alone and
  against the example catalog: exit 0 and "2 runbooks OK";
- a broken copy fails with exit 1, one `path:line: message` per problem at the right line
  (a widened Tier 2 window, a Tier 3 heading gone, a TODO, a link to a missing file, an
  escalation policy the catalog does not have, the catalog's runbook path leading
  elsewhere) and a summary counting problems and runbooks;
- front matter that is not valid YAML, never closed, or not a mapping is one problem at
  its line, and the body is still linted; a file without front matter says so;
- a path that does not exist and a directory without runbooks are problems (exit 1); an
  unusable --config is exit 2 with the configuration problems;
- bot.runbooks: the fences split with CRLF line ends, a BOM and a `...` end; front-matter
  key paths map to their file lines; README.md in a runbook directory is not a runbook.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bot import runbooks
from bot.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "rollbot.example.yaml"


def rollbot(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of `path` containing `text`."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def copy_runbooks(tmp_path: Path) -> Path:
    """runbooks/ copied into `tmp_path`, with what their relative links lead to."""
    target = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", target)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    return target


def test_the_repository_runbooks_pass() -> None:
    done = rollbot("runbook", "lint")
    assert (done.returncode, done.stdout, done.stderr) == (0, "2 runbooks OK.\n", "")


def test_the_repository_runbooks_agree_with_the_example_catalog() -> None:
    done = rollbot("runbook", "lint", "runbooks/", "--config", "rollbot.example.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "2 runbooks OK against the catalog in rollbot.example.yaml.\n"


def test_one_file_and_the_template_alone() -> None:
    done = rollbot("runbook", "lint", "runbooks/payment-router.md", "runbooks/TEMPLATE.md")
    assert (done.returncode, done.stdout) == (0, "2 runbooks OK.\n")
    done = rollbot("runbook", "lint", "runbooks/TEMPLATE.md")
    assert (done.returncode, done.stdout) == (0, "1 runbook OK.\n")


def test_a_broken_copy_fails_with_every_problem_at_its_line(tmp_path: Path) -> None:
    folder = copy_runbooks(tmp_path)
    book = folder / "payment-router.md"
    text = book.read_text()
    text = text.replace("time: 0-10 s}", "time: 0-30 s}")
    text = text.replace("pagerduty_escalation_policy: PESC123", "pagerduty_escalation_policy: P9")
    text = text.replace("## Tier 3 — full revert (30–120 min)", "## Full revert")
    text = text.replace(
        "## After any tier\n", "## After any tier\n\nTODO: [graphs](../graphs.md)\n"
    )
    book.write_text(text)

    done = rollbot("runbook", "lint", str(folder), "--config", str(EXAMPLE))
    assert done.returncode == 1, done.stdout + done.stderr
    name = str(book)
    assert done.stdout.splitlines() == [
        f"{name}:{line_of(book, 'service:')}: services.payment-router.runbook is "
        f"'runbooks/payment-router.md', which is {ROOT / 'runbooks' / 'payment-router.md'}, "
        "not this file",
        f"{name}:{line_of(book, 'pagerduty_escalation_policy')}: "
        "owners.pagerduty_escalation_policy disagrees with the catalog: the runbook says 'P9', "
        "services.payment-router.pagerduty.escalation_policy_id says 'PESC123'",
        f"{name}:{line_of(book, '0-30 s')}: tier 2 time '0-30 s' (0–30 s) is outside the "
        "playbook's 0–10 s for circuit breaker",
        f"{name}:{line_of(book, '# payment-router')}: no heading for Tier 3 (full revert): "
        'add "## Tier 3 — full revert (30–120 min)" with its commands',
        f"{name}:{line_of(book, 'Tier 2 — circuit breaker (0–10 s)')}: Tier 2 heading says "
        "'0–10 s' but the front matter says 0–30 s",
        f"{name}:{line_of(book, 'TODO')}: link to '../graphs.md': no such file (relative to "
        "the runbook's directory)",
        f"{name}:{line_of(book, 'TODO')}: placeholder 'TODO' left in the runbook",
        "7 problem(s) in 1 of 2 runbook(s) against the catalog in " + str(EXAMPLE) + ".",
    ]
    assert done.stderr == ""


def test_front_matter_that_cannot_be_read(tmp_path: Path) -> None:
    folder = copy_runbooks(tmp_path)
    good = (folder / "payment-router.md").read_text()
    invalid = folder / "invalid.md"
    invalid.write_text(good.replace("service: payment-router", "service: [payment-router"))
    unclosed = folder / "unclosed.md"
    unclosed.write_text(good.replace("---\n\n# payment-router", "\n# payment-router", 1))
    listed = folder / "listed.md"
    listed.write_text("---\n- a\n- b\n---\n" + good.split("---\n", 2)[2])
    bare = folder / "bare.md"
    bare.write_text(good.split("---\n", 2)[2])

    done = rollbot("runbook", "lint", str(folder))
    assert done.returncode == 1
    out = done.stdout.splitlines()
    assert out[0] == (
        f"{bare}:1: no front matter: start the file with a `---` fenced YAML block holding "
        "service, owners, flags and tiers (see runbooks/TEMPLATE.md)"
    )
    invalid_lines = [line for line in out if line.startswith(f"{invalid}:")]
    assert len(invalid_lines) == 1  # the body is fine
    assert invalid_lines[0].startswith(f"{invalid}:3: front matter is not valid YAML: expected")
    assert f"{listed}:1: front matter is a list: it must be a mapping with service, owners, " in (
        done.stdout
    )
    assert (
        f"{unclosed}:1: the front matter opened on line 1 is never closed: end it with a "
        "`---` line" in out
    )
    assert out[-1] == "4 problem(s) in 4 of 6 runbook(s)."


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = rollbot("runbook", "lint", str(tmp_path / "nope.md"), str(tmp_path / "empty"))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'nope.md'}:1: no such file or directory",
        f"{tmp_path / 'empty'}:1: no runbooks (*.md) in directory",
        "2 problem(s) in 0 of 0 runbook(s).",
    ]


def test_an_unusable_config_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "rollbot.yaml"
    config.write_text("services:\n  payment-router: {namespace: payments}\n")
    done = rollbot("runbook", "lint", "--config", str(config))
    assert done.returncode == 2
    assert "services.payment-router.rollout: required key is missing" in done.stderr


def test_a_service_missing_from_the_catalog(tmp_path: Path) -> None:
    folder = copy_runbooks(tmp_path)
    book = folder / "checkout.md"
    book.write_text(
        (folder / "payment-router.md")
        .read_text()
        .replace("service: payment-router", "service: checkout")
    )
    done = rollbot("runbook", "lint", str(book), "--config", str(EXAMPLE))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{book}:2: service 'checkout' is not in the catalog (services: fx-rates, payment-router)",
        f"1 problem(s) in 1 of 1 runbook(s) against the catalog in {EXAMPLE}.",
    ]


# ----------------------------------------------------------------------------- in process


def test_split_front_matter() -> None:
    split = runbooks.split_front_matter("\ufeff---\r\nservice: x\r\n...\r\n# Title\r\nbody\r\n")
    assert (split.text, split.body, split.body_line) == ("service: x", "# Title\nbody\n", 4)
    none = runbooks.split_front_matter("# Title\n---\nservice: x\n---\n")
    assert (none.text, none.body_line, none.error) == (None, 1, None)
    empty = runbooks.split_front_matter("---\n---\nbody")
    assert (empty.text, empty.body, empty.body_line) == ("", "body", 3)


def test_key_lines_point_into_the_file() -> None:
    split = runbooks.split_front_matter((ROOT / "runbooks" / "payment-router.md").read_text())
    front_matter, lines, error, _ = runbooks.parse_front_matter(split)
    assert error is None and front_matter is not None
    book = ROOT / "runbooks" / "payment-router.md"
    assert lines[("service",)] == line_of(book, "service:")
    assert lines[("flags", "circuit")] == line_of(book, "circuit: payments.new-router")
    assert lines[("tiers", 2)] == line_of(book, "{tier: 3")
    assert lines[("tiers", 2, "time")] == line_of(book, "{tier: 3")


def test_readme_in_a_directory_is_not_a_runbook(tmp_path: Path) -> None:
    folder = copy_runbooks(tmp_path)
    (folder / "README.md").write_text("# Runbooks\n\nOne per service.\n")
    report = runbooks.lint_paths([folder])
    assert [p.name for p in report.files] == ["TEMPLATE.md", "payment-router.md"]
    assert report.problems == []
    explicit = runbooks.lint_paths([folder / "README.md"])
    assert explicit.problems  # named explicitly: linted like any runbook


def test_lint_file_with_settings_in_process() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert runbooks.lint_file(ROOT / "runbooks" / "payment-router.md", settings=settings) == []
    assert runbooks.lint_file(ROOT / "runbooks" / "TEMPLATE.md", settings=settings) == []
