"""What the gallery pages and the gallery API share (docs/gallery.md): the app's searcher, signed
photo links, and :func:`run_search`, which searches and audits one query."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import (
    Flask,
    abort,
    current_app,
    request,
)
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException

from sketch2face.db.gallery import GalleryPhoto
from sketch2face.db.models import AuditEvent, Case, User
from sketch2face.errors import InvalidImageError
from sketch2face.gallery.enrol import jpeg_bytes
from sketch2face.gallery.errors import GalleryError
from sketch2face.gallery.faces import default_encoder
from sketch2face.gallery.index import GalleryIndexes
from sketch2face.gallery.search import (
    GalleryConfig,
    GallerySearcher,
    SearchOutcome,
    check_top_k,
)
from sketch2face.gallery.zipsafe import display_name
from sketch2face.imaging import MAX_SKETCH_ASPECT, decode_image_bytes
from sketch2face.services import audit
from sketch2face.services.case_gallery import CaseImage
from sketch2face.web.database import get_session
from sketch2face.web.errors import error_response
from sketch2face.web.extensions import get_settings, get_store
from sketch2face.web.security.access import get_owned_generation

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

GALLERY = "sketch2face.gallery"

PHOTOS_PAGE_SIZE = 48
QUERY_KINDS = ("face", "refined")
#: signed photo links stay valid this long (re-run the search for fresh ones)
PHOTO_LINK_MAX_AGE_S = 7 * 24 * 3600
NO_PERMISSION = (
    "Searching galleries needs a permission that an administrator grants (Galleries page)."
)


@dataclass
class GalleryWeb:
    """The app's gallery services."""

    config: GalleryConfig
    searcher: GallerySearcher


def init_app(app: Flask) -> None:
    """Give ``app`` its gallery searcher and the error page of gallery errors (``create_app``
    registers the pages and the API)."""
    settings = get_settings(app)
    config = GalleryConfig.from_env()
    indexes = GalleryIndexes(
        settings.data_dir.resolve() / "gallery-index",
        backend=config.index_backend,
        exact_below=config.exact_below,
    )
    app.extensions[GALLERY] = GalleryWeb(config, GallerySearcher(indexes, default_encoder))

    @app.errorhandler(GalleryError)
    def gallery_error(exc: GalleryError) -> Any:
        return error_response(exc.status, str(exc), "Gallery search")


def gallery_web(app: Flask | None = None) -> GalleryWeb:
    """The app's :class:`GalleryWeb`."""
    return cast(GalleryWeb, (app or current_app).extensions[GALLERY])


# ---------------------------------------------------------------------------- helpers
def _photo_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="gallery-photo")


def photo_token(user_id: int, photo_id: int) -> str:
    """A link token that lets ``user_id`` see photo ``photo_id`` (from one of their results)."""
    return _photo_serializer().dumps([user_id, photo_id])


def check_photo_access(user: User, photo_id: int) -> GalleryPhoto:
    """The photo, if ``user`` is an admin or holds a valid link token for it; else 404."""
    photo = get_session().get(GalleryPhoto, photo_id)
    if photo is None:
        abort(404, description="No such enrolled photo (it may have been removed).")
    if user.is_admin:
        return photo
    try:
        owner, pid = _photo_serializer().loads(
            request.args.get("t", ""), max_age=PHOTO_LINK_MAX_AGE_S
        )
    except (BadSignature, ValueError, TypeError):
        abort(404, description="Open enrolled photos from a search result.")
    if owner != user.id or pid != photo_id:
        abort(404, description="Open enrolled photos from a search result.")
    return photo


def _read_upload(upload: FileStorage, limit: int) -> bytes:
    data = upload.read(limit + 1)
    if not data:
        raise InvalidImageError("The uploaded photo is empty (0 bytes).")
    if len(data) > limit:
        raise InvalidImageError(f"The uploaded photo is larger than {limit} bytes.")
    return data


