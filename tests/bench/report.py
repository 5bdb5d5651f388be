"""The one table of every benchmark figure (issue 17): `python -m tests.bench.report`.

Reads `bench-results.json` (tests/bench/results.py) and prints each figure with its
target, the baseline measured in the same run and the ratio to it, and whether the target
was met. `--readme` also writes the table into README.md between the markers

    <!-- bench-table:begin -->  …  <!-- bench-table:end -->

so the README shows the figures of the last `make bench` (tests/unit/docs checks that the
README's table is the one the committed results give). The benches write their charts to
docs/bench/ themselves (tests/bench/charts.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.bench.results import RESULTS

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- bench-table:begin -->"
END = "<!-- bench-table:end -->"


def load(path: Path = RESULTS) -> list[dict[str, Any]]:
    try:
        rows = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    return (
        [r for r in rows if isinstance(r, dict) and "name" in r] if isinstance(rows, list) else []
    )


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)


def ratio(row: dict[str, Any]) -> str:
    value, baseline = row.get("value"), row.get("baseline")
    if not isinstance(value, (int, float)) or not isinstance(baseline, (int, float)):
        return ""
    if baseline == 0:
        return ""
    return f"{value / baseline:.2f}×"


def _verdict(row: dict[str, Any]) -> str:
    met = row.get("met")
    return "" if met is None else ("met" if met else "**not met**")


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per figure, sorted by name (so a bench's figures sit
    together)."""
    lines = [
        "| figure | value | unit | target | baseline (same run) | ratio | verdict |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for row in sorted(rows, key=lambda r: str(r["name"])):
        lines.append(
            f"| `{row['name']}` | {_num(row.get('value'))} | {row.get('unit') or ''} "
            f"| {_num(row.get('target'))} | {_num(row.get('baseline'))} | {ratio(row)} "
            f"| {_verdict(row)} |"
        )
    return "\n".join(lines)


def with_table(readme: str, rendered: str) -> str:
    """README's text with the table between the markers replaced by `rendered`."""
    head, begin, rest = readme.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"README.md has no {BEGIN} … {END} section")
    return f"{head}{BEGIN}\n{rendered}\n{END}{tail}"


def main(argv: list[str]) -> int:
    rows = load()
    rendered = table(rows)
    print(rendered)
    unmet = [r["name"] for r in rows if r.get("met") is False]
    if unmet:
        print(f"\n{len(unmet)} target(s) not met: {', '.join(unmet)}")
    if "--readme" in argv:
        README.write_text(with_table(README.read_text(), rendered))
        print(f"\nwrote the table into {README.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
