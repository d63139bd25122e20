"""Provenance in the web app: the instance signing key, signed exports, and "Verify a file".

The key is created in the data folder when the app is built (the first start), beside
``secret_key`` (``provenance.keys``). Exports are signed by ``services.signing``; the page at
``/verify`` checks an uploaded PNG or PDF against this instance's public key, and every check
goes to the audit log.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Blueprint, Flask, Response, current_app, flash, render_template, request
from flask_login import current_user, login_required

from sketch2face.errors import ProvenanceError
from sketch2face.provenance import (
    earlier_public_keys,
    ensure_signing_key,
    public_key_pem,
    short_key_id,
    verify_bytes,
)
from sketch2face.services import audit
from sketch2face.services.signing_keys import SigningKeys, check_signing_key
from sketch2face.web import extensions
from sketch2face.web.database import get_session, new_session
from sketch2face.web.extensions import get_settings
from sketch2face.web.security.headers import NO_STORE

log = logging.getLogger(__name__)
bp = Blueprint("verify", __name__)
#: app.extensions key: public keys this instance signed with before rotating
EARLIER_KEYS = "sketch2face.earlier_signing_keys"
#: audit action of a check on the verify page
VERIFY = "verify"
#: the audit column holds generation ids of this length at most (models.AuditEvent)
_MAX_GENERATION_ID = 32


def init_app(app: Flask) -> None:
    """Create or load the instance signing key, check it against the key the database recorded
    (``services.signing_keys``: a missing or different key refuses the start unless rotating), and
    register the verify page."""
    settings = get_settings(app)
    session = new_session(app)
    try:
        keys = check_signing_key(session, settings.data_dir, rotate=settings.rotate_signing_key)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        # no database to check against yet (unreachable, or its schema not upgraded): sign with
        # the folder's key; the check runs on the next start
        log.warning("provenance signing key not checked against the database: %s", exc)
        keys = SigningKeys(
            ensure_signing_key(settings.data_dir), earlier_public_keys(settings.data_dir)
        )
    finally:
        session.close()
    app.extensions[extensions.SIGNING_KEY] = keys.current
    app.extensions[EARLIER_KEYS] = keys.earlier
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
        result = verify_bytes(
            data,
            key,
            name="The uploaded file",
            earlier_keys=current_app.extensions.get(EARLIER_KEYS, ()),
        )
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
