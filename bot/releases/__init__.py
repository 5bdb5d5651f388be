"""Releases: started once, their cleanup tickets filed once, their dates kept honest.

`ReleaseEngine` (bot.releases.engine) is the facade the rest of rollbot uses; the modules
beside it hold its collaborators, one responsibility each (see the engine's docstring).
"""

from bot.releases.engine import ReleaseEngine
from bot.releases.filing import FilingResult
from bot.releases.starting import RevisionAborted

__all__ = ["FilingResult", "ReleaseEngine", "RevisionAborted"]
