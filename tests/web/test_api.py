"""/api/v1: tokens, generate (JSON/PNG), fetch, errors as JSON, OpenAPI."""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from sketch2face.db.models import ApiToken
from sketch2face.web.database import new_session

from .web_support import PASSWORD, WebClient, blank_png, make_app, sketch_png


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
    app = make_app(settings.replace(generate_rate_limit="1 per minute"), web_model_client)
    c = WebClient(app)
    c.login("alice")
    token = make_token(c)
    assert post_generate(app, token).status_code == 201
    limited = post_generate(app, token)
    assert limited.status_code == 429 and limited.is_json


# ---------------------------------------------------------------- audit findings (issue 14)


def test_password_change_revokes_api_tokens(app: Any, alice: WebClient, token: str) -> None:
    """Finding 3: tokens made before a password change stop working, and the page says so."""
    http = app.test_client()
    assert http.get("/api/v1/generations/x", headers=auth(token)).status_code == 404  # valid
    second = make_token(alice, "second")
    page = alice.post(
        "/password",
        {
            "current_password": PASSWORD,
            "new_password": "a new long password",
            "confirm": "a new long password",
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "2 API tokens were revoked" in page
    for old in (token, second):
        assert http.get("/api/v1/generations/x", headers=auth(old)).status_code == 401
    with new_session(app) as s:
        assert all(t.revoked_at is not None for t in s.scalars(sa.select(ApiToken)))
    assert post_generate(app, make_token(alice, "after")).status_code == 201


def test_generation_limit_is_per_user_across_tokens_and_pages(
    settings: Any, web_model_client: Any
) -> None:
    """Finding 4: more tokens do not buy more generations; the web page shares the allowance."""
    app = make_app(settings.replace(generate_rate_limit="1 per minute"), web_model_client)
    c = WebClient(app)
    c.login("alice")
    first, second = make_token(c, "one"), make_token(c, "two")
    assert post_generate(app, first).status_code == 201
    limited = post_generate(app, second)
    assert limited.status_code == 429 and limited.is_json
    assert c.generate().status_code == 429
    bob = WebClient(app)
    bob.login("bob")
    assert post_generate(app, make_token(bob)).status_code == 201  # others are unaffected


def test_live_api_tokens_are_capped_per_user(settings: Any, web_model_client: Any) -> None:
    """Finding 4: a user holds at most max_api_tokens live tokens; revoking one frees a place."""
    app = make_app(settings.replace(max_api_tokens=2), web_model_client)
    c = WebClient(app)
    c.login("alice")
    make_token(c, "one")
    make_token(c, "two")
    refused = c.post("/tokens", {"name": "three"})
    assert refused.status_code == 409
    assert "at most 2 live API tokens" in refused.get_data(as_text=True)
    with new_session(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 2
        token_id = s.scalar(sa.select(ApiToken.id).where(ApiToken.name == "one"))
    assert c.post(f"/tokens/{token_id}/revoke").status_code == 302
    make_token(c, "three")


def test_api_images_and_png_answers_are_not_cached(app: Any, token: str) -> None:
    """Finding 7: generated images are sent with Cache-Control: no-store."""
    png = post_generate(app, token, "?format=png")
    assert png.status_code == 201 and png.headers["Cache-Control"] == "no-store"
    body = post_generate(app, token).get_json()
    image = app.test_client().get(body["images"]["face"], headers=auth(token))
    assert image.status_code == 200 and image.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((1, 1), "at least 32 pixels"),
        ((1, 5000), "at least 32 pixels"),
        ((31, 64), "at least 32 pixels"),
        ((400, 80), "4:1"),
    ],
)
def test_api_refuses_images_too_small_for_a_face(
    app: Any, token: str, size: tuple[int, int], message: str
) -> None:
    """Finding 8: tiny or extremely long images are refused with a clear 400."""
    response = post_generate(app, token, image=blank_png(*size))
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_created_at_has_a_timezone_in_every_answer(app: Any, token: str) -> None:
    """Finding 9: the GET answer carries the same timezone-aware created_at as the POST."""
    created = post_generate(app, token).get_json()
    fetched = (
        app.test_client()
        .get(f"/api/v1/generations/{created['id']}", headers=auth(token))
        .get_json()
    )
    assert datetime.fromisoformat(fetched["created_at"]).tzinfo is not None
    assert fetched["created_at"] == created["created_at"]


def test_openapi_declares_what_the_api_enforces(app: Any) -> None:
    """Finding 9: the 401 of the image endpoint and the attribute enums are documented."""
    from sketch2face.attributes import HAIR_COLOURS, SKIN_TONES

    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert "401" in doc["paths"]["/generations/{id}/images/{kind}"]["get"]["responses"]
    form = doc["paths"]["/generate"]["post"]["requestBody"]["content"]["multipart/form-data"]
    props = form["schema"]["properties"]
    assert {"type": "boolean"} in props["refine"]["anyOf"]
    assert props["seed"]["minimum"] == 0 and props["seed"]["maximum"] == 2**31 - 1
    for name, values in (("skin", SKIN_TONES), ("hair_color", HAIR_COLOURS)):
        names = props[name]["anyOf"][0]["enum"]
        assert set(values) <= set(names), name
    assert set(props["gender"]["enum"]) >= {"female", "male"}


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"refine": "{}"}, "refine"),
        ({"refine": "maybe"}, "refine"),
        ({"refine": "2"}, "refine"),
        ({"refine": ""}, "refine"),
        ({"seed": ""}, "seed"),
        ({"seed": str(2**31)}, "seed"),
        ({"skin": "purple"}, "skin"),
        ({"skin": "Dark "}, "skin"),
        ({"hair_color": "#12345"}, "hair"),
        ({"gender": "FEMALE"}, "gender"),
        ({"notes": "a\x00b"}, "NUL"),
        ({"case_number": "\x00"}, "NUL"),
        ({"format": ""}, "format"),
    ],
)
def test_api_refuses_values_the_schema_does_not_allow(
    app: Any, token: str, fields: dict[str, str], word: str
) -> None:
    """Finding 9: what the schema does not allow is a 400 naming the field (on every database)."""
    response = post_generate(app, token, **fields)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert word in response.get_json()["error"]


