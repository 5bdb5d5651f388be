"""Reading an outside JSON body safely: the one place that turns bytes into a JSON object.

Every webhook rollbot takes (Alertmanager, PagerDuty) goes through `parse_json_object`
after its sender was authenticated. It refuses, with a message fit for a 400:

- bytes that are not UTF-8;
- text that is not JSON, or JSON that Python cannot hold (absurd nesting raises
  `RecursionError` inside `json`; a 5,000-digit integer raises `ValueError`);
- anything but an object at the top;
- nesting deeper than `MAX_DEPTH` (no sender nests past a dozen levels; later code, a
  ``json.dumps`` into the database, must not meet what the parser barely survived);
- a string, key or value, holding a lone surrogate (``"\\ud800"``): valid JSON, but not
  Unicode, so it cannot be encoded to UTF-8 again, for the database or for Slack.

Depth and strings are checked by walking the parsed value with an explicit stack, so the
check itself cannot recurse too deep. A lone surrogate can only come from a ``\\uD800``-style
escape (UTF-8 cannot carry one), so the strings are walked only when the text has such an
escape; the walk visits containers only otherwise (an alert storm's bodies are parsed on
the path of the 200).
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.core.errors import InvalidRequest

MAX_DEPTH = 64
# An escape that may stand for a surrogate (\uD800-\uDFFF); without one, none is there.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class MalformedBody(InvalidRequest, ValueError):
    """The body cannot be used; the message says what is wrong (for a 400)."""


def parse_json_object(body: bytes, *, expected: str = "a JSON object") -> dict[str, Any]:
    """The body as a JSON object, or `MalformedBody` saying why not (`expected` names what
    an empty body should have been)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise MalformedBody(f"body is empty; expected {expected}")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        raise MalformedBody(f"body is not usable JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise MalformedBody(f"body must be a JSON object, got {kind(payload)}")
    check_value(payload, strings=_SURROGATE_ESCAPE.search(text) is not None)
    return payload


def check_value(value: Any, *, max_depth: int = MAX_DEPTH, strings: bool = True) -> None:
    """Raise `MalformedBody` when `value` nests deeper than `max_depth` or holds a string
    that is not Unicode (a lone surrogate; `strings=False`: the caller knows none is there,
    and only the depth is checked)."""
    if strings:
        _check_strings(value, max_depth)
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise MalformedBody(f"body nests deeper than {max_depth} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def _check_strings(value: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise MalformedBody(f"body nests deeper than {max_depth} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedBody(
            f"a string holds a lone surrogate (\\u{ord(text[exc.start]):04x}), which is not Unicode"
        ) from None


def kind(value: Any) -> str:
    """The JSON type of `value`, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
