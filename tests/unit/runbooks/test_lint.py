"""bot.core.runbook: the runbook rules, one table per rule family.

Aspects under test:
- a complete runbook has no problems; so has the template with its placeholders;
- front matter: present; service (a catalog key); owners with slack_usergroup and/or
  pagerduty_escalation_policy; flags release and circuit (experiment optional, flag keys or
  inventory mappings, no unknown roles); tiers exactly 1, 2, 3 with a name and a time
  window inside the playbook's (0–60 s, 0–10 s, 30–120 min);
- time windows: "0-60 s", "0–60 s", "30-120 min", "0 to 10 seconds", "1-2 h", "30 min-2 h"
  parse; anything else does not;
- body: a heading per tier (ATX or setext, as the page shows it), once; a window in a tier
  heading agrees with the playbook and the front matter; each tier section has a command
  or a step (code span, fenced or indented code block, numbered list), up to the next
  heading of the same level; headings in code do not count;
- catalog: namespace, rollout, channel (when written), the three flags, the owners group and
  the escalation policy agree, each disagreement naming both values; skipped for the template;
- links: relative targets must exist (fragment dropped, percent-decoding), URLs, anchors,
  absolute paths and links in code are not checked; reference definitions are;
- placeholders: TODO/TBD/FIXME anywhere, <fill me> anywhere, <placeholders> in prose and
  front-matter values; <release SHA> in code, autolinks, HTML tags and comparisons are fine;
  the template allows <placeholders> but not TODO, and requires every key;
- every problem is at its line: front-matter keys through key_lines (nearest parent), body
  lines offset by body_line, or the file's lines when given the parsed file (the runbook
  page's tokens), lines inside a paragraph counted; problems come sorted by line.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from bot.core import markdown, runbook
from bot.core.runbook import RunbookProblem, format_window, lint, parse_window

PATH = "runbooks/payment-router.md"

GOOD_FM: dict[str, Any] = {
    "service": "payment-router",
    "namespace": "payments",
    "rollout": "payment-router",
    "owners": {
        "slack_usergroup": "S0PAYMENTS",
        "jira_assignee": "payments-lead@example.com",
        "pagerduty_escalation_policy": "PESC123",
    },
    "channel": "#payments-deploys",
    "flags": {
        "release": "payments.new-router.enabled",
        "experiment": "payments.dynamic-currency.enabled",
        "circuit": "payments.new-router.circuit-open",
    },
    "tiers": [
        {"tier": 1, "name": "abort", "time": "0-60 s"},
        {"tier": 2, "name": "circuit breaker", "time": "0-10 s"},
        {"tier": 3, "name": "full revert", "time": "30-120 min"},
    ],
}

GOOD_BODY = """\
# payment-router — rollback runbook

See [the Rollout](../deploy/argo-rollouts/payment-router.rollout.yaml) and
<https://prometheus.example.com>. Gates: error rate < 2 %, p95 < 300 ms.

## Tier 1 — abort the canary (0–60 s)

```sh
kubectl argo rollouts abort payment-router -n payments
```

## Tier 2 — circuit breaker (0–10 s)

Run `/rollback payment-router circuit open`.

## Tier 3 — full revert (30–120 min)

1. Find the release commit.
2. Revert it:

   ```sh
   git revert <release SHA>
   ```