def test_api_refuses_an_empty_format_query(app: Any, token: str) -> None:
    """Finding 9 (found by schemathesis): ``?format=`` is neither png nor json."""
    response = post_generate(app, token, "?format=")
    assert response.status_code == 400 and "format" in response.get_json()["error"]


def test_api_accepts_the_declared_forms(app: Any, token: str) -> None:
    """Finding 9: booleans as true/false or 1/0, attributes by name, hex or empty (unset)."""
    ok = post_generate(
        app, token, refine="true", seed="0", skin="very-light", hair_color="#A0785A", gender=""
    )
    assert ok.status_code == 201, ok.get_data(as_text=True)
    assert ok.get_json()["refine"] is True
    assert post_generate(app, token, refine="0").get_json()["refine"] is False


# ---------------------------------------------------------------- issue 12: seen as a new user
def _validate(doc: dict[str, Any], body: dict[str, Any]) -> None:
    """The answer matches the OpenAPI document's Generation schema (no drift)."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = {**doc["components"]["schemas"]["Generation"], "$defs": {}}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_api_returns_the_requested_attributes_and_no_timings_to_investigators(
    app: Any, token: str
) -> None:
    created = post_generate(app, token, skin="dark", hair_color="#A0785A", gender="male")
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["attributes"] == {"skin": "dark", "hair_color": "#A0785A", "gender": "male"}
    assert "timings_ms" not in body
    assert not any("SKETCH2FACE_" in n or "--" in n for n in body["notices"])
    fetched = app.test_client().get(f"/api/v1/generations/{body['id']}", headers=auth(token))
    assert fetched.get_json()["attributes"] == body["attributes"]
    assert "timings_ms" not in fetched.get_json()
    plain = post_generate(app, token).get_json()
    assert plain["attributes"] == {}
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    for answer in (body, fetched.get_json(), plain):
        _validate(doc, answer)


def test_api_gives_administrators_the_timings(app: Any, token: str, root: WebClient) -> None:
    admin_token = make_token(root, "admin script")
    created = post_generate(app, admin_token, refine="1").get_json()
    assert created["timings_ms"]["model_call"] > 0
    alices = post_generate(app, token, refine="1").get_json()
    seen = app.test_client().get(f"/api/v1/generations/{alices['id']}", headers=auth(admin_token))
    assert seen.status_code == 200 and "model_call" in seen.get_json()["timings_ms"]
    assert "timings_ms" not in alices
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    _validate(doc, seen.get_json())
    if not seen.get_json()["images"].get("refined"):  # no GFPGAN weights: the admin sees why
        assert any("SKETCH2FACE_GFPGAN_WEIGHTS" in n for n in seen.get_json()["notices"])
        assert alices["notices"] and not any("GFPGAN" in n for n in alices["notices"])
    props = doc["components"]["schemas"]["Generation"]["properties"]
    assert "attributes" in doc["components"]["schemas"]["Generation"]["required"]
    assert "timings_ms" not in doc["components"]["schemas"]["Generation"]["required"]
    assert "administrators" in props["timings_ms"]["description"]
