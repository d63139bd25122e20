"""Answers shared by the pages and the API."""

from __future__ import annotations

from flask import Response, abort

from sketch2face.storage import ObjectNotFoundError
from sketch2face.web.extensions import get_store
from sketch2face.web.security.headers import NO_STORE


def stored_image(
    key: str, content_type: str = "image/png", *, download_name: str | None = None
) -> Response:
    """A stored image as an answer that browsers do not cache (404 when it is missing)."""
    try:
        data = get_store().get(key)
    except ObjectNotFoundError:
        abort(404, description="The image file is missing from storage.")
    response = Response(data, mimetype=content_type)
    response.headers["Cache-Control"] = NO_STORE
    if download_name:
        response.headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response