"""

PLAIN_BODY = re.sub(r" \(\d+–\d+ \w+\)$", "", GOOD_BODY, flags=re.MULTILINE)
"""GOOD_BODY without time windows in its headings (front-matter windows alone)."""

CATALOG: dict[str, Any] = {
    "namespace": "payments",
    "rollout": "payment-router",
    "channel": "#payments-deploys",
    "runbook": "runbooks/payment-router.md",
    "owners": {"slack_usergroup": "S0PAYMENTS", "jira_assignee": "payments-lead@example.com"},
    "pagerduty": {"service_id": "PSVC123", "escalation_policy_id": "PESC123"},
    "flags": {
        "release": "payments.new-router.enabled",
        "experiment": "payments.dynamic-currency.enabled",
        "circuit": "payments.new-router.circuit-open",
    },
}

EXISTING = {"../deploy/argo-rollouts/payment-router.rollout.yaml", "../README.md", "a b.md"}

TEMPLATE_FM: dict[str, Any] = {
    "service": "<service>",
    "namespace": "<namespace>",
    "rollout": "<rollout name>",
    "owners": {"slack_usergroup": "<S…>", "pagerduty_escalation_policy": "<P…>"},
    "channel": "#<channel>",
    "flags": {
        "release": "<team.feature.enabled>",
        "experiment": "<team.experiment.enabled>",
        "circuit": "<team.feature.circuit-open>",
    },
    "tiers": copy.deepcopy(GOOD_FM["tiers"]),
}

TEMPLATE_BODY = """\
# <service> — rollback runbook

<One line: what it does.> Rollout: [here](../deploy/argo-rollouts/<service>.rollout.yaml).

## Tier 1 — abort the canary (0–60 s)

`/rollback <service> abort`

## Tier 2 — circuit breaker (0–10 s)

`/rollback <service> circuit open` <fill me>

## Tier 3 — full revert (30–120 min)

