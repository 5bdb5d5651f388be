"""Releases: started once, their cleanup tickets filed once, their dates kept honest."""

from bot.releases.engine import ReleaseEngine

__all__ = ["ReleaseEngine"]
