"""Gallery search in the web app: search pages, admin enrolment and permissions, and the API.

- ``/gallery``: search a gallery with a generation (one's own) or an uploaded photo; needs the
  search permission (administrators have it; they grant it to investigators on
  ``/admin/galleries``). Each search is audited (``gallery_search``: who, when, the query, the
  gallery and the results) and its result page is ``/gallery/searches/<audit event id>``.
- ``/admin/galleries``: create galleries, upload a ZIP or photos (enrolled in one transaction),
  remove photos or galleries, grant and revoke the search permission.
- ``/api/v1/galleries``, ``/api/v1/gallery/search``, ``/api/v1/gallery/photos/...``: the same
  for API tokens (in the OpenAPI document).

Enrolled photos are shown only through links from a search result (signed for the account that
searched), or to administrators, so the gallery cannot be browsed by photo id.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sketch2face.errors import InvalidImageError
from sketch2face.gallery import CAVEAT
from sketch2face.gallery.enrol import REASONS, EnrolOptions, enrol_files, jpeg_bytes
from sketch2face.gallery.errors import GalleryError
from sketch2face.gallery.faces import default_encoder
from sketch2face.gallery.index import GalleryIndexes
from sketch2face.gallery.models import GalleryPhoto
from sketch2face.gallery.search import (
    DEFAULT_TOP_K,
    MAX_TOP_K,
    GalleryConfig,
    GallerySearcher,
    SearchOutcome,
    check_top_k,
)
from sketch2face.gallery.store import (
    can_search,
    create_gallery,
    get_gallery,
    grant_search,
    grants,
    list_galleries,
    remove_gallery,
    remove_photo,
    revoke_search,
)
from sketch2face.gallery.zipsafe import ArchiveLimits, SourceFile, display_name, is_zip, zip_entries
from sketch2face.imaging import MAX_SKETCH_ASPECT, decode_image_bytes
from sketch2face.storage import ObjectNotFoundError
from sketch2face.web import audit
from sketch2face.web.access import get_owned_generation
from sketch2face.web.auth import admin_required
from sketch2face.web.db import get_session
from sketch2face.web.errors import error_response
from sketch2face.web.extensions import get_settings, get_store
from sketch2face.web.headers import NO_STORE
from sketch2face.web.models import AuditEvent, Generation, User
from sketch2face.web.paging import page_of, requested_page

log = logging.getLogger(__name__)

bp = Blueprint("gallery", __name__)
api_bp = Blueprint("gallery_api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., Any])

GALLERY = "sketch2face.gallery"
# audit actions
SEARCH = "gallery_search"
SEARCH_DENIED = "gallery_search_denied"
ENROL = "gallery_enrol"
CREATE = "gallery_create"
REMOVE = "gallery_remove"
PHOTO_REMOVE = "gallery_photo_remove"
PHOTO_VIEW = "gallery_photo_view"
GRANT = "gallery_grant"
REVOKE = "gallery_revoke"

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
    """Register the gallery pages and API on ``app`` (after CSRFProtect)."""
    settings = get_settings(app)
    config = GalleryConfig.from_env()
    indexes = GalleryIndexes(
        settings.data_dir.resolve() / "gallery-index",
        backend=config.index_backend,
        exact_below=config.exact_below,
    )
    app.extensions[GALLERY] = GalleryWeb(config, GallerySearcher(indexes, default_encoder))
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    csrf = app.extensions["csrf"]
    csrf.exempt(api_bp)  # token-authenticated, no cookies
    # The enrolment upload raises the request size limit first and then checks CSRF itself
    # (CSRFProtect would parse the form under the app-wide limit).
    csrf.exempt(enrol)

    @app.errorhandler(GalleryError)
    def gallery_error(exc: GalleryError) -> Any:
        return error_response(exc.status, str(exc), "Gallery search")


def gallery_web(app: Flask | None = None) -> GalleryWeb:
    """The app's :class:`GalleryWeb`."""
    return cast(GalleryWeb, (app or current_app).extensions[GALLERY])


