"""JSON/PNG model API under /api/v1; per-user bearer tokens (no cookies, so no CSRF)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import Blueprint, Response, abort, g, jsonify, request, url_for
from flask_limiter.util import get_remote_address

from sketch2face import __version__
from sketch2face.attributes import GENDERS, HAIR_COLOURS, SKIN_TONES
from sketch2face.imaging import MAX_SKETCH_ASPECT, MIN_SKETCH_SIDE
from sketch2face.storage import ObjectNotFoundError
from sketch2face.web import audit
from sketch2face.web.access import get_visible_generation
from sketch2face.web.db import get_session
from sketch2face.web.extensions import get_settings, get_store
from sketch2face.web.generation import (
    ATTRIBUTE_FIELDS,
    IMAGE_KINDS,
    LIKENESS_NOTICE,
    MAX_CASE_CHARS,
    MAX_NOTES_CHARS,
    MAX_SEED,
    GenerationOptions,
    generate_for,
    generation_record,
    viewer_notices,
)
from sketch2face.web.headers import NO_STORE
from sketch2face.web.models import ApiToken, Generation, User, as_utc, utcnow
from sketch2face.web.security import hash_api_token
from sketch2face.web.verify import sign_generation_png

bp = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., Any])


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _valid_token() -> ApiToken | None:
    """The live token of an active account that the request sends, looked up once per request
    (the rate limiter asks before the view does)."""
    if "api_token" not in g:
        token = _bearer()
        row = None
        if token is not None:
            row = get_session().scalar(
                sa.select(ApiToken).where(ApiToken.token_hash == hash_api_token(token))
            )
        if row is not None and (row.revoked_at is not None or not row.user.is_active):
            row = None
        g.api_token = row
    return cast("ApiToken | None", g.api_token)


def api_user_key() -> str:
    """Rate-limit key: the token's user (the same key as the web pages, so neither more tokens
    nor switching between API and pages buys more generations), else the client address."""
    row = _valid_token()
    if row is not None:
        return f"user:{row.user_id}"
    return f"ip:{get_remote_address()}"


def token_required(view: F) -> F:
    """Resolve ``Authorization: Bearer <token>`` to an active user in ``g.api_user``, else 401."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if _bearer() is None:
            return _unauthorized(
                "Send an API token: `Authorization: Bearer <token>` (create one on /tokens)."
            )
        row = _valid_token()
        if row is None:
            return _unauthorized("The API token is unknown, revoked, or its account is disabled.")
        now = utcnow()
        if row.last_used_at is None or now - as_utc(row.last_used_at) > timedelta(minutes=1):
            row.last_used_at = now  # throttled: not a write on every call
            get_session().commit()
        g.api_user = row.user
        return view(*args, **kwargs)

    return cast(F, wrapped)


def _unauthorized(message: str) -> Response:
    response = jsonify(error=message, status=401)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="sketch2face"'
    return response


def generation_json(generation: Generation, viewer: User | None = None) -> dict[str, Any]:
    """JSON view of a generation for ``viewer``, with absolute image URLs.

    ``attributes`` is the witness description that was asked for. Internal timings and the
    pipeline's technical notices are for administrators; other viewers (and ``viewer=None``)
    get no ``timings_ms`` and plain-language notices.
    """
    is_admin = viewer is not None and viewer.is_admin
    body: dict[str, Any] = {
        **generation_record(generation),
        "notices": viewer_notices(generation.notices, viewer),
        "notice": LIKENESS_NOTICE,
        "images": {
            kind: url_for("api.image", generation_id=generation.id, kind=kind, _external=True)
            for kind in generation.image_keys
        },
    }
    if is_admin:
        body["timings_ms"] = generation.timings_ms
    return body


# The form is checked exactly as the OpenAPI document declares it (see openapi_document), so a
# value outside the schema is a 400, never silently read as something else.
_TRUE_WORDS = ("true", "1")
_FALSE_WORDS = ("false", "0")
_HEX_COLOUR = r"^#[0-9a-fA-F]{6}$"
#: accepted values of each witness attribute; "" means unset (the model chooses)
ATTRIBUTE_NAMES: dict[str, tuple[str, ...]] = {
    "skin": ("", *SKIN_TONES),
    "hair_color": ("", *HAIR_COLOURS),
    "gender": ("", *GENDERS),
}
_HEX_ALLOWED = ("skin", "hair_color")


def _boolean(form: Mapping[str, str], name: str) -> bool:
    """A boolean form field: true or false (any case), 1 or 0; absent is false."""
    value = form.get(name)
    if value is None:
        return False
    if value.lower() in _TRUE_WORDS:
        return True
    if value.lower() in _FALSE_WORDS:
        return False
    raise ValueError(f"{name} must be true or false (or 1 or 0), not {value[:40]!r}.")


def _seed(form: Mapping[str, str]) -> int | None:
    """The optional variation seed: a whole number from 0 to 2**31-1."""
    value = form.get("seed")
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,10}", value) or int(value) > MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, not {value[:20]!r}.")
    return int(value)


