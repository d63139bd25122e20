"""The OpenAPI 3.1 document of ``/api/v1``, assembled here from the part each API module
contributes (``openapi_part(max_upload_bytes) -> (paths, schemas)``), in a fixed order; no API
module imports another for its schema. Hand-written: a generator would add more than it saves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify

from sketch2face import __version__
from sketch2face.web.api import cases, gallery, generations
from sketch2face.web.extensions import get_settings

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

#: the parts, in the document's order: generations (with the shared Error schema), gallery, cases
PARTS: tuple[Callable[[int], tuple[dict[str, Any], dict[str, Any]]], ...] = (
    generations.openapi_part,
    gallery.openapi_part,
    cases.openapi_part,
)


@bp.get("/openapi.json")
def document() -> Any:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_document(get_settings().max_upload_bytes))


def openapi_document(max_upload_bytes: int) -> dict[str, Any]:
    """The whole document: info, security and every part's paths and schemas."""
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
            "schemas": {},
        },
        "paths": {},
    }
    for part in PARTS:
        paths, schemas = part(max_upload_bytes)
        document["paths"].update(paths)
        document["components"]["schemas"].update(schemas)
    return document
