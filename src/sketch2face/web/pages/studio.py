"""Studio pages: new generation (upload/canvas), result, history, images, audit log, tokens."""

from __future__ import annotations

import base64
import io
import logging
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from PIL import Image

from sketch2face.attributes import HAIR_COLOURS, SKIN_TONES
from sketch2face.db.models import ApiToken, utcnow
from sketch2face.errors import InvalidImageError
from sketch2face.services import audit
from sketch2face.services.generation import (
    ATTRIBUTE_FIELDS,
    IMAGE_KINDS,
    LIKENESS_NOTICE,
    GenerationOptions,
    attribute_labels,
    attributes_from_form,
    backdrop_label,
    backdrop_of,
    delete_generation,
    generate_for,
    history_listing,
    refine_available,
    requested_attributes,
    viewer_notices,
)
from sketch2face.services.signing import sign_generation_png
from sketch2face.services.users import api_tokens_of
from sketch2face.serving.client import ModelUnavailableError
from sketch2face.storage import ObjectNotFoundError, StorageError
from sketch2face.web.database import get_session
from sketch2face.web.errors import RETRY_AFTER_S, STORAGE_UNAVAILABLE
from sketch2face.web.extensions import get_settings, get_store
from sketch2face.web.forms import TokenCreateForm
from sketch2face.web.pages.auth import admin_required
from sketch2face.web.paging import page_of, requested_page
from sketch2face.web.security.access import get_owned_generation, get_visible_generation
from sketch2face.web.security.headers import NO_STORE
from sketch2face.web.security.tokens import TokenLimitError, create_token

bp = Blueprint("studio", __name__)
log = logging.getLogger(__name__)

#: /new answered 503: what the user still has (issue 25 item 9)
INPUT_KEPT = "Your sketch and the fields below are kept: generate again shortly."
MODEL_UNAVAILABLE_FORM = f"The model is not available right now, so no face was made. {INPUT_KEPT}"
AUDIT_PAGE_SIZE = 50


