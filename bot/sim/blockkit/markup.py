"""The small HTML helpers every part of the Block Kit renderer shares.

Escaping (`esc`, quotes too) and attributes (`html_attrs`), the only way outside text
reaches the page; the lenient readers of untrusted JSON (`as_str`, `as_dict`, `as_list`:
a wrong type reads as empty, never raises); Slack's escapes undone (`unslack`) before
escaping for HTML; `safe_url`, the one gate for links and images (http/https/mailto, or
http/https for images); and the placeholder of anything unsupported (`unsupported`, with
the class `UNKNOWN_CLASS`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EMPTY",
    "IMAGE_SCHEMES",
    "LINK_SCHEMES",
    "UNKNOWN_CLASS",
    "as_dict",
    "as_list",
    "as_str",
    "esc",
    "html_attrs",
    "safe_url",
    "unslack",
    "unsupported",
]

UNKNOWN_CLASS = "bk-unknown"
EMPTY: Mapping[str, str] = {}

LINK_SCHEMES = ("http://", "https://", "mailto:")
IMAGE_SCHEMES = ("http://", "https://")
_VOID = frozenset({"br", "hr", "img", "input"})


def esc(value: object) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def html_attrs(**attrs: object) -> str:
    """` name="value"` pairs (data_action_id → data-action-id); None and False omitted."""
    out = []
    for name, value in attrs.items():
        if value is None or value is False or value == "":
            continue
        key = name.rstrip("_").replace("_", "-")
        out.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    return "".join(out)


def as_str(value: object) -> str:
    """The value when it is a string, else ""."""
    return value if isinstance(value, str) else ""


def as_dict(value: object) -> Mapping[str, Any]:
    """The value when it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    """The value as a list when it is a list or a tuple, else an empty one."""
    return list(value) if isinstance(value, list | tuple) else []


def unslack(text: str) -> str:
    """Slack's three escapes back to characters (before escaping for HTML)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def safe_url(url: str, schemes: tuple[str, ...] = LINK_SCHEMES) -> str | None:
    """The URL when it is a usable link with one of `schemes`, else None."""
    url = unslack(url).strip()
    if not url or len(url) > 3000 or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    return url if url.lower().startswith(schemes) else None


def unsupported(kind: str, what: object, *, inline: bool = False) -> str:
    """The placeholder of an unknown or malformed block, element or view."""
    tag = "span" if inline else "div"
    return f'<{tag} class="{UNKNOWN_CLASS}">unsupported {esc(kind)}: {esc(what)}</{tag}>'
