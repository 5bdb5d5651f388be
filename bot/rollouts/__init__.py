"""Rollouts: the watch's events become card, incident and release updates."""

from bot.rollouts.watch import RolloutWatch, watched_namespaces

__all__ = ["RolloutWatch", "watched_namespaces"]
