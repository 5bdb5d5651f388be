"""Slack listeners, grouped by kind; each module has `register(app, deps)`.

commands.py  /rollback            actions.py  buttons on the card and replies
tier3.py     Tier 3 run by rollbot: start, confirm, approve, break glass
views.py     modal submissions    releases.py /release and the App Home
common.py    ack-then-work, replay check, telling the user     deps.py  Deps

Every listener answers what it can in the ack, acks, and then raises nothing: the rest is
submitted to the work queue with `errors.reporter`, and what must run inline (a modal
opened within the trigger's 3 s) runs under `errors.after_ack`. A view submission checks
what it can refuse before its ack and refuses it in the ack (`response_action: errors`).
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import actions, commands, releases, tier3, views
from bot.slack.listeners.deps import Deps, ReleaseDesk

__all__ = ["Deps", "ReleaseDesk", "register_listeners"]


def register_listeners(app: AsyncApp, deps: Deps) -> None:
    commands.register(app, deps)
    actions.register(app, deps)
    views.register(app, deps)
    releases.register(app, deps)
    tier3.register(app, deps)