def run_search(
    user: User,
    *,
    gallery_name: str,
    top_k: int | str | None,
    upload: FileStorage | None,
    generation_id: str | None,
    image_kind: str | None,
    via: str,
    case_image: tuple[Case, CaseImage] | None = None,
) -> tuple[SearchOutcome, AuditEvent]:
    """Search for ``user`` (whose permission was checked); audit it, failed or not.

    ``case_image``: search with a stored image of a case instead (its likeness, a sketch's face,
    a candidate; the caller checked that ``user`` is a member): audited on the case's trail.

    Raises ValueError (bad input: 400), GalleryError (its status) or a 404 HTTPException.
    """
    session = get_session()
    settings = get_settings()
    query: dict[str, Any] = {
        "kind": "case" if case_image else "generation" if generation_id else "upload"
    }
    case_id = case_image[0].id if case_image else None
    gallery_name = (gallery_name or "").strip()
    try:
        if not gallery_name:
            raise ValueError("Choose a gallery to search.")
        top_k = check_top_k(top_k)
        query["top_k"] = top_k
        if sum((upload is not None, bool(generation_id), case_image is not None)) != 1:
            raise ValueError("Search with either a photo upload or a generation id (one of them).")
        if case_image is not None:
            case, image = case_image
            query.update(
                case_id=case.id,
                case_number=case.number,
                ref=image.ref,
                generation_id=image.generation_id,
                **image.detail,
            )
            data = get_store().get(image.key)
            image_u8 = decode_image_bytes(data, name="the case's image")
            allow_whole = True  # a generated likeness is a face crop
        elif generation_id:
            generation = get_owned_generation(generation_id, user)  # 404: not visible to user
            # THE face; on the studio backdrop its face pixels are the refined (else stage one's)
            # face's, which the search uses (the API's image kinds stay face and refined)
            kind = image_kind or (
                generation.shown_kind
                if generation.shown_kind in QUERY_KINDS
                else "refined"
                if generation.refined_key
                else "face"
            )
            if kind not in QUERY_KINDS or kind not in generation.image_keys:
                raise ValueError(f"This generation has no {kind[:20]!r} image to search with.")
            data = get_store().get(generation.image_keys[kind])
            image_u8 = decode_image_bytes(data, name="the generated face")
            query.update(
                generation_id=generation.id, image=kind, case_number=generation.case_number
            )
            allow_whole = True  # a generated likeness is a face crop
        else:
            assert upload is not None
            data = _read_upload(upload, settings.max_upload_bytes)
            query.update(
                file_name=display_name(upload.filename or "upload")[:255],
                sha256=hashlib.sha256(data).hexdigest(),
                bytes=len(data),
            )
            image_u8 = decode_image_bytes(
                data,
                name="the uploaded photo",
                max_pixels=settings.max_image_pixels,
                min_side=32,
                max_aspect=MAX_SKETCH_ASPECT,
            )
            allow_whole = False
        outcome = gallery_web().searcher.search(
            session, gallery_name, image_u8, top_k=top_k, allow_whole_image=allow_whole
        )
    except (ValueError, GalleryError, HTTPException) as exc:
        session.rollback()
        audit.record(
            session,
            audit.GALLERY_SEARCH,
            user,
            generation_id=query.get("generation_id"),
            case_id=case_id,
            gallery=gallery_name[:64],
            query=query,
            via=via,
            error=(exc.description if isinstance(exc, HTTPException) else str(exc))[:300],
        )
        session.commit()
        raise
    thumb_key = f"gallery-searches/{uuid.uuid4().hex}.jpg"
    get_store().put(thumb_key, jpeg_bytes(outcome.query.thumbnail_u8), content_type="image/jpeg")
    query.update(
        thumb_key=thumb_key,
        faces_detected=outcome.query.faces_detected,
        whole_image=outcome.query.whole_image,
    )
    event = audit.record(
        session,
        audit.GALLERY_SEARCH,
        user,
        generation_id=query.get("generation_id"),
        case_id=case_id,
        gallery=outcome.gallery,
        gallery_version=outcome.gallery_version,
        gallery_faces=outcome.gallery_faces,
        method=outcome.method,
        embedder=outcome.embedder,
        top_k=outcome.top_k,
        query=query,
        results=[h.as_json() for h in outcome.hits],
        notices=outcome.notices or None,
        via=via,
    )
    session.commit()
    return outcome, event
