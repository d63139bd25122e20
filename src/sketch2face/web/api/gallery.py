"""Gallery search API (docs/gallery.md): galleries one may search, search, enrolled photos."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    g,
    request,
    url_for,
)

from sketch2face.db.models import User
from sketch2face.gallery import CAVEAT
from sketch2face.gallery.errors import GalleryError
from sketch2face.gallery.search import (
    DEFAULT_TOP_K,
    MAX_TOP_K,
)
from sketch2face.gallery.store import (
    can_search,
    list_galleries,
)
from sketch2face.services import audit
from sketch2face.web.api.auth import token_required
from sketch2face.web.database import get_session
from sketch2face.web.gallery_search import (
    NO_PERMISSION,
    QUERY_KINDS,
    check_photo_access,
    gallery_web,
    photo_token,
    run_search,
)
from sketch2face.web.responses import stored_image

api_bp = Blueprint("gallery_api", __name__, url_prefix="/api/v1")


def _api_user() -> User:
    user: User = g.api_user
    if not can_search(get_session(), user):
        session = get_session()
        audit.record(session, audit.GALLERY_SEARCH_DENIED, user, via="api")
        session.commit()
        abort(403, description=NO_PERMISSION)
    return user


def _api_photo_urls(user_id: int, photo_id: int) -> dict[str, str]:
    token = photo_token(user_id, photo_id)
    return {
        "photo_url": url_for("gallery_api.api_photo", photo_id=photo_id, t=token, _external=True),
        "thumbnail_url": url_for(
            "gallery_api.api_photo_face", photo_id=photo_id, t=token, _external=True
        ),
    }


@api_bp.get("/galleries")
@token_required
def api_galleries() -> Any:
    """Galleries one may search, with their sizes."""
    _api_user()
    searcher = gallery_web().searcher
    return {
        "galleries": [
            {
                "name": s.name,
                "description": s.description,
                "photos": s.photos,
                "faces": s.faces,
                "version": s.version,
            }
            for s in list_galleries(get_session(), searcher.encoder.name)
        ],
        "caveat": CAVEAT,
    }


@api_bp.post("/gallery/search")
@token_required
def api_search() -> Any:
    """Multipart ``gallery`` + ``photo`` (file) or ``generation_id`` (+ ``image``), ``top_k``."""
    user = _api_user()
    upload = request.files.get("photo")
    try:
        outcome, event = run_search(
            user,
            gallery_name=request.form.get("gallery", ""),
            top_k=request.form.get("top_k"),
            upload=upload,
            generation_id=(request.form.get("generation_id") or "").strip() or None,
            image_kind=request.form.get("image") or None,
            via="api",
        )
    except GalleryError:
        raise
    except ValueError as exc:  # InvalidImageError included
        abort(400, description=str(exc))
    body = outcome.as_json()
    if not user.is_admin:
        body.pop("timings_ms", None)  # internal timings are for administrators
    body["search_id"] = event.id
    body["query"]["kind"] = event.detail["query"]["kind"]
    if event.generation_id:
        body["query"]["generation_id"] = event.generation_id
    for row in body["results"]:
        row.update(_api_photo_urls(user.id, row["photo_id"]))
    return body


@api_bp.get("/gallery/photos/<int:photo_id>/face.jpg")
@token_required
def api_photo_face(photo_id: int) -> Any:
    """Face thumbnail of an enrolled photo (link from a search result)."""
    user = _api_user()
    photo = check_photo_access(user, photo_id)
    return stored_image(photo.thumb_key, "image/jpeg")


@api_bp.get("/gallery/photos/<int:photo_id>")
@token_required
def api_photo(photo_id: int) -> Any:
    """The enrolled photo (link from a search result; audited)."""
    user = _api_user()
    photo = check_photo_access(user, photo_id)
    response = stored_image(photo.photo_key, photo.content_type)
    session = get_session()
    audit.record(
        session,
        audit.GALLERY_PHOTO_VIEW,
        user,
        photo_id=photo.id,
        file_name=photo.file_name,
        via="api",
    )
    session.commit()
    return response


def openapi_part(max_upload_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, schemas) of the gallery API, for ``openapi``."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    common = {
        "401": {"description": "Missing or bad token", "content": error},
        "403": {"description": "No gallery search permission", "content": error},
    }
    candidate = {
        "type": "object",
        "required": ["rank", "photo_id", "file_name", "distance", "score"],
        "properties": {
            "rank": {"type": "integer", "minimum": 1},
            "photo_id": {"type": "integer"},
            "file_name": {"type": "string", "description": "name of the enrolled file"},
            "distance": {
                "type": "number",
                "description": "Euclidean descriptor distance; lower is closer",
            },
            "score": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "similarity (higher is closer); not a probability of identity",
            },
            "photo_url": {"type": "string", "format": "uri"},
            "thumbnail_url": {"type": "string", "format": "uri"},
        },
    }
    result = {
        "type": "object",
        "required": ["search_id", "gallery", "results", "caveat"],
        "properties": {
            "search_id": {"type": "integer", "description": "the audit event of this search"},
            "gallery": {"type": "string"},
            "gallery_version": {"type": "integer"},
            "gallery_faces": {"type": "integer"},
            "top_k": {"type": "integer"},
            "method": {"type": "string", "enum": ["exact", "faiss", "usearch"]},
            "embedder": {"type": "string"},
            "query": {"type": "object"},
            "results": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/GalleryCandidate"},
            },
            "notices": {"type": "array", "items": {"type": "string"}},
            "timings_ms": {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "description": "Internal timings in milliseconds; only in administrators' answers.",
            },
            "caveat": {"type": "string", "const": CAVEAT},
        },
    }
    galleries = {
        "type": "object",
        "required": ["galleries", "caveat"],
        "properties": {
            "galleries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "photos", "faces", "version"],
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": ["string", "null"]},
                        "photos": {"type": "integer"},
                        "faces": {"type": "integer"},
                        "version": {"type": "integer"},
                    },
                },
            },
            "caveat": {"type": "string", "const": CAVEAT},
        },
    }
    image_params = [
        {"name": "photo_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {
            "name": "t",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "link token from a search result (administrators need none)",
        },
    ]
    paths = {
        "/galleries": {
            "get": {
                "summary": "Galleries you may search",
                "responses": {
                    "200": {
                        "description": "Galleries and sizes",
                        "content": {"application/json": {"schema": galleries}},
                    },
                    **common,
                },
            }
        },
        "/gallery/search": {
            "post": {
                "summary": "Search a gallery with a photo or one of your generations",
                "description": CAVEAT,
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["gallery"],
                                "properties": {
                                    "gallery": {"type": "string"},
                                    "top_k": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": MAX_TOP_K,
                                        "default": DEFAULT_TOP_K,
                                    },
                                    "photo": {
                                        "type": "string",
                                        "format": "binary",
                                        "description": f"a face photo (up to {max_upload_bytes} bytes); or generation_id",
                                    },
                                    "generation_id": {"type": "string", "maxLength": 32},
                                    "image": {
                                        "type": "string",
                                        "enum": list(QUERY_KINDS),
                                        "description": "which image of the generation (default: refined if any, else face)",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "Candidates, best first (audited)",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/GallerySearch"}
                            }
                        },
                    },
                    "400": {
                        "description": "Bad input (image, top_k, both or neither query)",
                        "content": error,
                    },
                    **common,
                    "404": {
                        "description": "Unknown gallery, or not your generation",
                        "content": error,
                    },
                    "409": {"description": "The gallery has no enrolled faces", "content": error},
                    "413": {"description": "Upload too large", "content": error},
                    "422": {"description": "No face found on the photo", "content": error},
                },
            }
        },
        "/gallery/photos/{photo_id}": {
            "get": {
                "summary": "An enrolled photo (audited)",
                "parameters": image_params,
                "responses": {
                    "200": {
                        "description": "The original file, as enrolled",
                        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **common,
                    "404": {"description": "No such photo or no valid link", "content": error},
                },
            }
        },
        "/gallery/photos/{photo_id}/face.jpg": {
            "get": {
                "summary": "The aligned face thumbnail of an enrolled photo",
                "parameters": image_params,
                "responses": {
                    "200": {
                        "description": "JPEG",
                        "content": {
                            "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **common,
                    "404": {"description": "No such photo or no valid link", "content": error},
                },
            }
        },
    }
    return paths, {"GalleryCandidate": candidate, "GallerySearch": result}
