"""Fixtures for slack (filled in by its owner)."""