def _attributes(form: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Witness attributes by their declared names (or #rrggbb for colours); "" means unset."""
    chosen = []
    for name in ATTRIBUTE_FIELDS:
        value = form.get(name)
        if value is None or value == "":
            continue
        hex_ok = name in _HEX_ALLOWED and re.fullmatch(_HEX_COLOUR, value)
        if value not in ATTRIBUTE_NAMES[name] and not hex_ok:
            allowed = ", ".join(v for v in ATTRIBUTE_NAMES[name] if v)
            extra = ", or a colour as #rrggbb" if name in _HEX_ALLOWED else ""
            raise ValueError(f"{name} {value[:40]!r} is not one of {allowed}{extra}.")
        chosen.append((name, value))
    return tuple(chosen)


def _wants_png() -> bool:
    fmt = request.args.get("format", request.form.get("format"))
    if fmt is not None:  # given, even empty: it must be one of the two
        if fmt not in ("png", "json"):
            abort(400, description=f"format must be 'png' or 'json', not {fmt[:20]!r}.")
        return fmt == "png"
    best = request.accept_mimetypes.best_match(["application/json", "image/png"])
    return best == "image/png"


@bp.post("/generate")
@token_required
def generate() -> Any:
    """Multipart ``sketch`` (+ refine, case_number, notes, seed, skin, hair_color, gender) -> JSON
    (default) or PNG."""
    upload = request.files.get("sketch")
    if upload is None:
        abort(400, description="Send the sketch as a multipart file field named 'sketch'.")
    try:
        options = GenerationOptions(
            refine=_boolean(request.form, "refine"),
            case_number=request.form.get("case_number"),
            notes=request.form.get("notes"),
            source="api",
            seed=_seed(request.form),
            attributes=_attributes(request.form),
        )
        want_png = _wants_png()
        user: User = g.api_user
        generation = generate_for(user, upload.read(), options)
    except ValueError as exc:  # InvalidImageError is a ValueError too
        abort(400, description=str(exc))
    location = url_for("api.get_generation", generation_id=generation.id, _external=True)
    if want_png:
        kind = "refined" if generation.refined_key else "face"
        data = get_store().get(generation.image_keys[kind])
        response = Response(data, status=201, mimetype="image/png")
        response.headers["X-Generation-Id"] = generation.id
        response.headers["X-Sketch2face-Notice"] = LIKENESS_NOTICE
        response.headers["Cache-Control"] = NO_STORE
    else:
        response = jsonify(generation_json(generation, user))
        response.status_code = 201
    response.headers["Location"] = location
    return response


@bp.get("/generations/<generation_id>")
@token_required
def get_generation(generation_id: str) -> Any:
    """Metadata and image URLs of one of your generations (someone else's: 404)."""
    generation = get_visible_generation(generation_id, g.api_user)
    session = get_session()
    audit.record(session, audit.VIEW, g.api_user, generation_id=generation.id, via="api")
    session.commit()
    return jsonify(generation_json(generation, g.api_user))


@bp.get("/generations/<generation_id>/images/<kind>")
@token_required
def image(generation_id: str, kind: str) -> Any:
    """One PNG of a generation (audited as a download)."""
    if kind not in IMAGE_KINDS:
        abort(404, description=f"kind must be one of {', '.join(IMAGE_KINDS)}.")
    generation = get_visible_generation(generation_id, g.api_user)
    key = generation.image_keys.get(kind) or abort(
        404, description="This generation has no such image."
    )
    try:
        data = get_store().get(key)
    except ObjectNotFoundError:
        abort(404, description="The image file is missing from storage.")
    session = get_session()
    audit.record(
        session, audit.DOWNLOAD, g.api_user, generation_id=generation.id, kind=kind, via="api"
    )
    session.commit()
    if kind != "sketch":
        data = sign_generation_png(generation, data)  # an exported face carries its provenance
    response = Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = NO_STORE
    return response


@bp.get("/openapi.json")
def openapi() -> Any:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_document(get_settings().max_upload_bytes))


#: text fields cannot hold NUL characters (PostgreSQL refuses them)
_NO_NUL = "^[^\\x00]*$"
_CASE_NUMBER = "^(?:[^\\x00-\\x1f]*[A-Za-z0-9][^\\x00-\\x1f]*|[^\\x00-\\x1f\\S]*)$"


def _attribute_schema(name: str, what: str) -> dict[str, Any]:
    """A witness attribute: one of its names, "" (unset), or for colours #rrggbb."""
    names = {"type": "string", "enum": list(ATTRIBUTE_NAMES[name])}
    if name not in _HEX_ALLOWED:
        return {**names, "description": f"{what}; empty: let the model choose"}
    return {
        "anyOf": [names, {"type": "string", "pattern": _HEX_COLOUR}],
        "description": f"{what}: a name, a colour as #rrggbb, or empty to let the model choose",
    }


def openapi_document(max_upload_bytes: int) -> dict[str, Any]:
    """Hand-written OpenAPI document (small: a generator would add more than it saves)."""
    error = {"$ref": "#/components/schemas/Error"}
    json_error = {"application/json": {"schema": error}}
    generation_schema = {
        "type": "object",
        "required": ["id", "created_at", "model_version", "images", "notice", "attributes"],
        "properties": {
            "id": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "owner": {"type": "string"},
            "case_number": {"type": ["string", "null"]},
            "notes": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": ["upload", "canvas", "api"]},
            "refine": {"type": "boolean"},
            "model_version": {"type": "string"},
            "timings_ms": {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "description": "Internal timings in milliseconds; only in administrators' answers.",
            },
            "notices": {"type": "array", "items": {"type": "string"}},
            "seed": {"type": ["integer", "null"]},
            "attributes": {
                "type": "object",
                "description": "The witness description asked for; unset attributes are absent "
                "(the model chose them).",
                "properties": {
                    "skin": {"type": "string"},
                    "hair_color": {"type": "string"},
                    "gender": {"type": "string", "enum": list(GENDERS)},
                },
                "additionalProperties": False,
            },
            "notice": {"type": "string", "const": LIKENESS_NOTICE},
            "images": {
                "type": "object",
                "properties": {k: {"type": "string", "format": "uri"} for k in IMAGE_KINDS},
                "required": ["sketch", "face"],
            },
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "sketch2face API",
            "version": __version__,
            "description": "Turn a facial sketch into a generated face. Every output is a "
            "generated likeness, not a photograph of a real person. "
            f"Uploads up to {max_upload_bytes} bytes.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Create a token on /tokens.",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                },
                "Generation": generation_schema,
            },
        },
        "paths": {
            "/generate": {
                "post": {
                    "summary": "Generate a face from a sketch",
                    "parameters": [
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["json", "png"]},
                            "description": "Overrides Accept: png returns the (refined) face.",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["sketch"],
                                    "properties": {
                                        "sketch": {
                                            "type": "string",
                                            "format": "binary",
                                            "description": "PNG, JPEG, WebP, BMP, TIFF or GIF; "
                                            f"at least {MIN_SKETCH_SIDE} pixels on each side, "
                                            f"at most {MAX_SKETCH_ASPECT:g}:1.",
                                        },
                                        "refine": {
                                            "anyOf": [
                                                {"type": "boolean"},
                                                {"type": "integer", "enum": [0, 1]},
                                            ],
                                            "default": False,
                                            "description": "true or false (1 or 0 work too).",
                                        },
                                        "case_number": {
                                            "type": "string",
                                            "maxLength": MAX_CASE_CHARS,
                                            # blank (no case), or a case number: no control
                                            # characters, at least one letter or digit
                                            "pattern": _CASE_NUMBER,
                                            "description": "Links the generation to this case "
                                            "(a new number opens a case); blank: no case.",
                                        },
                                        "notes": {
                                            "type": "string",
                                            "maxLength": MAX_NOTES_CHARS,
                                            "pattern": _NO_NUL,
                                        },
                                        "seed": {
                                            "type": "integer",
                                            "minimum": 0,
                                            "maximum": MAX_SEED,
                                        },
                                        "skin": _attribute_schema("skin", "skin tone"),
                                        "hair_color": _attribute_schema(
                                            "hair_color", "hair colour"
                                        ),
                                        "gender": _attribute_schema("gender", "gender"),
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Created. JSON by default; PNG with Accept: image/png "
                            "or format=png "
                            "(then X-Generation-Id names the record).",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Generation"}
                                },
                                "image/png": {"schema": {"type": "string", "format": "binary"}},
                            },
                        },
                        "400": {
                            "description": "Not a usable image or bad option",
                            "content": json_error,
                        },
                        "401": {"description": "Missing or bad token", "content": json_error},
                        "413": {"description": "Upload too large", "content": json_error},
                        "429": {"description": "Rate limited", "content": json_error},
                        "503": {"description": "Model unavailable", "content": json_error},
                    },
                }
            },
            "/generations/{id}": {
                "get": {
                    "summary": "One of your generations",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The generation",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Generation"}
                                }
                            },
                        },
                        "401": {"description": "Missing or bad token", "content": json_error},
                        "404": {"description": "Not found or not yours", "content": json_error},
                    },
                }
            },
            "/generations/{id}/images/{kind}": {
                "get": {
                    "summary": "One image of a generation",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "kind",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": list(IMAGE_KINDS)},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "PNG",
                            "content": {
                                "image/png": {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        "401": {"description": "Missing or bad token", "content": json_error},
                        "404": {"description": "Not found or not yours", "content": json_error},
                    },
                }
            },
        },
    }
    from sketch2face.web.gallery import openapi_additions  # gallery search (issue 13)

    paths, schemas = openapi_additions(max_upload_bytes)
    document["paths"].update(paths)
    document["components"]["schemas"].update(schemas)
    from sketch2face.web.cases_api import openapi_additions as case_additions  # issue 12

    paths, schemas = case_additions()
    document["paths"].update(paths)
    document["components"]["schemas"].update(schemas)
    return document
