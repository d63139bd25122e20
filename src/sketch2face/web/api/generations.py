"""The generation API under /api/v1 (JSON or PNG); bearer tokens (``auth``), no cookies, no CSRF."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, g, jsonify, request, url_for

from sketch2face.attributes import GENDERS
from sketch2face.db.models import Generation, User
from sketch2face.imaging import MAX_SKETCH_ASPECT, MIN_SKETCH_SIDE
from sketch2face.services import audit
from sketch2face.services.generation import (
    BACKDROPS,
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
from sketch2face.services.signing import sign_generation_png
from sketch2face.storage import ObjectNotFoundError
from sketch2face.web.api import fields
from sketch2face.web.api.auth import token_required
from sketch2face.web.database import get_session
from sketch2face.web.extensions import get_store
from sketch2face.web.security.access import get_visible_generation
from sketch2face.web.security.headers import NO_STORE

bp = Blueprint("api", __name__, url_prefix="/api/v1")
#: the ``refine`` field of POST /generate (issue 22: both stages by default)
REFINE_DESCRIPTION = (
    "true or false (1 or 0 work too). True (the default): the second stage, the refiner, "
    "refines the face where the server has one; false: stage one's face alone."
)
F = TypeVar("F", bound=Callable[..., Any])


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
    """Multipart ``sketch`` (+ refine, backdrop, case_number, notes, seed, skin, hair_color, gender) -> JSON
    (default) or PNG."""
    upload = request.files.get("sketch")
    if upload is None:
        abort(400, description="Send the sketch as a multipart file field named 'sketch'.")
    try:
        options = GenerationOptions(
            refine=fields.boolean(request.form, "refine", default=True),
            case_number=request.form.get("case_number"),
            notes=request.form.get("notes"),
            source="api",
            seed=fields.seed(request.form),
            attributes=fields.attributes(request.form),
            backdrop=request.form.get("backdrop") or "photo",  # checked by GenerationOptions
        )
        want_png = _wants_png()
        user: User = g.api_user
        generation = generate_for(user, upload.read(), options)
    except ValueError as exc:  # InvalidImageError is a ValueError too
        abort(400, description=str(exc))
    location = url_for("api.get_generation", generation_id=generation.id, _external=True)
    if want_png:
        data = get_store().get(generation.shown_key)
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
        data = sign_generation_png(
            generation, data, image=kind
        )  # an exported face carries its provenance
    response = Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = NO_STORE
    return response


#: the OpenAPI schema of POST /generate's ``backdrop`` form field
BACKDROP_FIELD: dict[str, Any] = {
    "type": "string",
    "enum": list(BACKDROPS),
    "default": "photo",
    "description": "photo: the background the networks painted; studio: the face on a plain "
    "studio backdrop (the usual look of a police likeness, for appeal sheets), stored as the "
    "'studio' image. Stage one's face ('face') and the refined face ('refined') stay as made.",
}


#: the OpenAPI schema of a generation's ``backdrop`` in its JSON
GENERATION_BACKDROP_FIELD: dict[str, Any] = {
    "type": "string",
    "enum": list(BACKDROPS),
    "description": "Background of THE face: photo (the networks' own) or studio (then the "
    "'studio' image is THE face).",
}


def openapi_part(max_upload_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, schemas) of the generation API and the shared ``Error`` schema, for ``openapi``."""
    error = {"$ref": "#/components/schemas/Error"}
    json_error = {"application/json": {"schema": error}}
    generation_schema = {
        "type": "object",
        "required": [
            "id",
            "created_at",
            "model_version",
            "images",
            "notice",
            "attributes",
            "backdrop",
        ],
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
            "backdrop": GENERATION_BACKDROP_FIELD,
            "notice": {"type": "string", "const": LIKENESS_NOTICE},
            "images": {
                "type": "object",
                "properties": {k: {"type": "string", "format": "uri"} for k in IMAGE_KINDS},
                "required": ["sketch", "face"],
            },
        },
    }
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error", "status"],
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
        },
        "Generation": generation_schema,
    }
    paths: dict[str, Any] = {
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
                                        "default": True,
                                        "description": REFINE_DESCRIPTION,
                                    },
                                    "backdrop": BACKDROP_FIELD,
                                    "case_number": {
                                        "type": "string",
                                        "maxLength": MAX_CASE_CHARS,
                                        # blank (no case), or a case number: no control
                                        # characters, at least one letter or digit
                                        "pattern": fields.CASE_NUMBER,
                                        "description": "Links the generation to this case "
                                        "(a new number opens a case); blank: no case.",
                                    },
                                    "notes": {
                                        "type": "string",
                                        "maxLength": MAX_NOTES_CHARS,
                                        "pattern": fields.NO_NUL,
                                    },
                                    "seed": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": MAX_SEED,
                                    },
                                    "skin": fields.attribute_schema("skin", "skin tone"),
                                    "hair_color": fields.attribute_schema(
                                        "hair_color", "hair colour"
                                    ),
                                    "gender": fields.attribute_schema("gender", "gender"),
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
    }
    return paths, schemas
