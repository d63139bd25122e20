"""Faults without harm (issue 25): error pages, bad input, outages, a stalled model tier."""

from __future__ import annotations

from typing import Any

import pytest

from .test_api import make_token
from .web_support import WebClient, sketch_png


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


def _multipart(fields: dict[str, bytes], sketch: bytes) -> tuple[bytes, str]:
    """A multipart body with raw field bytes (the test client would encode text as UTF-8)."""
    boundary = "s2fboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="sketch"; filename="s.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + sketch
        + b"\r\n"
    )
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_invalid_utf8_in_form_fields_is_400(app: Any, alice: WebClient) -> None:
    """Item 10: invalid UTF-8 is refused with 400 (pages and API), never stored as U+FFFD."""
    import sqlalchemy as sa

    from sketch2face.db.models import Generation
    from sketch2face.web.database import new_session
    from sketch2face.web.requests import INVALID_TEXT

    body, content_type = _multipart(
        {"csrf_token": alice.csrf_token().encode(), "notes": b"caf\xe9 \xff"}, sketch_png()
    )
    page = alice.http.post("/new", data=body, content_type=content_type)
    assert page.status_code == 400 and INVALID_TEXT in page.get_data(as_text=True)
    # URL-encoded: a percent-escaped invalid byte is not kept as the text "%FF"
    form = alice.http.post(
        "/password",
        data=f"csrf_token={alice.csrf_token()}&current_password=%FF".encode(),
        content_type="application/x-www-form-urlencoded",
    )
    assert form.status_code == 400 and INVALID_TEXT in form.get_data(as_text=True)

    token = make_token(alice)
    body, content_type = _multipart({"case_number": b"DUP-\xc3\x28"}, sketch_png())
    api = alice.http.post(
        "/api/v1/generate",
        data=body,
        content_type=content_type,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 400 and api.get_json()["error"] == INVALID_TEXT
    with new_session(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0
    # valid UTF-8 still passes
    body, content_type = _multipart(
        {"csrf_token": alice.csrf_token().encode(), "notes": "café ✓".encode()}, sketch_png()
    )
    assert alice.http.post("/new", data=body, content_type=content_type).status_code == 302
