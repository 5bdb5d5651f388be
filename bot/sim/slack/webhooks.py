"""Incoming webhooks, as a Slack app's are (https://api.slack.com/messaging/webhooks).

A webhook URL, `https://hooks.slack.com/services/T…/B…/<secret>`, is bound to one channel
when it is made; whoever knows the URL posts there, with no token. The body is the message
as JSON (`Content-Type: application/json`), or the same JSON in a form's `payload` field.
Slack answers HTTP 200 with the plain-text body `ok`, and otherwise an HTTP status and a
plain-text error string (https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-
incoming-webhooks), of which the sim gives:

    400 invalid_payload                            the body is not a JSON object
    400 missing_text_or_fallback_or_attachments    no `text`, `blocks` or `attachments`
    400 invalid_blocks                             blocks Slack would refuse
    400 too_many_attachments                       more than 100 attachments
    403 invalid_token                              a known webhook, the wrong secret
    404 no_team / no_service                       an unknown workspace / webhook
    429 rate_limited (with Retry-After)            over the channel's posting rate

An app's webhook ignores `channel`, `username`, `icon_emoji` and `icon_url` in the body:
it always posts to its own channel as the app (only legacy custom integrations could
change them at runtime). Posts share the channel's "one message per second" with
chat.postMessage (https://api.slack.com/docs/rate-limits: "including Incoming Webhooks").

This module holds the body's checks and the post itself; `bot.sim.slack.server` mints the
URLs (`SlackSim.incoming_webhook(channel)`), routes, rate-limits and records the calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bot.sim.slack.limits import block_errors
from bot.sim.slack.workspace import Workspace

__all__ = ["MAX_ATTACHMENTS", "WEBHOOK_PREFIX", "Hook", "WebhookError", "parse_payload", "post"]

WEBHOOK_PREFIX = "/services/"
MAX_ATTACHMENTS = 100


@dataclass(frozen=True, slots=True)
class Hook:
    """One webhook the sim minted: its secret and the channel id it posts to."""

    secret: str
    channel: str


class WebhookError(Exception):
    """An incoming webhook's refusal: its HTTP status and plain-text error string."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def parse_payload(raw: bytes, content_type: str) -> dict[str, Any]:
    """The message a webhook call carries: a JSON body, or JSON in a form's `payload`."""
    text = raw.decode("utf-8", errors="replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = dict(parse_qsl(text, keep_blank_values=True)).get("payload", "")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        raise WebhookError(400, "invalid_payload") from None
    if not isinstance(payload, dict):
        raise WebhookError(400, "invalid_payload")
    return payload


def post(ws: Workspace, hook: Hook, payload: dict[str, Any]) -> dict[str, Any]:
    """Post `payload` in the webhook's channel as the app; the message as stored."""
    text = payload.get("text")
    blocks = payload.get("blocks")
    attachments = payload.get("attachments")
    if (
        (text is not None and not isinstance(text, str))
        or (blocks is not None and not isinstance(blocks, list))
        or (attachments is not None and not isinstance(attachments, list))
        or any(not isinstance(a, dict) for a in attachments or [])
    ):
        raise WebhookError(400, "invalid_payload")
    if not text and not blocks and not attachments:
        raise WebhookError(400, "missing_text_or_fallback_or_attachments")
    if blocks and block_errors(blocks):
        raise WebhookError(400, "invalid_blocks")
    if attachments and len(attachments) > MAX_ATTACHMENTS:
        raise WebhookError(400, "too_many_attachments")
    return ws.store_message(hook.channel, text or "", blocks, None, attachments=attachments)
