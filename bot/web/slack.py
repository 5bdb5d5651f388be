"""`POST /slack/events`: Slack's requests, verified on the raw bytes before anything is parsed.

Per request, in this order (the body limit was enforced while reading, by `bot.web.guard`):

1. ``X-Slack-Request-Timestamp`` must be a plain integer and ``X-Slack-Signature`` present,
   the body valid UTF-8 (Slack sends nothing else), and the signature must verify under the
   signing secret within Slack's 5 minutes (slack_sdk's `SignatureVerifier`). Otherwise
   **401**, and nothing of the request is used: no body, no ``response_url``, no user. (Bolt's
   own check raised on a timestamp like ``abc`` and handed the unverified body to the error
   handler, which posted to its ``response_url``.)
2. A verified body that is not a form, JSON or a ``payload`` of JSON object → **400**; so
   is one whose known keys hold another type than Slack sends there (``"view": null``,
   ``"actions": {}``, ``"event": "x"``): Bolt indexes into them unchecked, and raised.
3. Bolt runs the listeners, with the verified mark and the signature in the context
   (`bot.slack.verified`): the error handler answers only verified requests, and a slash
   command replayed byte for byte (the same signature) is acked but its work is not run
   (`bot.slack.listeners.common.once`; the signatures seen are kept in the database, shared
   by replicas). That check is after the ack, not here: a database write on this path made
   every ack wait on it.

No body reaches a log line: a refusal logs why, never what, and at most once per 10 s per
reason (`bot.web.refusals`): a flood must not write the log.
"""

from __future__ import annotations

import logging

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.runtime.metrics import Metrics
from bot.slack import shapes
from bot.slack.verified import SIGNATURE, VERIFIED
from bot.web.refusals import RefusalLog

log = logging.getLogger(__name__)

PATH = "/slack/events"


def _timestamp_ok(value: str | None) -> bool:
    return value is not None and value.isascii() and value.isdigit() and len(value) <= 12


class SlackReceiver:
    """The endpoint and its collaborators."""

    def __init__(self, *, bolt: AsyncApp, signing_secret: str, metrics: Metrics) -> None:
        self._bolt = bolt
        self._verifier = SignatureVerifier(signing_secret)
        self._metrics = metrics
        self._refusals = RefusalLog(log)

    def _answer(self, response: Response) -> Response:
        self._metrics.http_requests.labels(PATH, str(response.status_code)).inc()
        return response

    def _refuse(self, status: int, why: str) -> Response:
        return self._answer(JSONResponse({"error": why}, status_code=status))

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not _timestamp_ok(timestamp) or not signature:
            self._refusals.refused("Slack request refused: missing or malformed signature headers")
            return self._refuse(401, "missing or malformed X-Slack-Signature headers")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self._refusals.refused("Slack request refused: body is not UTF-8")
            return self._refuse(401, "invalid signature")
        if not self._verifier.is_valid(text, timestamp, signature):
            self._refusals.refused("Slack request refused: invalid or expired signature")
            return self._refuse(401, "invalid signature")
        parsed = _parse(request, text, signature)
        if isinstance(parsed, str):  # why: one of a few fixed phrases, never the body
            self._refusals.refused(
                f"Slack request refused: signed, but not a Slack payload: {parsed}"
            )
            return self._refuse(400, f"body is not a Slack payload: {parsed}")
        response = to_starlette_response(await self._bolt.async_dispatch(parsed))
        return self._answer(response)


def _parse(request: Request, text: str, signature: str) -> AsyncBoltRequest | str:
    """Bolt's request, or why not (a fixed phrase, never the body's content): the body is
    not a JSON object, a form, or a form whose ``payload`` is a JSON object (what Slack
    sends), or it is not shaped as Slack shapes its payloads (`bot.slack.shapes`)."""
    try:
        parsed = AsyncBoltRequest(
            body=text,
            query=request.query_params,  # type: ignore[arg-type]
            headers=request.headers,  # type: ignore[arg-type]
            context={VERIFIED: True, SIGNATURE: signature},
        )
    except (ValueError, RecursionError, TypeError, AttributeError, KeyError, IndexError):
        return "unreadable"  # Bolt reads team, user and channel out of the body as it parses
    if not shapes.is_object(parsed.body):
        return "not a form or a JSON object"
    return shapes.shape_problem(parsed.body) or parsed


def slack_route(*, bolt: AsyncApp, signing_secret: str, metrics: Metrics) -> Route:
    """The route for ``POST /slack/events``."""
    receiver = SlackReceiver(bolt=bolt, signing_secret=signing_secret, metrics=metrics)
    return Route(PATH, receiver.handle, methods=["POST"], name="slack_events")
