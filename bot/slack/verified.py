"""What the two ways in put in Bolt's context once a request is known to come from Slack:
`bot.web.slack` when its signature verified, `bot.slack.socket_mode` for an envelope read
from the Socket Mode connection (Slack signs no envelope: the app-level token authenticated
the connection, and only Slack writes to it).

- `VERIFIED`: the error handler answers only requests that carry it (an unverified body's
  ``response_url`` is never used).
- `SIGNATURE`: an HTTP request's ``X-Slack-Signature``. Slack signs the timestamp and the
  body, so a request replayed byte for byte carries the same one; a slash command's work
  runs only the first time it is seen (`bot.slack.listeners.common.once`).
- `ENVELOPE`: a Socket Mode envelope's ``envelope_id``, the same at every delivery of that
  envelope (Slack re-sending one whose ack it did not get): a slash command's work runs only
  the first time it is seen, as for a signature.
- `REPLAY_MEMORY`: how long a signature or envelope id is remembered
  (`SqlStore.first_seen`): longer than the five minutes after which Slack's signature check
  refuses the request anyway.
"""

from __future__ import annotations

from datetime import timedelta

VERIFIED = "rollbot_verified"
SIGNATURE = "rollbot_signature"
ENVELOPE = "rollbot_envelope"
REPLAY_MEMORY = timedelta(minutes=10)

__all__ = ["ENVELOPE", "REPLAY_MEMORY", "SIGNATURE", "VERIFIED"]
