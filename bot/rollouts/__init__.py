"""Rollouts: the watch's events become card, incident and release updates."""

__all__: list[str] = []