def web_user_key() -> str:
    """Rate-limit key for page requests: the signed-in user, else the client address."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{get_remote_address()}"


@bp.app_context_processor
def _notice() -> dict[str, Any]:
    return {"likeness_notice": LIKENESS_NOTICE}


@bp.app_context_processor
def _viewer_helpers() -> dict[str, Any]:
    """For templates: whether to offer refinement, the notices and the witness description of a
    generation as the signed-in user may read them (technical text for administrators only), and
    the backdrop of a generation or round (``backdrop_of(details)``, ``backdrop_label``)."""
    return {
        "backdrop_of": backdrop_of,
        "backdrop_label": backdrop_label,
        "refine_available": refine_available,
        "shown_notices": lambda generation: viewer_notices(generation.notices, current_user),
        "attribute_rows": lambda generation: attribute_labels(
            requested_attributes(generation), generation.details.get("attribute_check")
        ),
    }


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    """Upload or draw a sketch; POST generates and redirects to the result page."""
    form = {
        "case_number": request.args.get("case", "")[:64],
        "notes": "",
        "refine": True,  # both stages by default (issue 22)
        "backdrop": "photo",
        "source": "upload",
        "seed": "",
        "skin": "",
        "hair_color": "",
        "gender": "",
    }
    if request.method == "POST":
        form = {
            "case_number": request.form.get("case_number", ""),
            "notes": request.form.get("notes", ""),
            "refine": request.form.get("refine") in ("1", "on", "true"),
            "backdrop": request.form.get("backdrop") or "photo",
            "source": request.form.get("source", "upload"),
            "seed": request.form.get("seed", "").strip(),
            **{k: request.form.get(k, "").strip() for k in ATTRIBUTE_FIELDS},
        }
        upload = request.files.get("sketch")
        error = None
        status = 400
        sketch_bytes = upload.read() if upload is not None and upload.filename else None
        if sketch_bytes is None:
            sketch_bytes = _kept_sketch(request.form.get("kept_sketch", ""))
        if not sketch_bytes:
            error = "Choose a sketch image or draw one on the canvas."
        else:
            try:
                options = GenerationOptions(
                    refine=bool(form["refine"]),
                    case_number=str(form["case_number"]),
                    notes=str(form["notes"]),
                    source="canvas" if form["source"] == "canvas" else "upload",
                    seed=_seed(str(form["seed"])),
                    attributes=attributes_from_form(form),
                    backdrop=str(form["backdrop"]),
                )
                generation = generate_for(current_user._get_current_object(), sketch_bytes, options)
            except (InvalidImageError, ValueError) as exc:
                error = str(exc)
            except (ModelUnavailableError, StorageError) as exc:
                # 503, yet the form comes back as filled in, the sketch kept (issue 25 item 9)
                log.error("generation not made: %s", exc)
                status = 503
                error = (
                    MODEL_UNAVAILABLE_FORM
                    if isinstance(exc, ModelUnavailableError)
                    else f"{STORAGE_UNAVAILABLE} {INPUT_KEPT}"
                )
            else:
                return redirect(url_for("studio.result", generation_id=generation.id))
        flash(error, "error")
        form["kept_sketch"] = _keepable(sketch_bytes)
        headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else {}
        return render_template("new.html", form=form), status, headers
    return render_template("new.html", form=form)


def _keepable(data: bytes | None) -> str:
    """The sketch as a data URL for the form to send again (e.g. after 'case number taken'), so
    nobody has to choose the file twice; '' when there is none, it is too large or no image."""
    if not data or len(data) > get_settings().max_upload_bytes:
        return ""
    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "", "")
    except (OSError, ValueError, Image.DecompressionBombError):
        return ""
    if not mime.startswith("image/"):
        return ""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _kept_sketch(value: str) -> bytes | None:
    """The bytes of a sketch the form kept (``_keepable``), or None."""
    head, _, payload = value.partition(";base64,")
    if not head.startswith("data:image/") or not payload:
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        return None


@bp.app_context_processor
def attribute_choices() -> dict[str, Any]:
    """Skin-tone scale and hair swatches for the pickers on the new-generation page."""
    return {"skin_tones": SKIN_TONES, "hair_colours": HAIR_COLOURS}


def _seed(text: str) -> int | None:
    """Optional variation seed from the form; ValueError with a user-facing message."""
    if not text:
        return None
    if not text.isdigit():
        raise ValueError("The variation seed must be a whole number from 0 to 2147483647.")
    return int(text)


@bp.get("/generations/<generation_id>")
@login_required
def result(generation_id: str) -> Any:
    """Sketch, face and refined face side by side, with downloads and the likeness notice."""
    generation = get_visible_generation(generation_id, current_user)  # owner, admin, case member
    session = get_session()
    audit.record(session, audit.VIEW, current_user, generation_id=generation.id)
    session.commit()
    owner = generation.user if generation.user_id != current_user.id else None
    return render_template("result.html", g_=generation, owner=owner)


@bp.get("/generations/<generation_id>/<kind>.png")
@login_required
def image(generation_id: str, kind: str) -> Any:
    """One image of a generation; ``?download=1`` sends it as an attachment (audited)."""
    if kind not in IMAGE_KINDS:
        abort(404)
    generation = get_visible_generation(generation_id, current_user)
    key = generation.image_keys.get(kind) or abort(
        404, description="This generation has no such image."
    )
    try:
        data = get_store().get(key)
    except ObjectNotFoundError:
        abort(404, description="The image file is missing from storage.")
    download = request.args.get("download") == "1"
    if download and kind != "sketch":
        data = sign_generation_png(
            generation, data, image=kind
        )  # an exported face carries its provenance
    response = Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = NO_STORE  # gone from the browser once deleted
    if download:
        case = f"{generation.case_number}-" if generation.case_number else ""
        safe_case = "".join(c if c.isalnum() or c in "-_" else "_" for c in case)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="sketch2face-{safe_case}{generation.id[:8]}-{kind}.png"'
        )
        session = get_session()
        audit.record(session, audit.DOWNLOAD, current_user, generation_id=generation.id, kind=kind)
        session.commit()
    return response


@bp.post("/generations/<generation_id>/delete")
@login_required
def delete(generation_id: str) -> Any:
    """Delete a generation and its images."""
    generation = get_owned_generation(generation_id, current_user)
    delete_generation(current_user._get_current_object(), generation)
    flash("The generation and its images were deleted.", "success")
    return redirect(url_for("studio.history"))


@bp.get("/history")
@login_required
def history() -> Any:
    """Own generations (admins: everyone's), newest first, paged, filtered by case number."""
    settings = get_settings()
    session = get_session()
    query = request.args.get("q", "").strip()[:64]
    show_all = current_user.is_admin and request.args.get("mine") != "1"
    listing = history_listing(None if show_all else current_user.id, query)
    total = listing.count(session)
    page = page_of(requested_page(request.args), total, settings.history_page_size)
    rows = listing.page(session, page.size, page.offset)
    return render_template(
        "history.html",
        rows=rows,
        q=query,
        page=page.number,
        pages=page.pages,
        total=total,
        show_all=show_all,
    )


@bp.get("/admin/audit")
@admin_required
def audit_log() -> Any:
    """Admin: the audit log, newest first, filterable by action and username."""
    session = get_session()
    action = request.args.get("action", "").strip()
    username = request.args.get("user", "").strip().lower()
    listing = audit.event_listing(action, username)
    total = listing.count(session)
    page = page_of(requested_page(request.args), total, AUDIT_PAGE_SIZE)
    events = listing.page(session, page.size, page.offset)
    actions = audit.recorded_actions(session)
    return render_template(
        "audit.html",
        events=events,
        page=page.number,
        pages=page.pages,
        action=action,
        user=username,
        actions=actions,
        total=total,
    )


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def tokens() -> Any:
    """List, create (shown once) and revoke one's API tokens."""
    session = get_session()
    form = TokenCreateForm()
    new_token = None
    status = 200
    if form.validate_on_submit():
        try:
            token, new_token = create_token(
                session,
                current_user._get_current_object(),
                (form.name.data or "").strip(),
                max_live=get_settings().max_api_tokens,
            )
        except TokenLimitError as exc:
            session.rollback()
            form.name.errors.append(str(exc))
            status = 409
        else:
            audit.record(
                session, audit.TOKEN_CREATE, current_user, token_id=token.id, name=token.name
            )
            session.commit()
    elif form.errors:
        status = 400
    rows = api_tokens_of(session, current_user.id)
    return render_template("tokens.html", form=form, tokens=rows, new_token=new_token), status


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> Any:
    """Revoke one of one's own tokens (someone else's: 404)."""
    session = get_session()
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404, description="No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, audit.TOKEN_REVOKE, current_user, token_id=token.id, name=token.name)
        session.commit()
    flash(f"Token '{token.name}' revoked.", "success")
    return redirect(url_for("studio.tokens"))
