"""A Slack Web API server and a signed-request sender, for the demo and the tests.

`SlackSim` answers the Web API methods rollbot calls, over real HTTP, with Slack's shapes:
HTTP 200 and `{"ok": false, "error": …}` for API errors, HTTP 429 with `Retry-After` for
rate limits. It records every call and keeps the channel history (edits applied, thread
replies linked by `thread_ts`) so tests assert on what reached Slack, not on SDK calls.
A chat.postMessage to a user id lands in the app's DM with that user, answered with its
`D…` conversation id, as Slack does (`direct_messages(user)`).

`SlackSender` plays Slack's side of the Events/Interactivity endpoints: it builds slash
commands and button clicks exactly as Slack sends them (form-encoded, signed with the
signing secret, with `X-Slack-Retry-*` on retries), Events API callbacks (JSON, signed the
same way; `app_home_opened`), and can forge or age a request; `.send()` posts one.

Modals: `views.open` validates the view as Slack does (title, submit when there are input
blocks, at most 100 blocks) and opens it for the user the trigger id was minted for
(`mint_trigger_id(user)`; the sender's clicks and commands mint them for the clicking
user), refusing a trigger id as Slack does: not shaped as one (`invalid_trigger_id`), older
than `trigger_ttl` (`expired_trigger_id`; 3 s, 0 to refuse every one), used before
(`exchanged_trigger_id`). `open_views(user)` lists what is open; the sender's
`view_submission`, sent, posts a submission exactly as Slack does and applies the bot's
answer (an empty ack closes the view, `response_action: errors` keeps it open with
`view_errors(view_id)`, `update` replaces it, `clear` closes it); `close_view` is the user
pressing Cancel.

The App Home: `views.publish` validates the home view's blocks (at most 100) and keeps
every view published per user (`published_views(user)`); the sender's `app_home_opened`
carries the user's current home view, as Slack does once one was published.

Socket Mode: apps.connections.open, called with the app-level token, answers the URL of a
WebSocket link (`SlackSim.socket`, a `SocketModeServer`): ``hello``, then each request Slack
would have POSTed, as an envelope the app acknowledges within 3 s (late and missing acks
recorded), and ``disconnect`` on demand. `SlackSender(..., socket_mode=True)` delivers its
requests that way.

Incoming webhooks: `incoming_webhook(channel)` gives a URL bound to a channel, as an app's
webhook is; a JSON (or form `payload`) message posted there lands in that channel and is
answered `ok` in plain text, or with Slack's status and error string (`webhook_calls`).

Shapes follow the Slack API docs and the payloads in tests/fixtures/slack/.

The package, by responsibility:

    server.py     SlackSim: routes, auth, rate limits, forced failures (a window of 429s,
                  answers lost after the call was processed), the recorded requests
    methods.py    the Web API methods (chat.*, views.*, users.*, usergroups.*,
                  conversations.* with history and message metadata, …)
    workspace.py  the workspace's state and Slack's bookkeeping on it
    limits.py     the Block Kit checks (block_errors, modal_errors)
    sender.py     SlackSender and SignedRequest: signed requests to the bot
    socket_mode.py  SocketModeServer: Socket Mode's links, envelopes and acks
    webhooks.py   incoming webhooks: the body's checks and errors, the post to the
                  webhook's channel (`SlackSim.incoming_webhook(channel)` mints the URL)
"""

from bot.sim.slack.limits import block_elements, block_errors, modal_errors
from bot.sim.slack.sender import SignedRequest, SlackSender
from bot.sim.slack.server import METHOD_TIERS, RecordedResponse, SlackSim
from bot.sim.slack.socket_mode import (
    ACK_DEADLINE,
    Envelope,
    NoConnection,
    SocketConnection,
    SocketModeServer,
)
from bot.sim.slack.workspace import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID

__all__ = [
    "ACK_DEADLINE",
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "METHOD_TIERS",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "Envelope",
    "NoConnection",
    "RecordedResponse",
    "SignedRequest",
    "SlackSender",
    "SlackSim",
    "SocketConnection",
    "SocketModeServer",
    "block_elements",
    "block_errors",
    "modal_errors",
]
