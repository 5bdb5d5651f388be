"""Atlassian Document Format (ADF), as far as the Jira sim reads it.

REST v2 answers rich-text fields (description, environment, comment bodies) as strings, but
clients may send an ADF document (``{"type": "doc", "content": [...]}``, as REST v3 and the
Jira Cloud OpenAPI examples do). The sim stores such a document as the plain text of its
paragraphs. The model reads ADF on the way in, so it lives here, apart from `render`
(which imports the model).
"""

from __future__ import annotations

from typing import Any

__all__ = ["adf_text", "is_adf", "text_of"]


def is_adf(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and isinstance(value.get("content"), list)
    )


def adf_text(node: Any) -> str:
    """The plain text of an ADF document: its block nodes' text, one per paragraph."""
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    parts = [adf_text(child) for child in node.get("content", []) or []]
    if node.get("type") == "doc":
        return "\n\n".join(p for p in parts if p)
    return "".join(parts)


def text_of(value: Any) -> str | None:
    """A rich-text value as text: a string as it is, an ADF document's text, else None."""
    if isinstance(value, str):
        return value
    if is_adf(value):
        return adf_text(value)
    return None
