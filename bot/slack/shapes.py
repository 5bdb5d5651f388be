"""Is a body shaped as Slack shapes its payloads? Checked before Bolt sees it, on both ways
in: `POST /slack/events` (`bot.web.slack`, a 400) and Socket Mode (`bot.slack.socket_mode`,
no ack). Bolt and the listeners index into the keys Slack always sends as objects, lists or
text without checking them; signed (or socket-delivered) garbage there made them raise.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_object", "shape_problem"]


def is_object(body: Any) -> bool:
    return isinstance(body, dict) and all(isinstance(k, str) for k in body)


#: Keys Slack only ever sends as objects: Bolt and the listeners read into them unchecked
#: (``body["view"]["type"]``, ``view.get(…)``, ``body.get("user") or {}`` then ``.get``).
_OBJECTS = ("event", "view", "user", "team", "channel", "container", "message", "state")
#: Keys Slack only ever sends as text (or null); Bolt matches listeners on the first two.
_TEXTS = ("callback_id", "action_id", "type", "trigger_id", "response_url", "team_id")
#: Payload types whose ``actions`` Bolt reads as ``body["actions"][0]``.
_ACTION_TYPES = ("block_actions", "interactive_message")


def shape_problem(body: dict[str, Any]) -> str | None:
    """Why a verified body is not shaped like a Slack payload, or None (a fixed phrase).

    Signed garbage in a known key made Bolt or a listener raise, and answer 500 (or 404
    after 3 s): ``"view": null``, ``"actions": {}``, ``"actions": []`` on a click,
    ``"event": "x"``, an action whose ``action_id`` is a number, ``"callback_id": 5``, a
    JSON "slash command" whose text is a number, a slash command without ``user_id``."""
    for key in _OBJECTS:
        if key not in body or (body[key] is None and key not in ("event", "view")):
            continue  # absent, or null where Slack sends null (``"user": null``)
        if not isinstance(body[key], dict):
            return f"{key} is not an object"
    for key in _TEXTS:
        if body.get(key) is not None and not isinstance(body[key], str):
            return f"{key} is not text"
    for key in ("callback_id", "action_id"):  # matched as text by Bolt
        if key in body and not isinstance(body[key], str):
            return f"{key} is not text"
    actions = body.get("actions")
    if "actions" in body:
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            return "actions is not a list of objects"
        if not actions and body.get("type") in _ACTION_TYPES:
            return "actions is empty"
        if body.get("type") == "block_actions" and not all(
            isinstance(a.get("action_id"), str) for a in actions
        ):
            return "an action's action_id is not text"  # Bolt matches it as text
    if "command" in body:  # Slack sends a flat form, always with its user
        if not all(isinstance(v, str) for v in body.values()):
            return "a slash command's fields are not all text"
        if not body.get("user_id"):
            return "a slash command without user_id"
    view = body.get("view")
    if isinstance(view, dict) and "callback_id" in view:
        if not isinstance(view["callback_id"], str):
            return "view's callback_id is not text"  # matched as text by Bolt
        if not isinstance(view.get("type"), str):
            return "view has no type"  # Bolt reads body["view"]["type"] for workflow steps
    return None