@bp.app_context_processor
def _gallery_context() -> dict[str, Any]:
    def allowed() -> bool:
        if not current_user.is_authenticated:
            return False
        if "can_search_gallery" not in g:
            try:
                g.can_search_gallery = can_search(get_session(), current_user._get_current_object())
            except sa.exc.SQLAlchemyError:  # e.g. rendering the error page of a database error
                log.warning("could not check the gallery search permission", exc_info=True)
                g.can_search_gallery = False
        return bool(g.can_search_gallery)

    return {"can_search_gallery": allowed, "gallery_caveat": CAVEAT}


# ---------------------------------------------------------------------------- helpers
def _photo_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="gallery-photo")


def photo_token(user_id: int, photo_id: int) -> str:
    """A link token that lets ``user_id`` see photo ``photo_id`` (from one of their results)."""
    return _photo_serializer().dumps([user_id, photo_id])


def _check_photo_access(user: User, photo_id: int) -> GalleryPhoto:
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


def _image_response(key: str, content_type: str) -> Response:
    try:
        data = get_store().get(key)
    except ObjectNotFoundError:
        abort(404, description="The image file is missing from storage.")
    response = Response(data, mimetype=content_type)
    response.headers["Cache-Control"] = NO_STORE
    return response


def search_permission_required(view: F) -> F:
    """Pages: signed in and allowed to search (403 otherwise, audited)."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = current_user._get_current_object()
        session = get_session()
        if not can_search(session, user):
            if request.method == "POST":
                audit.record(session, SEARCH_DENIED, user, via="web")
                session.commit()
            abort(403, description=NO_PERMISSION)
        return view(*args, **kwargs)

    return cast(F, wrapped)


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
) -> tuple[SearchOutcome, AuditEvent]:
    """Search for ``user`` (whose permission was checked); audit it, failed or not.

    Raises ValueError (bad input: 400), GalleryError (its status) or a 404 HTTPException.
    """
    session = get_session()
    settings = get_settings()
    query: dict[str, Any] = {"kind": "generation" if generation_id else "upload"}
    gallery_name = (gallery_name or "").strip()
    try:
        if not gallery_name:
            raise ValueError("Choose a gallery to search.")
        top_k = check_top_k(top_k)
        query["top_k"] = top_k
        if (upload is None) == (not generation_id):
            raise ValueError("Search with either a photo upload or a generation id (one of them).")
        if generation_id:
            generation = get_owned_generation(generation_id, user)  # 404: not visible to user
            kind = image_kind or ("refined" if generation.refined_key else "face")
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
            SEARCH,
            user,
            generation_id=query.get("generation_id"),
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
        SEARCH,
        user,
        generation_id=query.get("generation_id"),
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


# ---------------------------------------------------------------------------- search pages
@bp.get("/gallery")
@search_permission_required
def search_page() -> Any:
    """The search form: gallery, number of candidates, a generation or a photo."""
    session = get_session()
    searcher = gallery_web().searcher
    galleries = list_galleries(session, searcher.encoder.name)
    recent = session.scalars(
        sa.select(Generation)
        .where(Generation.user_id == current_user.id)
        .order_by(Generation.created_at.desc())
        .limit(30)
    ).all()
    chosen = request.args.get("generation", "")[:32]
    if chosen and chosen not in {r.id for r in recent}:
        generation = get_owned_generation(chosen, current_user)
        recent = [generation, *recent]
    return render_template(
        "gallery_search.html",
        galleries=galleries,
        recent=recent,
        chosen=chosen,
        default_top_k=DEFAULT_TOP_K,
        max_top_k=MAX_TOP_K,
    )


@bp.post("/gallery/search")
@search_permission_required
def search() -> Any:
    """Run a search from the form; redirect to its (audited) result page."""
    source = request.form.get("source", "upload")
    upload = request.files.get("photo") if source == "upload" else None
    if upload is not None and not upload.filename:
        upload = None
    generation_id = request.form.get("generation_id", "").strip() if source == "generation" else ""
    try:
        _, event = run_search(
            current_user._get_current_object(),
            gallery_name=request.form.get("gallery", ""),
            top_k=request.form.get("top_k"),
            upload=upload,
            generation_id=generation_id or None,
            image_kind=request.form.get("image") or None,
            via="web",
        )
    except GalleryError:
        raise  # its own status (404 unknown gallery, 409 empty, 422 no face...)
    except InvalidImageError as exc:
        return error_response(400, str(exc), "Not a usable image")
    except ValueError as exc:
        return error_response(400, str(exc), "Gallery search")
    return redirect(url_for("gallery.result", search_id=event.id))


def _own_search(search_id: int) -> AuditEvent:
    event = get_session().get(AuditEvent, search_id)
    if (
        event is None
        or event.action != SEARCH
        or "error" in event.detail
        or not (event.user_id == current_user.id or current_user.is_admin)
    ):
        abort(404, description="No such search, or it is not yours.")
    return event


@bp.get("/gallery/searches/<int:search_id>")
@search_permission_required
def result(search_id: int) -> Any:
    """A search's candidates beside the query, best first, with the caveat."""
    event = _own_search(search_id)
    results = list(event.detail.get("results", []))
    ids = [r["photo_id"] for r in results]
    present = (
        set(get_session().scalars(sa.select(GalleryPhoto.id).where(GalleryPhoto.id.in_(ids))))
        if ids
        else set()
    )
    viewer = current_user.id
    rows = [
        {
            **r,
            "present": r["photo_id"] in present,
            "token": photo_token(viewer, r["photo_id"]),
        }
        for r in results
    ]
    return render_template("gallery_result.html", event=event, rows=rows, caveat=CAVEAT)


