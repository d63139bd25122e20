"""Gallery search pages and their administration (docs/gallery.md): search, results, enrolled
photos; galleries, enrolment, removal and search permissions for administrators."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from sketch2face.db.gallery import GalleryPhoto
from sketch2face.db.models import AuditEvent, User
from sketch2face.errors import InvalidImageError
from sketch2face.gallery import CAVEAT
from sketch2face.gallery.enrol import EnrolOptions, enrol_files
from sketch2face.gallery.errors import GalleryError
from sketch2face.gallery.score import SAME_PERSON_DISTANCE
from sketch2face.gallery.search import (
    DEFAULT_TOP_K,
    MAX_TOP_K,
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
from sketch2face.services import audit
from sketch2face.services.case_gallery import case_images, find_case_image
from sketch2face.services.galleries import existing_photo_ids, photo_listing
from sketch2face.services.generation import recent_generations
from sketch2face.services.users import all_users
from sketch2face.web.database import get_session
from sketch2face.web.errors import error_response
from sketch2face.web.extensions import get_store
from sketch2face.web.gallery_search import (
    NO_PERMISSION,
    PHOTOS_PAGE_SIZE,
    check_photo_access,
    gallery_web,
    photo_token,
    run_search,
)
from sketch2face.web.pages.auth import admin_required
from sketch2face.web.paging import page_of, requested_page
from sketch2face.web.responses import stored_image
from sketch2face.web.security.access import get_case_for, get_owned_generation

bp = Blueprint("gallery", __name__)
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


@bp.app_context_processor
def _gallery_context() -> dict[str, Any]:
    def allowed() -> bool:
        if not current_user.is_authenticated:
            return False
        if "can_search_gallery" not in g:
            try:
                g.can_search_gallery = can_search(get_session(), current_user._get_current_object())
            except SQLAlchemyError:  # e.g. rendering the error page of a database error
                log.warning("could not check the gallery search permission", exc_info=True)
                g.can_search_gallery = False
        return bool(g.can_search_gallery)

    return {"can_search_gallery": allowed, "gallery_caveat": CAVEAT}


def search_permission_required(view: F) -> F:
    """Pages: signed in and allowed to search (403 otherwise, audited)."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _check_search_permission(current_user._get_current_object())
        return view(*args, **kwargs)

    return cast(F, wrapped)


def _check_search_permission(user: User, case_id: int | None = None) -> None:
    """403 unless ``user`` may search (a refused POST is audited)."""
    session = get_session()
    if not can_search(session, user):
        if request.method == "POST":
            audit.record(session, audit.GALLERY_SEARCH_DENIED, user, case_id=case_id, via="web")
            session.commit()
        abort(403, description=NO_PERMISSION)


# ---------------------------------------------------------------------------- search pages
@bp.get("/gallery")
@search_permission_required
def search_page() -> Any:
    """The search form: gallery, number of candidates, a generation or a photo."""
    session = get_session()
    searcher = gallery_web().searcher
    galleries = list_galleries(session, searcher.encoder.name)
    recent = recent_generations(session, current_user.id, limit=30)
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


# ---------------------------------------------------------------------------- from a case
@bp.get("/cases/<int:case_id>/gallery-search")
@login_required
def case_search_page(case_id: int) -> Any:
    """Search a gallery with one of the case's images (``?image=`` preselects one): a picker of
    thumbnails, never ids. Members with the search permission only (404 for non-members first,
    then 403 without the permission)."""
    user = current_user._get_current_object()
    case = get_case_for(case_id, user)
    _check_search_permission(user)
    session = get_session()
    images = case_images(session, case)
    chosen = request.args.get("image", "")[:64]
    if chosen and chosen not in {i.ref for i in images}:
        abort(404, description="No such image in this case.")
    return render_template(
        "case_gallery_search.html",
        case=case,
        images=images,
        chosen=chosen or (images[0].ref if images else ""),
        galleries=list_galleries(session, gallery_web().searcher.encoder.name),
        default_top_k=DEFAULT_TOP_K,
        max_top_k=MAX_TOP_K,
    )


