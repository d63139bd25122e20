"""Provenance in the web app: the instance signing key, signed exports, and "Verify a file".

The key is created in the data folder when the app is built (the first start), beside
``secret_key`` (``provenance.keys``). Export code signs through :func:`sign_generation_png` and
:func:`generation_provenance`; the page at ``/verify`` checks an uploaded PNG or PDF against this
instance's public key, and every check goes to the audit log.
"""

from __future__ import annotations

from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Blueprint, Flask, Response, current_app, flash, render_template, request
from flask_login import current_user, login_required

from sketch2face.appeal import AppealSheet, AppealSheetFiles, make_appeal_sheet
from sketch2face.errors import ProvenanceError
from sketch2face.provenance import (
    KIND_FACE,
    Provenance,
    default_checkpoint_path,
    ensure_signing_key,
    public_key_pem,
    short_key_id,
    sign_png,
    verify_bytes,
    weights_sha256,
)
from sketch2face.web import audit
from sketch2face.web.db import get_session
from sketch2face.web.extensions import get_model_client, get_settings
from sketch2face.web.headers import NO_STORE

bp = Blueprint("verify", __name__)
SIGNING_KEY = "sketch2face.signing_key"
#: audit action of a check on the verify page
VERIFY = "verify"
#: the audit column holds generation ids of this length at most (models.AuditEvent)
_MAX_GENERATION_ID = 32


def init_app(app: Flask) -> None:
    """Create or load the instance signing key and register the verify page."""
    app.extensions[SIGNING_KEY] = ensure_signing_key(get_settings(app).data_dir)
    app.register_blueprint(bp)


def get_signing_key(app: Flask | None = None) -> Ed25519PrivateKey:
    """This instance's Ed25519 signing key."""
    return cast(Ed25519PrivateKey, (app or current_app).extensions[SIGNING_KEY])


def get_public_key(app: Flask | None = None) -> Ed25519PublicKey:
    """This instance's public key (what exports are verified against)."""
    return get_signing_key(app).public_key()


def face_provenance(
    *,
    model_id: str | None,
    generation_id: str | None,
    case_number: str | None,
    details: dict[str, Any] | None = None,
    kind: str = KIND_FACE,
) -> Provenance:
    """Provenance for an exported face (of a generation or a candidate), stamped now.

    The weights SHA-256 is ``details["model_sha256"]`` when the generation recorded it; else
    that of the in-process model's weights file, if that model is loaded and is the one that
    made the face; else not recorded (a remote model server, or a model since changed).
    """
    model_sha256 = (details or {}).get("model_sha256")
    settings = get_settings()
    # only an in-process model has a weights file here; asking a remote one would be an HTTP
    # round trip per exported face
    if model_sha256 is None and model_id and settings.model_url is None:
        loaded = get_model_client().describe().get("model_version")
        if loaded == model_id:
            try:
                model_sha256 = weights_sha256(default_checkpoint_path(settings.checkpoint))
            except ProvenanceError:
                model_sha256 = None
    return Provenance.create(
        kind,
        model_id=model_id,
        model_sha256=model_sha256,
        generation_id=generation_id,
        case_number=case_number,
    )


def generation_provenance(generation: Any, kind: str = KIND_FACE) -> Provenance:
    """Provenance for an export of ``generation`` (a ``models.Generation``), stamped now."""
    return face_provenance(
        model_id=getattr(generation, "model_version", None),
        generation_id=getattr(generation, "id", None),
        case_number=getattr(generation, "case_number", None),
        details=getattr(generation, "details", None),
        kind=kind,
    )


def sign_generation_png(generation: Any, png: bytes, *, kind: str = KIND_FACE) -> bytes:
    """``png`` (a stored face) re-encoded with this instance's signed provenance."""
    return sign_png(png, generation_provenance(generation, kind), get_signing_key())


