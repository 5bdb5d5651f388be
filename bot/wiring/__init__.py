"""The composition root: every collaborator built from settings, once, in dependency order.

    build.py      build(settings) -> Rollbot
    factories.py  the adapters and engines made from settings (also `rollbot release …`)
    rollbot.py    Rollbot: the assembled whole, the leader's background work, shutdown

`bot.web.app.create_web_app(rollbot)` serves a Rollbot.
"""

from bot.wiring.build import build
from bot.wiring.factories import build_release_engine
from bot.wiring.rollbot import Rollbot

__all__ = ["Rollbot", "build", "build_release_engine"]
