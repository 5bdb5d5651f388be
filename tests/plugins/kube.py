"""Fixtures for kube (filled in by its owner)."""