def sign_candidate_png(case_number: str, round_: Any, png: bytes) -> bytes:
    """A candidate face (``models.Candidate`` of ``round_``) with signed provenance: the model of
    its round, the generation whose sketch it came from, the case number."""
    provenance = face_provenance(
        model_id=round_.model_version,
        generation_id=round_.generation_id,
        case_number=case_number,
        details=round_.generation.details if round_.generation is not None else None,
    )
    return sign_png(png, provenance, get_signing_key())


def generation_appeal_sheet(
    generation: Any,
    face_png: bytes,
    *,
    contact: str,
    case_number: str | None = None,
    description: str | None = None,
) -> AppealSheetFiles:
    """The signed appeal sheet (PDF + preview PNG) of a generation's chosen face.

    ``case_number`` defaults to the generation's, ``description`` to its notes; the witness
    attributes come from ``generation.details["attributes"]``. Raises AppealSheetError (missing
    contact line, text too long) with a message for the user.
    """
    details = getattr(generation, "details", None) or {}
    sheet = AppealSheet(
        case_number=case_number or getattr(generation, "case_number", None) or "",
        contact=contact,
        description=description if description is not None else (generation.notes or ""),
        attributes=dict(details.get("attributes") or {}),
    )
    return signed_appeal_sheet(face_png, sheet, generation_provenance(generation))


def signed_appeal_sheet(
    face_png: bytes, sheet: AppealSheet, provenance: Provenance
) -> AppealSheetFiles:
    """Lay out ``sheet`` around ``face_png`` and sign it with this instance's key, recording the
    face's model and generation from ``provenance``. Raises AppealSheetError for the user."""
    return make_appeal_sheet(
        face_png,
        sheet,
        get_signing_key(),
        model_id=provenance.model_id,
        model_sha256=provenance.model_sha256,
        generation_id=provenance.generation_id,
    )


@bp.route("/verify", methods=["GET", "POST"])
@login_required
def page() -> Any:
    """Upload an exported PNG or PDF; shows valid / tampered / unsigned with its provenance."""
    key = get_public_key()
    context: dict[str, Any] = {"result": None, "filename": None, "key_id": short_key_id(key)}
    if request.method == "GET":
        return render_template("verify.html", **context)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose the exported PNG or PDF to check.", "error")
        return render_template("verify.html", **context), 400
    limit = get_settings().max_upload_bytes
    data = upload.read(limit + 1)
    filename = (upload.filename or "")[:200]
    context["filename"] = filename
    session = get_session()
    if len(data) > limit:
        flash(f"The file is larger than the upload limit of {limit // 1048576} MiB.", "error")
        return render_template("verify.html", **context), 413
    try:
        result = verify_bytes(data, key, name="The uploaded file")
    except ProvenanceError as exc:
        audit.record(session, VERIFY, current_user, filename=filename, status="unreadable")
        session.commit()
        flash(str(exc), "error")
        return render_template("verify.html", **context), 400
    meta = result.metadata
    claimed_id = meta.generation_id if meta is not None else None
    claimed_case = meta.case_number if meta is not None else None
    audit.record(
        session,
        VERIFY,
        current_user,
        generation_id=claimed_id
        if result.is_valid and claimed_id and len(claimed_id) <= _MAX_GENERATION_ID
        else None,
        filename=filename,
        status=result.status,
        file_kind=result.file_kind,
        key_id=result.key_id[:16] if result.key_id else None,
        case_number=claimed_case[:64] if claimed_case else None,
    )
    session.commit()
    context["result"] = result
    return render_template("verify.html", **context)


@bp.get("/verify/public-key.pem")
@login_required
def public_key() -> Any:
    """This instance's public key as a PEM file, for `sketch2face verify --public-key`."""
    key = get_public_key()
    response = Response(public_key_pem(key), mimetype="application/x-pem-file")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="sketch2face-{short_key_id(key)}.pub.pem"'
    )
    response.headers["Cache-Control"] = NO_STORE
    return response
