"""Browser fixtures: the real app (real pipeline, tiny checkpoint) served on 127.0.0.1:<random> in a
thread, and Debian's chromium driven by Playwright. Skipped only when /usr/bin/chromium is absent
(CI installs it with scripts/ci_services.sh). Screenshots go to test-artifacts/ (gitignored)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from .browser_support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, serving_at


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium for the session."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (scripts/ci_services.sh)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs the playwright package ([dev] extra)"
    )
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


def _model_client(request: pytest.FixtureRequest) -> Any:
    from sketch2face.serving.client import InProcessModelClient

    return InProcessModelClient(
        str(request.getfixturevalue("tiny_checkpoint")),
        device="cpu",
        refiner=str(request.getfixturevalue("tiny_refiner")),  # both stages, as shipped
    )


@pytest.fixture(scope="module")
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app with production cookie settings (Secure, HttpOnly, SameSite=Lax) on a random port.

    Plain http://127.0.0.1 would get a cookie without Secure (local development, docs/web.md);
    SECURE_COOKIES=1 keeps the flag, which chromium honours on localhost.
    """

    from sketch2face.web import create_app
    from sketch2face.web.database import new_session
    from sketch2face.web.pages.auth import create_user
    from sketch2face.web.settings import WebSettings

    data_dir = tmp_path_factory.mktemp("browser-instance")
    app = create_app(
        WebSettings(data_dir=data_dir, secret_key=secrets.token_urlsafe(32), secure_cookies=True),
        model_client=_model_client(request),
    )
    with new_session(app) as session:
        create_user(session, "alice", PASSWORD)
        session.commit()
    with serving_at(app) as base:
        yield base


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; JS errors and CSP violations fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.set_default_timeout(20_000)
    yield page
    context.close()
    assert errors == [], errors
