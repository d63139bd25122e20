"""Constants and small helpers shared by the browser conftest and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# one live-server helper for the web and browser tests (tests/ is on sys.path: rootdir)
from web.web_support import serving_at  # noqa: F401  (re-exported)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def sign_in(page: Any, base: str, username: str = "alice") -> None:
    """Sign ``username`` (password PASSWORD) in through the login form; lands on /new."""
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/new")
