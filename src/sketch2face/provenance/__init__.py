"""Signed provenance for exported faces (PNG) and appeal sheets (PDF), and its verification.

Each export carries :class:`Provenance` metadata (software and version, model id and weights
SHA-256, generation id, case number, UTC time, the statement "AI-generated likeness, not a
photograph", the signing key id) and an Ed25519 signature, made with the instance's own key, over
the content and that metadata. :func:`verify_file` says ``valid``, ``tampered`` or ``unsigned``.

Typical use (the web export code)::

    key = ensure_signing_key(settings.data_dir)
    meta = Provenance.create(KIND_FACE, model_id=..., model_sha256=weights_sha256(path),
                             generation_id=generation.id, case_number=generation.case_number)
    png_bytes = sign_png(face_u8, meta, key)

Formats: :mod:`.png` (pixels signed, metadata in text chunks) and :mod:`.pdf` (bytes signed,
record in a trailing comment line); the signed message: :mod:`.signature`. docs/provenance.md
explains the design for investigators and reviewers.
"""

from __future__ import annotations

from sketch2face.provenance.keys import (
    EARLIER_KEYS_DIRNAME,
    PUBLIC_KEY_FILENAME,
    SIGNING_KEY_FILENAME,
    earlier_public_keys,
    ensure_signing_key,
    instance_public_key,
    keep_earlier_public_key,
    key_id,
    load_public_key,
    load_signing_key,
    public_key_pem,
    short_key_id,
)
from sketch2face.provenance.metadata import (
    KIND_APPEAL_SHEET,
    KIND_FACE,
    NO_REFINER,
    STATEMENT,
    Provenance,
    default_checkpoint_path,
    refiner_stamp,
    weights_sha256,
)
from sketch2face.provenance.pdf import sign_pdf
from sketch2face.provenance.png import sign_png
from sketch2face.provenance.verify import (
    TAMPERED,
    UNSIGNED,
    VALID,
    VerificationResult,
    verify_bytes,
    verify_file,
)

__all__ = [
    "EARLIER_KEYS_DIRNAME",
    "KIND_APPEAL_SHEET",
    "KIND_FACE",
    "NO_REFINER",
    "PUBLIC_KEY_FILENAME",
    "SIGNING_KEY_FILENAME",
    "STATEMENT",
    "TAMPERED",
    "UNSIGNED",
    "VALID",
    "Provenance",
    "VerificationResult",
    "default_checkpoint_path",
    "earlier_public_keys",
    "ensure_signing_key",
    "instance_public_key",
    "keep_earlier_public_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "public_key_pem",
    "refiner_stamp",
    "short_key_id",
    "sign_pdf",
    "sign_png",
    "verify_bytes",
    "verify_file",
    "weights_sha256",
]
