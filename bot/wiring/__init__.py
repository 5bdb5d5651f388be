"""The composition root: builds every collaborator from settings and wires them, once.

`build(settings)` returns a `Rollbot`; `bot.web.create_web_app(rollbot)` serves it.
"""

from bot.wiring.rollbot import Rollbot, build, build_release_engine

__all__ = ["Rollbot", "build", "build_release_engine"]