@bp.get("/gallery/searches/<int:search_id>/query.jpg")
@search_permission_required
def query_image(search_id: int) -> Any:
    """The aligned query face of a search."""
    event = _own_search(search_id)
    key = event.detail.get("query", {}).get("thumb_key")
    if not key:
        abort(404)
    return _image_response(key, "image/jpeg")


@bp.get("/gallery/photos/<int:photo_id>/face.jpg")
@search_permission_required
def photo_face(photo_id: int) -> Any:
    """An enrolled photo's face thumbnail (from a result link, or for administrators)."""
    photo = _check_photo_access(current_user, photo_id)
    return _image_response(photo.thumb_key, "image/jpeg")


@bp.get("/gallery/photos/<int:photo_id>")
@search_permission_required
def photo(photo_id: int) -> Any:
    """The enrolled photo itself (audited)."""
    photo = _check_photo_access(current_user, photo_id)
    response = _image_response(photo.photo_key, photo.content_type)
    session = get_session()
    audit.record(session, PHOTO_VIEW, current_user, photo_id=photo.id, file_name=photo.file_name)
    session.commit()
    return response


# ---------------------------------------------------------------------------- admin pages
@bp.get("/admin/galleries")
@admin_required
def admin() -> Any:
    """Galleries (with counts), a form to create one, and the search permissions."""
    session = get_session()
    searcher = gallery_web().searcher
    users = session.scalars(sa.select(User).order_by(User.username)).all()
    return render_template(
        "gallery_admin.html",
        galleries=list_galleries(session, searcher.encoder.name),
        users=users,
        grants=grants(session),
    )


@bp.post("/admin/galleries")
@admin_required
def create() -> Any:
    """Create a gallery."""
    session = get_session()
    gallery = create_gallery(
        session,
        request.form.get("name", ""),
        description=request.form.get("description"),
        created_by=current_user.username,
    )
    audit.record(session, CREATE, current_user, gallery=gallery.name)
    session.commit()
    flash(f"Gallery '{gallery.name}' created; upload photos to enrol them.", "success")
    return redirect(url_for("gallery.detail", name=gallery.name))


