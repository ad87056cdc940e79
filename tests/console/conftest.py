"""The browser for the console's tests: Debian's Chromium, driven by Playwright through its
executablePath (browser downloads are not used)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.console.pages import ROOT, SHOTS

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        found = subprocess.run(
            [str(ROOT / "tools" / "ensure_chromium.sh")], capture_output=True, text=True
        ).stdout.strip()
    if not found:
        pytest.fail(
            "Chromium is missing: run tools/ensure_chromium.sh (as root) or install Debian's chromium"
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (ROOT / "console" / "dist" / "index.html").exists():
        pytest.fail("the console is not built: `make console` (npm ci && npm run build in console/)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
