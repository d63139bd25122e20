"""Faults without harm (issue 25): error pages, bad input, outages, a stalled model tier."""

from __future__ import annotations

from typing import Any

import pytest

from .web_support import WebClient


def test_500_page_has_a_readable_title(
    app: Any, alice: WebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 6: the rendered 500 page's title is words, not ``<property object at 0x...>``."""
    from sketch2face.services import generation as generation_module

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(generation_module.audit, "record", broken)
    response = alice.generate()
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "<title>Internal Server Error · sketch2face</title>" in page
    assert "<h1>Internal Server Error</h1>" in page
    assert "property object" not in page
