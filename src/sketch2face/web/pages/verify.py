"""Provenance in the web app: the instance signing key, signed exports, and "Verify a file".

The key is created in the data folder when the app is built (the first start), beside
``secret_key`` (``provenance.keys``). Exports are signed by ``services.signing``; the page at
``/verify`` checks an uploaded PNG or PDF against this instance's public key, and every check
goes to the audit log.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Blueprint, Flask, Response, flash, render_template, request
from flask_login import current_user, login_required

from sketch2face.errors import ProvenanceError
from sketch2face.provenance import (
    ensure_signing_key,
    public_key_pem,
    short_key_id,
    verify_bytes,
)
from sketch2face.services import audit
from sketch2face.web import extensions
from sketch2face.web.database import get_session
from sketch2face.web.extensions import get_settings
from sketch2face.web.security.headers import NO_STORE

bp = Blueprint("verify", __name__)
#: audit action of a check on the verify page
VERIFY = "verify"
#: the audit column holds generation ids of this length at most (models.AuditEvent)
_MAX_GENERATION_ID = 32


def init_app(app: Flask) -> None:
    """Create or load the instance signing key and register the verify page."""
    app.extensions[extensions.SIGNING_KEY] = ensure_signing_key(get_settings(app).data_dir)
    app.register_blueprint(bp)


def get_signing_key(app: Flask | None = None) -> Ed25519PrivateKey:
    """This instance's Ed25519 signing key."""
    return extensions.get_signing_key(app)


def get_public_key(app: Flask | None = None) -> Ed25519PublicKey:
    """This instance's public key (what exports are verified against)."""
    return get_signing_key(app).public_key()


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
