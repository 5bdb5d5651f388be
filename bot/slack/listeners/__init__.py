"""Slack listeners, grouped by kind; each module has `register(app, deps)`.

commands.py  /rollback            actions.py  buttons on the card and replies
views.py     modal submissions    releases.py /release and the App Home
common.py    ack-then-work, replay check, telling the user     deps.py  Deps
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import actions, commands, releases, views
from bot.slack.listeners.deps import Deps, ReleaseDesk

__all__ = ["Deps", "ReleaseDesk", "register_listeners"]


def register_listeners(app: AsyncApp, deps: Deps) -> None:
    commands.register(app, deps)
    actions.register(app, deps)
    views.register(app, deps)
    releases.register(app, deps)