@bp.post("/cases/<int:case_id>/gallery-search")
@login_required
def case_search(case_id: int) -> Any:
    """Run a search with the stored image of the case named by ``image`` (no upload); redirect
    to its (audited) result page."""
    user = current_user._get_current_object()
    case = get_case_for(case_id, user)
    _check_search_permission(user, case.id)
    image = find_case_image(get_session(), case, request.form.get("image"))
    if image is None:
        abort(404, description="No such image in this case.")
    try:
        _, event = run_search(
            user,
            gallery_name=request.form.get("gallery", ""),
            top_k=request.form.get("top_k"),
            upload=None,
            generation_id=None,
            image_kind=None,
            via="web",
            case_image=(case, image),
        )
    except InvalidImageError as exc:
        return error_response(400, str(exc), "Not a usable image")
    except GalleryError:
        raise  # its own status (404 unknown gallery, 409 empty, 422 no face...)
    except ValueError as exc:
        return error_response(400, str(exc), "Gallery search")
    return redirect(url_for("gallery.result", search_id=event.id))


def _own_search(search_id: int) -> AuditEvent:
    event = get_session().get(AuditEvent, search_id)
    if (
        event is None
        or event.action != audit.GALLERY_SEARCH
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
    present = existing_photo_ids(get_session(), ids)
    viewer = current_user.id
    rows = [
        {
            **r,
            "present": r["photo_id"] in present,
            "token": photo_token(viewer, r["photo_id"]),
        }
        for r in results
    ]
    return render_template(
        "gallery_result.html",
        event=event,
        rows=rows,
        caveat=CAVEAT,
        same_person=SAME_PERSON_DISTANCE,
    )


@bp.get("/gallery/searches/<int:search_id>/query.jpg")
@search_permission_required
def query_image(search_id: int) -> Any:
    """The aligned query face of a search."""
    event = _own_search(search_id)
    key = event.detail.get("query", {}).get("thumb_key")
    if not key:
        abort(404)
    return stored_image(key, "image/jpeg")


@bp.get("/gallery/photos/<int:photo_id>/face.jpg")
@search_permission_required
def photo_face(photo_id: int) -> Any:
    """An enrolled photo's face thumbnail (from a result link, or for administrators)."""
    photo = check_photo_access(current_user, photo_id)
    return stored_image(photo.thumb_key, "image/jpeg")


@bp.get("/gallery/photos/<int:photo_id>")
@search_permission_required
def photo(photo_id: int) -> Any:
    """The enrolled photo itself (audited)."""
    photo = check_photo_access(current_user, photo_id)
    response = stored_image(photo.photo_key, photo.content_type)
    session = get_session()
    audit.record(
        session,
        audit.GALLERY_PHOTO_VIEW,
        current_user,
        photo_id=photo.id,
        file_name=photo.file_name,
    )
    session.commit()
    return response


# ---------------------------------------------------------------------------- admin pages
@bp.get("/admin/galleries")
@admin_required
def admin() -> Any:
    """Galleries (with counts), a form to create one, and the search permissions."""
    session = get_session()
    searcher = gallery_web().searcher
    users = all_users(session)
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
    audit.record(session, audit.GALLERY_CREATE, current_user, gallery=gallery.name)
    session.commit()
    flash(f"Gallery '{gallery.name}' created; upload photos to enrol them.", "success")
    return redirect(url_for("gallery.detail", name=gallery.name))


@bp.get("/admin/galleries/<name>")
@admin_required
def detail(name: str) -> Any:
    """One gallery: its photos (paged), the upload form, removal."""
    session = get_session()
    gallery = get_gallery(session, name)
    listing = photo_listing(gallery)
    total = listing.count(session)
    page = page_of(requested_page(request.args), total, PHOTOS_PAGE_SIZE)
    photos = listing.page(session, page.size, page.offset)
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
            audit.GALLERY_ENROL,
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
    audit.record(session, audit.GALLERY_REMOVE, current_user, gallery=gallery_name)
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
        audit.GALLERY_PHOTO_REMOVE,
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
        action, verb = audit.GALLERY_GRANT, "may now search galleries"
    else:
        changed = revoke_search(session, user)
        action, verb = audit.GALLERY_REVOKE, "may no longer search galleries"
    if changed:
        audit.record(session, action, current_user, target=user.username)
        session.commit()
    note = "" if not user.is_admin else " (administrators may always search)"
    flash(f"'{user.username}' {verb}{note}.", "success")
    return redirect(url_for("gallery.admin"))
