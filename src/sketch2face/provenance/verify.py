"""``verify_file`` / ``verify_bytes``: is an exported PNG or PDF valid, tampered or unsigned?

* ``valid``: the signature checks over the content and the metadata, the metadata names the key
  that signed, and, when a trusted public key is given, that key is the trusted one.
* ``tampered``: a signature or metadata is present but something does not hold: pixels, PDF bytes
  or metadata changed, a chunk duplicated, bytes appended, or signed by a key other than the
  trusted one (the file then did not come from this instance as it is).
* ``unsigned``: no provenance at all (a JPEG, a screenshot, an older export, a stripped copy).
  Stripping the signature is always possible, so an unsigned file proves nothing either way.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image, UnidentifiedImageError

from sketch2face.errors import ProvenanceError
from sketch2face.provenance.keys import key_id
from sketch2face.provenance.metadata import Provenance
from sketch2face.provenance.pdf import extract_pdf, is_pdf
from sketch2face.provenance.png import PNG_MAGIC, extract_png
from sketch2face.provenance.signature import (
    FORMAT_PDF,
    Envelope,
    EnvelopeError,
    SignedParts,
    signature_holds,
)

Status = Literal["valid", "tampered", "unsigned"]
VALID: Status = "valid"
TAMPERED: Status = "tampered"
UNSIGNED: Status = "unsigned"
#: largest file verify_file reads (appeal sheets are ~1 MB)
MAX_VERIFY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class VerificationResult:
    """The verdict on one file, with the reason in words and the metadata when readable."""

    status: Status
    reason: str
    #: "png", "pdf" or "image" (another image format, never signed)
    file_kind: str
    metadata: Provenance | None = None
    #: key id (SHA-256 hex) of the key that signed; None when unsigned or unreadable
    key_id: str | None = None
    #: whether the signing key is the trusted one; None when no trusted key was given
    trusted: bool | None = None
    #: signed by an earlier key of this instance (kept when its keys were rotated), not the
    #: current one; such a file is valid (issue 25)
    earlier_key: bool = False

    @property
    def is_valid(self) -> bool:
        """True only for a valid signature (and a trusted key, when one was given)."""
        return self.status == VALID

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (metadata as a dict)."""
        data = asdict(self)
        data["metadata"] = asdict(self.metadata) if self.metadata is not None else None
        return data