@bp.get("/admin/galleries/<name>")
@admin_required
def detail(name: str) -> Any:
    """One gallery: its photos (paged), the upload form, removal."""
    session = get_session()
    gallery = get_gallery(session, name)
    stmt = sa.select(GalleryPhoto).where(GalleryPhoto.gallery_id == gallery.id)
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery())) or 0
    page = page_of(requested_page(request.args), total, PHOTOS_PAGE_SIZE)
    photos = session.scalars(
        stmt.order_by(GalleryPhoto.id.desc()).limit(page.size).offset(page.offset)
    ).all()
    return render_template(
        "gallery_detail.html",
        gallery=gallery,
        photos=photos,
        total=total,
        page=page.number,
        pages=page.pages,
        max_upload_mib=gallery_web().config.max_upload_bytes // (1024 * 1024),
        max_files=gallery_web().config.max_files,
    )


def _check_csrf() -> None:
    from flask_wtf.csrf import CSRFError, validate_csrf
    from wtforms import ValidationError

    try:
        validate_csrf(request.form.get("csrf_token"))
    except ValidationError as exc:
        raise CSRFError(exc.args[0] if exc.args else "CSRF check failed") from exc


@bp.post("/admin/galleries/<name>/enrol")
@admin_required
def enrol(name: str) -> Any:
    """Enrol an uploaded ZIP and/or photos, all in one transaction (nothing half-enrolled)."""
    config = gallery_web().config
    request.max_content_length = config.max_upload_bytes + 64 * 1024
    request.max_form_parts = config.max_files + 16
    try:
        uploads = [f for f in request.files.getlist("photos") if f and f.filename]
    except RequestEntityTooLarge:
        return error_response(
            413,
            f"The upload exceeds {config.max_upload_bytes // (1024 * 1024)} MiB (or "
            f"{config.max_files} files); split it, or enrol the folder with "
            "`sketch2face gallery add`.",
            "Upload too large",
        )
    _check_csrf()
    session = get_session()
    gallery = get_gallery(session, name)
    if not uploads:
        abort(400, description="Choose a ZIP file, photos or a folder to enrol.")
    limits = ArchiveLimits(max_entries=config.max_files)
    files: list[SourceFile] = []
    for upload in uploads:
        head = upload.stream.read(4)
        upload.stream.seek(0)
        if is_zip(head):
            files.extend(zip_entries(upload.stream, limits))
        else:
            files.append(
                SourceFile(
                    display_name(upload.filename or "upload"),
                    0,
                    lambda u=upload: u.stream.read(limits.max_member_bytes + 1),
                )
            )
    if len(files) > config.max_files:
        abort(400, description=f"{len(files)} files in one upload; at most {config.max_files}.")
    policy = "skip" if request.form.get("several_faces") == "skip" else "largest"
    searcher = gallery_web().searcher
    user = current_user._get_current_object()

    def audit_batch(s: Any, report: Any) -> None:
        audit.record(
            s,
            ENROL,
            user,
            gallery=gallery.name,
            batch_id=report.batch_id,
            files=report.files,
            enrolled=report.enrolled,
            skipped=report.counts,
            via="web",
        )

    report = enrol_files(
        session,
        get_store(),
        gallery,
        files,
        searcher.encoder,
        options=EnrolOptions(atomic=True, several_faces=policy),
        enrolled_by=user.username,
        before_commit=audit_batch,
    )
    flash(
        f"Enrolment into '{gallery.name}': {report.summary()}.",
        "success" if report.enrolled else "info",
    )
    skipped = [f"{n} ({r})" for n, r in report.skipped[:20]]
    if skipped:
        more = f" and {len(report.skipped) - 20} more" if len(report.skipped) > 20 else ""
        flash("Skipped: " + ", ".join(skipped) + more + ".", "info")
    return redirect(url_for("gallery.detail", name=gallery.name))


