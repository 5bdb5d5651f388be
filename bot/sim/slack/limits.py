"""The Block Kit limits the Slack sim enforces, as Slack's Web API does.

`block_errors` is what chat.postMessage, chat.update, chat.postEphemeral and views.publish
refuse in a list of blocks (`invalid_blocks`, or `invalid_arguments` for a view);
`modal_errors` adds what views.open refuses in a modal (title, submit, close,
private_metadata, callback_id). Both return Slack's messages with their JSON pointers, so a
test can assert that what rollbot builds would pass (`block_errors(blocks) == []`).

These checks reject; `bot.sim.blockkit` renders (Block Kit → HTML for the workbench). The one
walk they share, a block's interactive elements, is `block_elements` here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["block_elements", "block_errors", "modal_errors"]


def block_elements(block: dict[str, Any]) -> list[Any]:
    """A block's elements and then its accessory (where Slack puts a section's button)."""
    elements = list(block.get("elements") or [])
    if isinstance(block.get("accessory"), dict):
        elements.append(block["accessory"])
    return elements


def block_errors(blocks: Any, *, max_blocks: int = 50, pointer: str = "/blocks") -> list[str]:
    """The Block Kit limits Slack enforces on a message (a subset; enough to catch bugs).

    A message takes at most 50 blocks, a modal or the Home tab 100 (`max_blocks`).
    """
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors = []
    if len(blocks) > max_blocks:
        errors.append(f"must provide no more than {max_blocks} items [json-pointer:{pointer}]")
    action_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"[json-pointer:{pointer}/{i}]"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"missing required field: type {where}")
            continue
        text = block.get("text")
        if block["type"] == "header" and (
            not isinstance(text, dict) or text.get("type") != "plain_text"
        ):
            errors.append(f"must be a plain_text object {where}/text")
        if block["type"] == "context" and len(block.get("elements") or []) > 10:
            errors.append(f"must provide no more than 10 items {where}/elements")
        if isinstance(text, dict):
            limit = 150 if block["type"] == "header" else 3000
            if len(str(text.get("text", ""))) > limit:
                errors.append(f"must be less than {limit + 1} characters {where}/text")
        fields = block.get("fields") or []
        if len(fields) > 10:
            errors.append(f"must provide no more than 10 items {where}/fields")
        for f in fields:
            if len(str(f.get("text", ""))) > 2000:
                errors.append(f"must be less than 2001 characters {where}/fields")
        for el in block_elements(block):
            if not isinstance(el, dict) or el.get("type") != "button":
                continue
            if len(str(el.get("text", {}).get("text", ""))) > 75:
                errors.append(f"must be less than 76 characters {where}/elements/text")
            if len(str(el.get("value", ""))) > 2000:
                errors.append(f"must be less than 2001 characters {where}/elements/value")
            aid = el.get("action_id")
            if aid is not None:
                if aid in action_ids:
                    errors.append(f"action_id already exists {where}/elements")
                action_ids.add(aid)
    return errors


def modal_errors(view: dict[str, Any]) -> list[str]:
    """What Slack refuses in a modal: a title (plain_text, at most 24 characters), submit
    and close likewise, a submit button when there are input blocks, private_metadata at
    most 3000 characters, callback_id at most 255, and the blocks' limits (100 blocks)."""
    errors: list[str] = []
    for name, required in (("title", True), ("submit", False), ("close", False)):
        obj = view.get(name)
        if obj is None:
            if required:
                errors.append(f"missing required field: {name} [json-pointer:/view/{name}]")
            continue
        if not isinstance(obj, dict) or obj.get("type") != "plain_text":
            errors.append(f"must be a plain_text object [json-pointer:/view/{name}]")
        elif len(str(obj.get("text", ""))) > 24:
            errors.append(f"must be less than 25 characters [json-pointer:/view/{name}/text]")
    blocks = view.get("blocks")
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    )
    if has_input and view.get("submit") is None:
        errors.append("must provide submit when using input blocks [json-pointer:/view/submit]")
    if len(str(view.get("private_metadata") or "")) > 3000:
        errors.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
    if len(str(view.get("callback_id") or "")) > 255:
        errors.append("must be less than 256 characters [json-pointer:/view/callback_id]")
    errors.extend(block_errors(blocks, max_blocks=100, pointer="/view/blocks"))
    return errors
