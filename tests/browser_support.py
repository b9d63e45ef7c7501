"""A real browser for the tests: Debian's chromium driven by Playwright (no browser download).

``tests/setup.sh`` installs chromium and the ``playwright`` package. Where either is
missing a browser test skips saying why; with ``CI=true`` it fails instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ON_CI

CHROMIUM = Path(os.environ.get("FENGQIAO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"


def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (tests/setup.sh installs it)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: Debian's chromium could not be installed (tests/setup.sh)"
    return None


def require_browser() -> None:
    """Skip saying why where chromium or playwright is missing (fail on CI)."""
    problem = browser_missing()
    if problem:
        if ON_CI:
            pytest.fail(f"CI=true but {problem}", pytrace=False)
        pytest.skip(problem)


@contextmanager
def launched() -> Iterator[Any]:
    """Debian's chromium, headless; skipped saying why where it is missing (failed on CI)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