def verify_file(
    path: Path | str,
    trusted_public_key: Ed25519PublicKey | None = None,
    *,
    max_bytes: int = MAX_VERIFY_BYTES,
    earlier_keys: Sequence[Ed25519PublicKey] = (),
) -> VerificationResult:
    """Verify a PNG or PDF on disk; raises ProvenanceError when it cannot be read or is neither."""
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"{path}: no such file; give the path of an exported PNG or PDF.")
    size = path.stat().st_size
    if size > max_bytes:
        raise ProvenanceError(
            f"{path}: {size} bytes, over the {max_bytes} byte limit; sketch2face exports are "
            "far smaller, so this is not one."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProvenanceError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    return verify_bytes(data, trusted_public_key, name=str(path), earlier_keys=earlier_keys)


def verify_bytes(
    data: bytes,
    trusted_public_key: Ed25519PublicKey | None = None,
    *,
    name: str = "the file",
    earlier_keys: Sequence[Ed25519PublicKey] = (),
) -> VerificationResult:
    """Verify PNG or PDF bytes; another image format is ``unsigned``; anything else raises
    ProvenanceError naming what the file is not. ``earlier_keys``: keys the trusted instance
    signed with before (rotated); a file signed by one is valid, and says so."""
    if not data:
        raise ProvenanceError(f"{name} is empty (0 bytes).")
    if data.startswith(PNG_MAGIC):
        return judge(extract_png(data, name=name), "png", trusted_public_key, earlier_keys)
    if is_pdf(data):
        return judge(extract_pdf(data), "pdf", trusted_public_key, earlier_keys)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or "image"
    except (UnidentifiedImageError, OSError) as exc:
        raise ProvenanceError(
            f"{name} is neither a PNG, a PDF nor another image; verify the exported file "
            "itself (face PNG or appeal-sheet PDF)."
        ) from exc
    return VerificationResult(
        UNSIGNED,
        f"a {image_format} image: sketch2face signs only its PNG and PDF exports, so this file "
        "carries no provenance (it may be a converted copy; ask for the original export).",
        "image",
    )


def judge(
    parts: SignedParts,
    file_kind: str,
    trusted_public_key: Ed25519PublicKey | None = None,
    earlier_keys: Sequence[Ed25519PublicKey] = (),
) -> VerificationResult:
    """The verdict on extracted parts (see the module docstring for the rules)."""
    content = "PDF bytes" if parts.content_format == FORMAT_PDF else "pixels"
    metadata = _parse_metadata(parts.metadata_json)
    if parts.metadata_json is None and parts.envelope_json is None and parts.problem is None:
        reason = "no sketch2face provenance in this file"
        if parts.hint:
            reason += f"; {parts.hint}"
        return VerificationResult(UNSIGNED, reason + ".", file_kind)

    def tampered(
        reason: str, signer: str | None = None, trusted: bool | None = None
    ) -> VerificationResult:
        return VerificationResult(TAMPERED, reason, file_kind, metadata, signer, trusted)

    if parts.problem:
        return tampered(parts.problem[0].upper() + parts.problem[1:] + ".")
    if parts.envelope_json is None:
        return tampered("The provenance metadata is present but its signature was removed.")
    if parts.metadata_json is None:
        return tampered("The signature is present but the provenance metadata was removed.")
    try:
        envelope = Envelope.from_json(parts.envelope_json)
    except EnvelopeError as exc:
        return tampered(f"The signature record is damaged: {exc}.")
    signer = key_id(envelope.public_key)
    if not signature_holds(
        envelope, parts.content_format, parts.content_sha256, parts.metadata_json
    ):
        return tampered(
            f"The signature does not match: the {content} or the provenance metadata were "
            "changed after signing.",
            signer,
        )
    if metadata is None:
        return tampered("The signed metadata cannot be read.", signer)
    if metadata.key_id != signer:
        return tampered(
            f"The metadata names key {metadata.key_id[:16]} but the file was signed with key "
            f"{signer[:16]}.",
            signer,
        )
    if trusted_public_key is not None:
        trusted_id = key_id(trusted_public_key)
        if trusted_id != signer and signer in {key_id(k) for k in earlier_keys}:
            return VerificationResult(
                VALID,
                f"Signed by an earlier key of this instance, {signer[:16]} (replaced by its "
                f"current key {trusted_id[:16]} when the keys were rotated); the {content} and "
                "the metadata are unchanged since signing.",
                file_kind,
                metadata,
                signer,
                True,
                earlier_key=True,
            )
        if trusted_id != signer:
            return tampered(
                f"The signature is intact but was made with key {signer[:16]}, not the trusted "
                f"key {trusted_id[:16]}: this file was not signed by this instance (re-signed "
                "elsewhere, or made by another installation).",
                signer,
                trusted=False,
            )
        return VerificationResult(
            VALID,
            f"Signed by this instance's key {signer[:16]}; the {content} and the metadata are "
            "unchanged since signing.",
            file_kind,
            metadata,
            signer,
            True,
        )
    return VerificationResult(
        VALID,
        f"The {content} and the metadata are unchanged since signing with key {signer[:16]} "
        "(the key carried in the file; give the instance's public key to check who signed it).",
        file_kind,
        metadata,
        signer,
        None,
    )


def _parse_metadata(text: str | None) -> Provenance | None:
    if text is None:
        return None
    try:
        return Provenance.from_json(text)
    except ProvenanceError:
        return None
