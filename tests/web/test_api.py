"""/api/v1: tokens, generate (JSON/PNG), fetch, errors as JSON, OpenAPI."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from sketch2face.web.db import new_session
from sketch2face.web.models import ApiToken

from .web_support import WebClient, sketch_png


def make_token(c: WebClient, name: str = "script") -> str:
    page = c.post("/tokens", {"name": name}).get_data(as_text=True)
    match = re.search(r'id="new-token">(s2f_[^<]+)<', page)
    assert match, "token not shown"
    return match.group(1)


@pytest.fixture
def token(alice: WebClient) -> str:
    return make_token(alice)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_generate(
    app: Any, token: str, query: str = "", headers: dict[str, str] | None = None, **fields: Any
) -> Any:
    data = {"sketch": (io.BytesIO(fields.pop("image", sketch_png())), "s.png"), **fields}
    return app.test_client().post(
        f"/api/v1/generate{query}",
        data=data,
        headers={**auth(token), **(headers or {})},
        content_type="multipart/form-data",
    )


def test_token_is_shown_once_and_only_its_hash_stored(
    app: Any, alice: WebClient, token: str
) -> None:
    with new_session(app) as s:
        row = s.scalar(sa.select(ApiToken))
    assert row.token_hash != token and len(row.token_hash) == 64 and token.startswith(row.prefix)
    assert token not in alice.get("/tokens").get_data(as_text=True)


def test_generate_json_then_fetch(app: Any, token: str) -> None:
    response = post_generate(app, token, case_number="API-7", notes="n", refine="false")
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["case_number"] == "API-7" and body["source"] == "api"
    assert body["notice"].startswith("Generated likeness") and set(body["images"]) == {
        "sketch",
        "face",
    }
    assert response.headers["Location"].endswith(f"/api/v1/generations/{body['id']}")
    http = app.test_client()
    fetched = http.get(f"/api/v1/generations/{body['id']}", headers=auth(token)).get_json()
    assert fetched["id"] == body["id"]
    image = http.get(body["images"]["face"], headers=auth(token))
    assert image.status_code == 200 and Image.open(io.BytesIO(image.data)).size == (256, 256)


@pytest.mark.parametrize(("query", "headers"), [("?format=png", {}), ("", {"Accept": "image/png"})])
def test_generate_png(app: Any, token: str, query: str, headers: dict[str, str]) -> None:
    response = post_generate(app, token, query, headers)
    assert response.status_code == 201 and response.mimetype == "image/png"
    assert (
        response.headers["X-Generation-Id"]
        and "not a photograph" in response.headers["X-Sketch2face-Notice"]
    )
    Image.open(io.BytesIO(response.data)).verify()


def test_missing_bad_and_revoked_tokens_are_401(app: Any, alice: WebClient, token: str) -> None:
    http = app.test_client()
    assert http.get("/api/v1/generations/x").status_code == 401
    bad = http.get("/api/v1/generations/x", headers=auth("s2f_nope"))
    assert (
        bad.status_code == 401
        and bad.get_json()["error"]
        and "Bearer" in bad.headers["WWW-Authenticate"]
    )
    with new_session(app) as s:
        token_id = s.scalar(sa.select(ApiToken.id))
    assert alice.post(f"/tokens/{token_id}/revoke").status_code == 302
    assert post_generate(app, token).status_code == 401


def test_api_needs_no_csrf_and_ignores_session_cookies(app: Any, alice: WebClient) -> None:
    # a signed-in browser session is not an API credential (so CSRF exemption is safe)
    response = alice.http.post(
        "/api/v1/generate",
        data={"sketch": (io.BytesIO(sketch_png()), "s.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 401


def test_other_users_generations_are_404(app: Any, bob: WebClient, token: str) -> None:
    gid = post_generate(app, token).get_json()["id"]
    bob_token = make_token(bob)
    http = app.test_client()
    assert http.get(f"/api/v1/generations/{gid}", headers=auth(bob_token)).status_code == 404
    assert (
        http.get(f"/api/v1/generations/{gid}/images/face", headers=auth(bob_token)).status_code
        == 404
    )


def test_errors_are_json(app: Any, token: str) -> None:
    bad = post_generate(app, token, image=b"GIF89a-not-really")
    assert bad.status_code == 400 and "image" in bad.get_json()["error"]
    no_file = app.test_client().post("/api/v1/generate", headers=auth(token), data={})
    assert no_file.status_code == 400 and "sketch" in no_file.get_json()["error"]
    bad_seed = post_generate(app, token, seed="abc")
    assert bad_seed.status_code == 400 and "seed" in bad_seed.get_json()["error"]
    missing = app.test_client().get("/api/v1/nothing", headers=auth(token))
    assert missing.status_code == 404 and missing.is_json
    big = app.test_client().post(
        "/api/v1/generate",
        data=b"\0" * (3 * 1024 * 1024),
        headers=auth(token),
        content_type="multipart/form-data; boundary=x",
    )
    assert big.status_code == 413 and big.is_json


def test_openapi_document(app: Any) -> None:
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {"/generate", "/generations/{id}", "/generations/{id}/images/{kind}"} <= set(
        doc["paths"]
    )
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_api_generation_is_rate_limited_per_token(settings: Any, web_model_client: Any) -> None:
    from .web_support import make_app

    app = make_app(settings.replace(generate_rate_limit="1 per minute"), web_model_client)
    c = WebClient(app)
    c.login("alice")
    token = make_token(c)
    assert post_generate(app, token).status_code == 201
    limited = post_generate(app, token)
    assert limited.status_code == 429 and limited.is_json
