"""Debian's Chromium for the browser tests, driven by Playwright's async API.

- ``chromium`` (session) → the path of a Chromium that runs: ``ROLLBOT_CHROMIUM`` or
  ``/usr/bin/chromium`` (Debian's package ``chromium``; `.ci/run` installs it). Without it,
  or without the ``playwright`` package, the requesting test skips, and fails under
  ROLLBOT_REQUIRE_PEERS=1 (``require_peer``).
- ``browser`` (function) → a Playwright ``BrowserContext`` of that Chromium, headless, on a
  fresh profile directory under ``tmp_path``, JavaScript off (the runbook pages must work
  without it), closed afterwards.

Playwright's own browser download (``playwright install``) is never used: it needs the
internet and a browser build this machine does not run. The flags keep Chromium off the
network (no background requests, updates, sync or QUIC) and run it as root without a
sandbox, as it runs in CI containers.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.peers import require_peer

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "install Debian's chromium (apt-get install chromium) and the dev extras"


def chromium_binary() -> str | None:
    """A Chromium that answers `--version`, or None."""
    candidate = os.environ.get("ROLLBOT_CHROMIUM") or "/usr/bin/chromium"
    path = candidate if os.access(candidate, os.X_OK) else shutil.which("chromium")
    if not path:
        return None
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "Chromium" in out or "Chrome" in out else None


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_binary()
    require_peer("chromium", path is not None, f"no runnable Chromium; {INSTALL_HINT}")
    require_peer(
        "chromium",
        importlib.util.find_spec("playwright") is not None,
        f"the playwright package is missing; {INSTALL_HINT}",
    )
    assert path is not None
    return path


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            java_script_enabled=False,
            viewport={"width": 1100, "height": 1300},
        )
        try:
            yield context
        finally:
            await context.close()