@bp.post("/admin/galleries/<name>/delete")
@admin_required
def delete(name: str) -> Any:
    """Remove a gallery, its photos, embeddings and files."""
    session = get_session()
    gallery = get_gallery(session, name)
    gallery_id, gallery_name = gallery.id, gallery.name
    audit.record(session, REMOVE, current_user, gallery=gallery_name)
    removed = remove_gallery(session, get_store(), gallery)
    gallery_web().searcher.indexes.forget(gallery_id)
    flash(f"Gallery '{gallery_name}' and its {removed} photos were removed.", "success")
    return redirect(url_for("gallery.admin"))


@bp.post("/admin/galleries/<name>/photos/<int:photo_id>/delete")
@admin_required
def delete_photo(name: str, photo_id: int) -> Any:
    """Remove one enrolled photo."""
    session = get_session()
    gallery = get_gallery(session, name)
    photo = session.get(GalleryPhoto, photo_id)
    if photo is None or photo.gallery_id != gallery.id:
        abort(404, description="No such photo in this gallery.")
    audit.record(
        session,
        PHOTO_REMOVE,
        current_user,
        gallery=gallery.name,
        photo_id=photo.id,
        file_name=photo.file_name,
    )
    remove_photo(session, get_store(), gallery, photo)
    flash(f"Photo '{photo.file_name}' removed.", "success")
    return redirect(url_for("gallery.detail", name=gallery.name))


@bp.post("/admin/gallery-permissions/<int:user_id>")
@admin_required
def permission(user_id: int) -> Any:
    """Grant (``grant=1``) or revoke (``grant=0``) an account's search permission."""
    session = get_session()
    user = session.get(User, user_id) or abort(404, description="No such account.")
    if request.form.get("grant") == "1":
        changed = grant_search(session, user, current_user.username)
        action, verb = GRANT, "may now search galleries"
    else:
        changed = revoke_search(session, user)
        action, verb = REVOKE, "may no longer search galleries"
    if changed:
        audit.record(session, action, current_user, target=user.username)
        session.commit()
    note = "" if not user.is_admin else " (administrators may always search)"
    flash(f"'{user.username}' {verb}{note}.", "success")
    return redirect(url_for("gallery.admin"))


# ---------------------------------------------------------------------------- API
def _api_user() -> User:
    user: User = g.api_user
    if not can_search(get_session(), user):
        session = get_session()
        audit.record(session, SEARCH_DENIED, user, via="api")
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


def _token_required(view: F) -> F:
    from sketch2face.web.api import token_required

    return token_required(view)


@api_bp.get("/galleries")
@_token_required
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
@_token_required
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
@_token_required
def api_photo_face(photo_id: int) -> Any:
    """Face thumbnail of an enrolled photo (link from a search result)."""
    user = _api_user()
    photo = _check_photo_access(user, photo_id)
    return _image_response(photo.thumb_key, "image/jpeg")


@api_bp.get("/gallery/photos/<int:photo_id>")
@_token_required
def api_photo(photo_id: int) -> Any:
    """The enrolled photo (link from a search result; audited)."""
    user = _api_user()
    photo = _check_photo_access(user, photo_id)
    response = _image_response(photo.photo_key, photo.content_type)
    session = get_session()
    audit.record(session, PHOTO_VIEW, user, photo_id=photo.id, file_name=photo.file_name, via="api")
    session.commit()
    return response


def openapi_additions(max_upload_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, schemas) of the gallery API, merged into ``api.openapi_document``."""
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


__all__ = [
    "GALLERY",
    "REASONS",
    "GalleryWeb",
    "api_bp",
    "bp",
    "init_app",
    "openapi_additions",
    "run_search",
]
