"""What `bot.web.slack` puts in Bolt's context once a request's signature verified.

- `VERIFIED`: the error handler answers only requests that carry it (an unverified body's
  ``response_url`` is never used).
- `SIGNATURE`: the request's ``X-Slack-Signature``. Slack signs the timestamp and the body,
  so a request replayed byte for byte carries the same one; a slash command's work runs only
  the first time it is seen (`bot.slack.listeners.common.once`).
- `REPLAY_MEMORY`: how long a signature is remembered (`SqlStore.first_seen`): longer than
  the five minutes after which Slack's signature check refuses the request anyway.
"""

from __future__ import annotations

from datetime import timedelta

VERIFIED = "rollbot_verified"
SIGNATURE = "rollbot_signature"
REPLAY_MEMORY = timedelta(minutes=10)

__all__ = ["REPLAY_MEMORY", "SIGNATURE", "VERIFIED"]
