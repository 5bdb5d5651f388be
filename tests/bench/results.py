"""`bench-results.json`: the figures `make bench` measured (issue 17).

A list of objects with `name`, `value`, `unit`, `target`, `baseline` and `met`, at the
repository root. Each benchmark records its own figures with `record`; a figure measured
again replaces the one of the same name, so the file holds the latest run of every bench.
`target`, `baseline` or `met` is null where a figure has none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "bench-results.json"


def record(
    name: str,
    value: float,
    unit: str,
    *,
    target: float | None = None,
    baseline: float | None = None,
    met: bool | None = None,
    **extra: Any,
) -> None:
    """Write one figure to `bench-results.json`, replacing an earlier one of that name."""
    try:
        rows = json.loads(RESULTS.read_text())
    except (FileNotFoundError, ValueError):
        rows = []
    if not isinstance(rows, list):
        rows = []
    rows = [r for r in rows if not (isinstance(r, dict) and r.get("name") == name)]
    rows.append(
        {
            "name": name,
            "value": value,
            "unit": unit,
            "target": target,
            "baseline": baseline,
            "met": met,
            **extra,
        }
    )
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
