"""The runbook linter's text rules, shared by the front-matter and the body rules.

Time windows (``"0-60 s"``, ``"30 min-2 h"``: `parse_window`, `format_window`, and
`WINDOW_IN_TEXT` for a window inside a heading) and placeholders (`MARKER_WORD` for
``TODO``/``TBD``/``FIXME``, `FILL_ME` for ``<fill me>``, `placeholders` for the
``<placeholders>`` that are not autolinks, addresses or HTML tags), with the regexes they use.
"""

from __future__ import annotations

import re

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
WINDOW_IN_TEXT = re.compile(rf"(?<![\w.]){_RANGE}\b", re.IGNORECASE)

SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
MARKER_WORD = re.compile(r"\b(?:TODO|TBD|FIXME)\b")  # upper case: "to do" is prose
FILL_ME = re.compile(r"<\s*fill[\s_-]*(?:me|in)\b[^<>\n]*>", re.IGNORECASE)
_ANGLE = re.compile(r"<(?=[^\s<>])([^<>\n]*?)(?<=\S)>")
_HTML_TAG = re.compile(r"^/?([a-z][a-z0-9]*)(\s[^<>]*)?/?$", re.IGNORECASE)
_HTML_TAG_NAMES = (
    "a abbr b br code dd del details div dl dt em h1 h2 h3 h4 h5 h6 hr i img ins kbd li ol p "
    "pre q s samp small span strong sub summary sup table tbody td th thead tr u ul var"
)
_HTML_TAGS = frozenset(_HTML_TAG_NAMES.split())


def parse_window(text: str) -> tuple[float, float] | None:
    """``"0-60 s"``, ``"0–60 s"``, ``"30-120 min"``, ``"0 to 10 seconds"``, ``"30 min-2 h"``
    → (low, high) in seconds; None when it is not such a window (or low > high)."""
    match = _WINDOW.match(text)
    return window_of(match) if match else None


def format_window(low: float, high: float) -> str:
    """(0, 60) → ``0–60 s``; (1800, 7200) → ``30–120 min``."""
    if low % 60 == 0 and high % 60 == 0 and high >= 60 * 5:
        return f"{_number(low / 60)}–{_number(high / 60)} min"
    return f"{_number(low)}–{_number(high)} s"


def window_of(match: re.Match[str]) -> tuple[float, float] | None:
    """A match of `WINDOW_IN_TEXT` (or of a whole window) → (low, high) in seconds; None
    for an unknown unit or low > high."""
    unit = _UNITS.get(match["unit"].lower())
    low_unit = _UNITS.get(match["low_unit"].lower()) if match["low_unit"] else unit
    if unit is None or low_unit is None:
        return None
    low, high = float(match["low"]) * low_unit, float(match["high"]) * unit
    return (low, high) if low <= high else None


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def placeholders(text: str) -> list[str]:
    """The ``<placeholders>`` in `text`: not autolinks, e-mail addresses, HTML comments or
    known HTML tags, and with a letter or digit in them (``a <-> b`` is no placeholder)."""
    return [m.group(0) for m in _ANGLE.finditer(text) if not _not_placeholder(m.group(1))]


def _not_placeholder(inner: str) -> bool:
    if not re.search(r"[a-z0-9]", inner, re.IGNORECASE):
        return True
    if SCHEME.match(inner) or inner.startswith("!") or ("@" in inner and " " not in inner):
        return True
    tag = _HTML_TAG.match(inner)
    return tag is not None and tag.group(1).lower() in _HTML_TAGS
