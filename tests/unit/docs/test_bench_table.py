"""README's Performance section shows the figures of the committed bench-results.json
(`make bench` writes both), and every chart it shows exists."""

from __future__ import annotations

import re

from tests.bench import report


def test_the_readme_table_is_the_one_the_results_give() -> None:
    readme = report.README.read_text()
    assert report.with_table(readme, report.table(report.load())) == readme


def test_every_chart_the_readme_shows_exists() -> None:
    readme = report.README.read_text()
    charts = re.findall(r"\]\((docs/bench/[^)]+\.png)\)", readme)
    for chart in charts:
        assert (report.README.parent / chart).is_file(), chart


def test_the_table_gives_the_ratio_to_the_baseline_and_the_verdict() -> None:
    rows = [
        {
            "name": "b.fast",
            "value": 30.0,
            "unit": "ms",
            "target": 50,
            "baseline": 20.0,
            "met": True,
        },
        {"name": "a.slow", "value": 90, "unit": "ms", "target": 50, "baseline": None, "met": False},
    ]
    lines = report.table(rows).splitlines()
    assert lines[2].startswith("| `a.slow` | 90 | ms | 50 |") and "**not met**" in lines[2]
    assert "| 1.50× | met |" in lines[3]