1. `git revert <release SHA>` in <git url>.
"""


def run(
    fm: dict[str, Any] | None = None,
    body: str = GOOD_BODY,
    **kwargs: Any,
) -> list[RunbookProblem]:
    kwargs.setdefault("path", PATH)
    kwargs.setdefault("exists", EXISTING.__contains__)
    return lint(copy.deepcopy(GOOD_FM) if fm is None else fm, body, **kwargs)


def messages(problems: list[RunbookProblem]) -> list[str]:
    return [p.message for p in problems]


Change = Callable[[dict[str, Any]], None]


def changed(change: Change, base: dict[str, Any] = GOOD_FM) -> dict[str, Any]:
    fm = copy.deepcopy(base)
    change(fm)
    return fm


def delete(*path: Any) -> Change:
    def apply(fm: dict[str, Any]) -> None:
        node: Any = fm
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return apply


def put(value: Any, *path: Any) -> Change:
    def apply(fm: dict[str, Any]) -> None:
        node: Any = fm
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


# ----------------------------------------------------------------------------- all good


def test_a_complete_runbook_has_no_problems() -> None:
    assert run() == []
    assert run(catalog_entry=CATALOG) == []


def test_the_template_with_placeholders_has_no_problems() -> None:
    assert lint(TEMPLATE_FM, TEMPLATE_BODY, path="TEMPLATE.md", template=True) == []


def test_without_template_the_template_is_full_of_placeholders() -> None:
    found = messages(lint(TEMPLATE_FM, TEMPLATE_BODY, path="TEMPLATE.md"))
    assert "service is a placeholder ('<service>'): fill it in" in found
    assert "channel is a placeholder ('#<channel>'): fill it in" in found
    assert "placeholder '<One line: what it does.>' left in the runbook" in found
    assert "placeholder '<fill me>' left in the runbook" in found
    assert "placeholder '<git url>' left in the runbook" in found
    assert not any("<release SHA>" in m for m in found)  # in code: a command argument


# ----------------------------------------------------------------------------- front matter

FRONT_MATTER_CASES: list[tuple[str, Change, list[str]]] = [
    (
        "service missing",
        delete("service"),
        ["`service` is missing: the service's key in the catalog"],
    ),
    (
        "service not a catalog key",
        put("Payment Router", "service"),
        [
            "service 'Payment Router' is not a catalog key: lowercase letters, digits and "
            "dashes, like 'payment-router'"
        ],
    ),
    (
        "owners missing",
        delete("owners"),
        [
            "`owners` is missing: a mapping with slack_usergroup and/or "
            "pagerduty_escalation_policy (who may act)"
        ],
    ),
    (
        "owners without group or policy",
        put({"jira_assignee": "a@example.com"}, "owners"),
        ["owners needs slack_usergroup and/or pagerduty_escalation_policy (who may act)"],
    ),
    ("owners: the group alone is enough", delete("owners", "pagerduty_escalation_policy"), []),
    ("owners: the policy alone is enough", delete("owners", "slack_usergroup"), []),
    (
        "flags missing",
        delete("flags"),
        ["`flags` is missing: a mapping with release and circuit (experiment optional)"],
    ),
    (
        "release flag missing",
        delete("flags", "release"),
        [
            "flags.release is missing (the release toggle, which stays where it is during "
            "an incident)"
        ],
    ),
    (
        "circuit flag missing",
        delete("flags", "circuit"),
        ["flags.circuit is missing (the ops toggle Tier 2 sets to true)"],
    ),
    ("experiment flag is optional", delete("flags", "experiment"), []),
    ("experiment flag null", put(None, "flags", "experiment"), []),
    (
        "a flag that is not a key",
        put(3, "flags", "experiment"),
        ["flags.experiment must be a flag key (a string)"],
    ),
    (
        "an unknown flag role",
        put("payments.kill", "flags", "kill"),
        ["flags.kill is not a flag role; the roles are release, experiment, circuit"],
    ),
    (
        "a flag as its inventory mapping",
        put({"key": "payments.new-router.circuit-open", "owner": "on-call"}, "flags", "circuit"),
        [],
    ),
    (
        "tiers missing",
        delete("tiers"),
        [
            "`tiers` is missing: list tiers 1, 2 and 3, each with a name and a time window "
            "(tier 1 0–60 s, tier 2 0–10 s, tier 3 30–120 min)"
        ],
    ),
    (
        "tiers not a list",
        put({"1": "abort"}, "tiers"),
        ["tiers must be a list of {tier, name, time} mappings, one per tier 1, 2, 3"],
    ),
    (
        "tier 2 missing",
        lambda fm: fm["tiers"].pop(1),
        ["tier 2 (circuit breaker, 0–10 s) is missing from tiers"],
    ),
    (
        "a tier listed twice",
        lambda fm: fm["tiers"].append({"tier": 1, "name": "abort", "time": "0-60 s"}),
        ["tier 1 is listed twice (tiers[3])"],
    ),
    (
        "a fourth tier",
        lambda fm: fm["tiers"].append({"tier": 4, "name": "pray", "time": "1-2 h"}),
        ["tiers[3].tier is 4: the playbook has tiers 1, 2 and 3"],
    ),
    (
        "a tier that is not a mapping",
        lambda fm: fm["tiers"].append("tier 4"),
        ["tiers[3] must be a mapping {tier, name, time}"],
    ),
    (
        "a tier number that is a boolean",
        put(True, "tiers", 0, "tier"),
        [
            "tiers[0].tier is True: the playbook has tiers 1, 2 and 3",
            "tier 1 (abort, 0–60 s) is missing from tiers",
        ],
    ),
    (
        "a tier without a name",
        delete("tiers", 2, "name"),
        ["tier 3 has no name (e.g. name: full revert)"],
    ),
    (
        "a tier without a time",
        delete("tiers", 1, "time"),
        ["tier 2 has no time window (time: 0–10 s)"],
    ),
    (
        "a time that is not a window",
        put("fast", "tiers", 1, "time"),
        [
            "tier 2 time 'fast' is not a time window: write it like '0–10 s' (a range and a "
            "unit: s, min or h)"
        ],
    ),
    (
        "a time that is a bare number",
        put(60, "tiers", 0, "time"),
        [
            "tier 1 time 60 is not a time window: write it like '0–60 s' (a range and a "
            "unit: s, min or h)"
        ],
    ),
    (
        "tier 1 slower than the playbook",
        put("0-90 s", "tiers", 0, "time"),
        ["tier 1 time '0-90 s' (0–90 s) is outside the playbook's 0–60 s for abort"],
    ),
    (
        "tier 2 slower than the playbook (en dash)",
        put("0–30 s", "tiers", 1, "time"),
        ["tier 2 time '0–30 s' (0–30 s) is outside the playbook's 0–10 s for circuit breaker"],
    ),
    (
        "tier 3 promising less than it takes",
        put("10-120 min", "tiers", 2, "time"),
        [
            "tier 3 time '10-120 min' (10–120 min) is outside the playbook's 30–120 min "
            "for full revert"
        ],
    ),
    ("tier 3 in hours, inside", put("1-2 h", "tiers", 2, "time"), []),
    ("tier 1 tighter than the playbook", put("0 to 30 seconds", "tiers", 0, "time"), []),
    (
        "a placeholder value",
        put("<S…>", "owners", "slack_usergroup"),
        ["owners.slack_usergroup is a placeholder ('<S…>'): fill it in"],
    ),
    (
        "a TODO value",
        put("TODO ask payments", "owners", "jira_assignee"),
        ["owners.jira_assignee is a placeholder ('TODO ask payments'): fill it in"],
    ),
    (
        "a placeholder inside a list",
        put("<name>", "tiers", 0, "name"),
        ["tiers[0].name is a placeholder ('<name>'): fill it in"],
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(c, e, id=name) for name, c, e in FRONT_MATTER_CASES],
)
def test_front_matter_rules(change: Change, expected: list[str]) -> None:
    assert messages(run(changed(change), body=PLAIN_BODY)) == expected


def test_no_front_matter_is_a_problem_at_line_1_and_the_body_is_still_linted() -> None:
    problems = run({}, body="# nothing\n")
    assert problems[0] == RunbookProblem(
        PATH, 1, "`service` is missing: the service's key in the catalog"
    )
    problems = lint(None, "# nothing\nTODO\n", path=PATH)
    assert problems[0] == RunbookProblem(
        PATH,
        1,
        "no front matter: start the file with a `---` fenced YAML block holding service, "
        "owners, flags and tiers (see runbooks/TEMPLATE.md)",
    )
    assert "placeholder 'TODO' left in the runbook" in messages(problems)
    assert sum("no heading for Tier" in m for m in messages(problems)) == 3


# ----------------------------------------------------------------------------- time windows


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0-60 s", (0, 60)),
        ("0–60 s", (0, 60)),
        ("0—60 s", (0, 60)),
        ("0 - 60s", (0, 60)),
        ("0 to 10 seconds", (0, 10)),
        ("30-120 min", (1800, 7200)),
        ("30–120 minutes", (1800, 7200)),
        ("1-2 h", (3600, 7200)),
        ("30 min-2 h", (1800, 7200)),
        ("0.5-1.5 s", (0.5, 1.5)),
        ("500 ms-2 s", (0.5, 2)),
        ("0-60", None),  # no unit
        ("60 s", None),  # no range
        ("60-0 s", None),  # backwards
        ("0-60 parsecs", None),
        ("fast", None),
        ("", None),
    ],
)
def test_parse_window(text: str, seconds: tuple[float, float] | None) -> None:
    assert parse_window(text) == seconds


def test_format_window() -> None:
    assert format_window(0, 60) == "0–60 s"
    assert format_window(0, 10) == "0–10 s"
    assert format_window(1800, 7200) == "30–120 min"
    assert format_window(0.5, 1.5) == "0.5–1.5 s"


def test_the_playbook() -> None:
    assert [(t.tier, t.name, t.low_seconds, t.high_seconds) for t in runbook.PLAYBOOK] == [
        (1, "abort", 0, 60),
        (2, "circuit breaker", 0, 10),
        (3, "full revert", 1800, 7200),
    ]


# ----------------------------------------------------------------------------- body

SECTIONS = GOOD_BODY.split("\n## ")


def body_with(tier: int, section: str) -> str:
    """GOOD_BODY with the section of `tier` (heading included) replaced."""
    parts = list(SECTIONS)
    parts[tier] = section.removeprefix("## ")
    return "\n## ".join(parts)


BODY_CASES: list[tuple[str, str, list[tuple[int, str]]]] = [
    (
        "tier 2 heading missing",
        body_with(2, "## Circuit breaker\n\n`/rollback payment-router circuit open`\n"),
        [
            (
                1,
                'no heading for Tier 2 (circuit breaker): add "## Tier 2 — circuit breaker '
                '(0–10 s)" with its commands',
            )
        ],
    ),
    (
        "a tier heading twice",
        GOOD_BODY + "\n## Tier 1 again\n\n`x`\n",
        [(25, "a second heading for Tier 1 (the first is at line 6)")],
    ),
    (
        "a tier section with prose only",
        body_with(2, "## Tier 2 — circuit breaker (0–10 s)\n\nFlip the flag.\n"),
        [
            (
                12,
                "the Tier 2 section has no command or step: add the exact command (a `code "
                "span` or a fenced block) or a numbered list of steps",
            )
        ],
    ),
    (
        "a numbered list is a step",
        body_with(2, "## Tier 2 — circuit breaker\n\n1. Open the flag console.\n"),
        [],
    ),
    (
        "a subheading stays in the section",
        body_with(2, "## Tier 2 — circuit breaker\n\nProse.\n\n### Steps\n\n`flip`\n"),
        [],
    ),
    (
        "the section ends at the next heading of its level",
        body_with(2, "## Tier 2 — circuit breaker\n\nProse.\n\n## Notes\n\n`flip`\n"),
        [
            (
                12,
                "the Tier 2 section has no command or step: add the exact command (a `code "
                "span` or a fenced block) or a numbered list of steps",
            )
        ],
    ),
    (
        "an empty fenced block is no command",
        body_with(2, "## Tier 2 — circuit breaker\n\n```\n```\n"),
        [
            (
                12,
                "the Tier 2 section has no command or step: add the exact command (a `code "
                "span` or a fenced block) or a numbered list of steps",
            )
        ],
    ),
    (
        "a heading in a code block does not count",
        body_with(2, "## Circuit breaker\n\n```sh\n# Tier 2 — circuit breaker\nflip\n```\n"),
        [
            (
                1,
                'no heading for Tier 2 (circuit breaker): add "## Tier 2 — circuit breaker '
                '(0–10 s)" with its commands',
            )
        ],
    ),
    (
        "a setext heading is a heading, as on the page",
        body_with(2, "Tier 2 — circuit breaker\n------------------------\n\n`flip`\n"),
        [],
    ),
    (
        "an indented code block is a command",
        body_with(2, "## Tier 2 — circuit breaker\n\nRun:\n\n    flip --now\n"),
        [],
    ),
    (
        "a numbered list item with nothing in it is no step",
        body_with(2, "## Tier 2 — circuit breaker\n\n1.\n"),
        [
            (
                12,
                "the Tier 2 section has no command or step: add the exact command (a `code "
                "span` or a fenced block) or a numbered list of steps",
            )
        ],
    ),
    (
        "a heading in an indented code block does not count",
        GOOD_BODY + "\nThe end.\n\n    ## Tier 1 again\n",
        [],
    ),
    (
        "a placeholder on the third line of a paragraph",
        GOOD_BODY + "\nOne,\ntwo,\nthree <team>.\n",
        [(27, "placeholder '<team>' left in the runbook")],
    ),
    (
        "a placeholder in a link target",
        GOOD_BODY + "\nSee\n[the page](../<page>.md).\n",
        [(26, "placeholder '<page>' left in the runbook")],
    ),
    (
        "a heading window outside the playbook",
        body_with(2, "## Tier 2 — circuit breaker (0-30 s)\n\n`flip`\n"),
        [(12, "Tier 2 heading says '0-30 s', outside the playbook's 0–10 s for circuit breaker")],
    ),
    (
        "a heading for a tier the playbook does not have",
        GOOD_BODY + "\n## Tier 4 — pray\n\n`x`\n",
        [(25, "heading 'Tier 4 — pray': the playbook has tiers 1, 2 and 3")],
    ),
    (
        "TODO, TBD and FIXME anywhere, code included",
        GOOD_BODY + "\nTODO: dashboards\n\n```sh\nflip  # TBD\n```\nFIXME\n",
        [
            (25, "placeholder 'TODO' left in the runbook"),
            (28, "placeholder 'TBD' left in the runbook"),
            (30, "placeholder 'FIXME' left in the runbook"),
        ],
    ),
    (
        "<fill me> anywhere, code included",
        GOOD_BODY + "\nDashboard: <fill me>\n\n`curl <Fill in URL>`\n",
        [
            (25, "placeholder '<fill me>' left in the runbook"),
            (27, "placeholder '<Fill in URL>' left in the runbook"),
        ],
    ),
    (
        "a placeholder in prose",
        GOOD_BODY + "\nDashboard: <dashboard link>, owner <team>.\n",
        [
            (25, "placeholder '<dashboard link>' left in the runbook"),
            (25, "placeholder '<team>' left in the runbook"),
        ],
    ),
    (
        "not placeholders: code, autolinks, e-mail, HTML, comparisons, arrows, lower-case todo",
        GOOD_BODY + "\nRun `git revert <sha>`, see <https://x.example>, <oncall@example.com>,\n"
        "<br> <details><summary>more</summary></details> <!-- note -->,\n"
        "errors < 2 % and p95 > 300 ms, a <-> b, things to do: todo list.\n",
        [],
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [pytest.param(b, e, id=name) for name, b, e in BODY_CASES],
)
def test_body_rules(body: str, expected: list[tuple[int, str]]) -> None:
    assert [(p.line, p.message) for p in run(body=body)] == expected


def test_a_heading_window_must_agree_with_the_front_matter() -> None:
    fm = changed(put("0-30 s", "tiers", 0, "time"))
    assert [(p.line, p.message) for p in run(fm)] == [
        (6, "Tier 1 heading says '0–60 s' but the front matter says 0–30 s")
    ]


# ----------------------------------------------------------------------------- links

LINK_CASES: list[tuple[str, str, list[str]]] = [
    ("an existing relative link", "[readme](../README.md)", []),
    (
        "a missing relative link",
        "[rules](../deploy/prometheus/nope.yaml)",
        [
            "link to '../deploy/prometheus/nope.yaml': no such file (relative to the runbook's "
            "directory)"
        ],
    ),
    ("a fragment is dropped", "[readme](../README.md#install)", []),
    ("a title is allowed", '[readme](../README.md "the readme")', []),
    ("percent-encoding is decoded", "[x](a%20b.md)", []),
    ("an angle-bracket destination", "[x](<a b.md>)", []),
    (
        "an image",
        "![graph](img/nope.png)",
        ["link to 'img/nope.png': no such file (relative to the runbook's directory)"],
    ),
    ("a URL is not checked", "[grafana](https://grafana.example.com/d/abc)", []),
    ("a mailto is not checked", "[mail](mailto:payments@example.com)", []),
    ("an anchor is not checked", "[tier 3](#tier-3)", []),
    ("an absolute path is not checked", "[page](/runbooks/payment-router)", []),
    ("a link in a code span is not checked", "`[x](nope.md)`", []),
    (
        "a reference definition",
        "[rollout]: ../nope.yaml",
        ["link to '../nope.yaml': no such file (relative to the runbook's directory)"],
    ),
    ("an empty target", "[x]()", ["a link with no target"]),
]


@pytest.mark.parametrize(
    ("line", "expected"),
    [pytest.param(line, e, id=name) for name, line, e in LINK_CASES],
)
def test_links(line: str, expected: list[str]) -> None:
    problems = run(body=GOOD_BODY + "\n" + line + "\n")
    assert [(p.line, p.message) for p in problems] == [(25, m) for m in expected]


def test_reference_links_and_links_inside_paragraphs_are_at_their_lines() -> None:
    body = (
        GOOD_BODY + "\nSee [one][a] and\n[two](../gone.md), ![img](../pic.png) ![b][b].\n\n"
        "[a]: ../nope.md\n[b]: ../nope.png\n"
    )
    assert [(p.line, p.message) for p in run(body=body)] == [
        (26, "link to '../gone.md': no such file (relative to the runbook's directory)"),
        (26, "link to '../pic.png': no such file (relative to the runbook's directory)"),
        (28, "link to '../nope.md': no such file (relative to the runbook's directory)"),
        (29, "link to '../nope.png': no such file (relative to the runbook's directory)"),
    ]


def test_links_in_code_blocks_are_not_checked_and_without_exists_none_are() -> None:
    body = GOOD_BODY + "\n```\n[x](nope.md)\n```\n[y](nope.md)\n"
    assert messages(run(body=body)) == [
        "link to 'nope.md': no such file (relative to the runbook's directory)"
    ]
    assert run(body=body, exists=None) == []


# ----------------------------------------------------------------------------- catalog

CATALOG_CASES: list[tuple[str, Change, Change, list[str]]] = [
    (
        "namespace differs",
        put("checkout", "namespace"),
        lambda c: None,
        [
            "namespace disagrees with the catalog: the runbook says 'checkout', "
            "services.payment-router.namespace says 'payments'"
        ],
    ),
    ("namespace not written: not compared", delete("namespace"), lambda c: None, []),
    (
        "rollout differs",
        put("payment-router-v2", "rollout"),
        lambda c: None,
        [
            "rollout disagrees with the catalog: the runbook says 'payment-router-v2', "
            "services.payment-router.rollout says 'payment-router'"
        ],
    ),
    (
        "channel differs",
        lambda fm: None,
        put("C0123456789", "channel"),
        [
            "channel disagrees with the catalog: the runbook says '#payments-deploys', "
            "services.payment-router.channel says 'C0123456789'"
        ],
    ),
    (
        "circuit flag differs",
        put("payments.router.kill", "flags", "circuit"),
        lambda c: None,
        [
            "flags.circuit disagrees with the catalog: the runbook says 'payments.router.kill', "
            "services.payment-router.flags.circuit says 'payments.new-router.circuit-open'"
        ],
    ),
    (
        "experiment flag only in the catalog",
        delete("flags", "experiment"),
        lambda c: None,
        [
            "flags.experiment disagrees with the catalog: the runbook has none, "
            "services.payment-router.flags.experiment says 'payments.dynamic-currency.enabled'"
        ],
    ),
    (
        "experiment flag only in the runbook",
        lambda fm: None,
        put(None, "flags", "experiment"),
        [
            "flags.experiment disagrees with the catalog: the runbook says "
            "'payments.dynamic-currency.enabled', services.payment-router.flags.experiment "
            "has none"
        ],
    ),
    (
        "catalog flag as an inventory mapping",
        lambda fm: None,
        put({"key": "payments.new-router.circuit-open", "owner": "on-call"}, "flags", "circuit"),
        [],
    ),
    (
        "owners group differs",
        put("S0OTHER", "owners", "slack_usergroup"),
        lambda c: None,
        [
            "owners.slack_usergroup disagrees with the catalog: the runbook says 'S0OTHER', "
            "services.payment-router.owners.slack_usergroup says 'S0PAYMENTS'"
        ],
    ),
    (
        "escalation policy missing from the catalog",
        lambda fm: None,
        put({"service_id": "PSVC123"}, "pagerduty"),
        [
            "owners.pagerduty_escalation_policy disagrees with the catalog: the runbook says "
            "'PESC123', services.payment-router.pagerduty.escalation_policy_id has none"
        ],
    ),
    (
        "escalation policy differs",
        put("PESC999", "owners", "pagerduty_escalation_policy"),
        lambda c: None,
        [
            "owners.pagerduty_escalation_policy disagrees with the catalog: the runbook says "
            "'PESC999', services.payment-router.pagerduty.escalation_policy_id says 'PESC123'"
        ],
    ),
]


@pytest.mark.parametrize(
    ("fm_change", "catalog_change", "expected"),
    [pytest.param(f, c, e, id=name) for name, f, c, e in CATALOG_CASES],
)
def test_catalog_rules(fm_change: Change, catalog_change: Change, expected: list[str]) -> None:
    problems = run(changed(fm_change), catalog_entry=changed(catalog_change, CATALOG))
    assert messages(problems) == expected


def test_the_template_is_not_compared_with_a_catalog() -> None:
    assert lint(TEMPLATE_FM, TEMPLATE_BODY, path="T.md", template=True, catalog_entry=CATALOG) == []


# ----------------------------------------------------------------------------- template

TEMPLATE_CASES: list[tuple[str, Change, list[str]]] = [
    (
        "experiment flag missing",
        delete("flags", "experiment"),
        ["flags.experiment is missing (the template shows every key)"],
    ),
    (
        "namespace missing",
        delete("namespace"),
        ["`namespace` is missing (the template shows every key)"],
    ),
    ("channel missing", delete("channel"), ["`channel` is missing (the template shows every key)"]),
    (
        "escalation policy missing",
        delete("owners", "pagerduty_escalation_policy"),
        ["owners.pagerduty_escalation_policy is missing (the template shows every key)"],
    ),
    (
        "a widened window",
        put("0-60 s", "tiers", 1, "time"),
        ["tier 2 time '0-60 s' (0–60 s) is outside the playbook's 0–10 s for circuit breaker"],
    ),
    (
        "a TODO",
        put("TODO", "rollout"),
        ["rollout is a placeholder ('TODO'): fill it in"],
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(c, e, id=name) for name, c, e in TEMPLATE_CASES],
)
def test_template_rules(change: Change, expected: list[str]) -> None:
    fm = changed(change, TEMPLATE_FM)
    body = re.sub(r" \(\d+–\d+ \w+\)$", "", TEMPLATE_BODY, flags=re.MULTILINE)
    assert messages(lint(fm, body, path="T.md", template=True)) == expected


def test_the_template_refuses_todo_in_the_body_but_allows_fill_me() -> None:
    body = TEMPLATE_BODY + "\n<fill me> TODO\n"
    problems = lint(TEMPLATE_FM, body, path="T.md", template=True)
    assert messages(problems) == ["placeholder 'TODO' left in the runbook"]


def test_the_template_skips_links_with_placeholders_but_checks_the_others() -> None:
    body = TEMPLATE_BODY + "\n[a](../<service>.md) [b](../nope.md)\n"
    problems = lint(TEMPLATE_FM, body, path="T.md", template=True, exists=EXISTING.__contains__)
    assert messages(problems) == [
        "link to '../nope.md': no such file (relative to the runbook's directory)"
    ]


# ----------------------------------------------------------------------------- lines


def test_front_matter_problems_are_at_their_key_lines_or_the_nearest_parent() -> None:
    fm = changed(put("0-30 s", "tiers", 1, "time"))
    fm["tiers"].pop(2)
    del fm["flags"]["circuit"]
    key_lines = {("flags",): 10, ("flags", "release"): 11, ("tiers",): 16, ("tiers", 1): 18}
    problems = run(fm, key_lines=key_lines, body_line=22, body=GOOD_BODY.replace("(0–10 s)", ""))
    assert [(p.line, p.message) for p in problems] == [
        (10, "flags.circuit is missing (the ops toggle Tier 2 sets to true)"),
        (16, "tier 3 (full revert, 30–120 min) is missing from tiers"),
        (18, "tier 2 time '0-30 s' (0–30 s) is outside the playbook's 0–10 s for circuit breaker"),
    ]


def test_body_problems_are_offset_by_the_body_line_and_sorted() -> None:
    body = "TODO first\n" + GOOD_BODY
    fm = changed(delete("service"))
    problems = run(fm, body=body, body_line=20, key_lines={("owners",): 3})
    assert [(p.line, p.message) for p in problems] == [
        (1, "`service` is missing: the service's key in the catalog"),
        (20, "placeholder 'TODO' left in the runbook"),
    ]
    assert str(problems[1]) == f"{PATH}:20: placeholder 'TODO' left in the runbook"


def test_the_parsed_file_gives_file_lines() -> None:
    text = "---\nservice: payment-router\n---\n" + GOOD_BODY + "\nTODO\n"
    document = markdown.parse(text)
    problems = run(body=document)
    assert [(p.line, p.message) for p in problems] == [
        (28, "placeholder 'TODO' left in the runbook")
    ]
    assert problems == run(body=document.body, body_line=document.body_line)
