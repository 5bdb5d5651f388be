"""Slack listeners, grouped by kind; each module has `register(app, deps)`."""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt.async_app import AsyncApp

from bot.core.ports import Chat
from bot.responder import Responder
from bot.work import WorkQueue


@dataclass(frozen=True)
class Deps:
    responder: Responder
    chat: Chat
    work: WorkQueue
    command: str = "/rollback"


def register_listeners(app: AsyncApp, deps: Deps) -> None:
    from bot.slack.listeners import actions, commands

    commands.register(app, deps)
    actions.register(app, deps)
