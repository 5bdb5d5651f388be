"""Paths to tests/fixtures (real payloads, see tests/fixtures/SOURCES.md) and loaders for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load_fixture(relpath: str) -> Any:
    """Load a JSON or YAML fixture from tests/fixtures by relative path."""
    path = FIXTURES / relpath
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    if path.suffix == ".json":
        return json.loads(text)
    return text


def rollout_fixture_paths() -> list[Path]:
    """Every Rollout object among the Argo Rollouts fixtures."""
    out = []
    for p in sorted((FIXTURES / "argo-rollouts").rglob("*.yaml")):
        if "crds" in p.parts or p.name == "notifications-install.yaml":
            continue
        doc = yaml.safe_load(p.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Rollout":
            out.append(p)
    return out


def analysisrun_fixture_paths() -> list[Path]:
    out = []
    for p in sorted((FIXTURES / "argo-rollouts").rglob("*.yaml")):
        if "crds" in p.parts:
            continue
        doc = yaml.safe_load(p.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "AnalysisRun":
            out.append(p)
    return out


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"tests/fixtures not found at {FIXTURES}")
    return FIXTURES
