"""Signed PDF: a signature over the exact bytes of the finished PDF, in one trailing comment line.

Design. The PDF is written completely first (its document information already names sketch2face,
the case and the statement, for people who open the properties dialog). Then one line is
appended after the final ``%%EOF``::

    %sketch2face-provenance <base64 of {"envelope": "<signature JSON>", "metadata": "<JSON>"}>

The signature (:mod:`sketch2face.provenance.signature`, format ``pdf-bytes``) covers SHA-256 of
every byte before that line and SHA-256 of the metadata JSON. A line starting with ``%`` is a PDF
comment and the cross-reference offsets stay correct because nothing before it moves, so every
reader shows the file as before.

Verification takes the last such line, hashes the bytes before it and checks the signature.
Changing any byte of the PDF (page content, the embedded face, the document information) or of the
metadata breaks it. Bytes appended *after* the line are refused as tampering too: an appended
incremental update can replace what a reader displays while leaving earlier bytes untouched. A
PDF without the line is unsigned (also what a re-saved or "optimised" copy becomes).

Why not a PDF digital signature (``/Sig`` with ``/ByteRange``)? It needs an X.509 certificate and
a PKCS#7/CMS container; readers would call our self-signed certificate untrusted anyway, and the
trailing line is checked by the same small code path as the PNG, offline, with no certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sketch2face.errors import ProvenanceError
from sketch2face.provenance.keys import key_id
from sketch2face.provenance.metadata import Provenance, canonical_json
from sketch2face.provenance.signature import FORMAT_PDF, SignedParts, sign

PDF_MAGIC = b"%PDF-"
MARKER = b"%sketch2face-provenance "


def is_pdf(data: bytes) -> bool:
    """Whether ``data`` starts like a PDF (the header may follow up to 1 KiB of junk)."""
    return PDF_MAGIC in data[:1024]


def sign_pdf(pdf: bytes, provenance: Provenance, private_key: Ed25519PrivateKey) -> bytes:
    """Return ``pdf`` with its signature line appended (see the module docstring)."""
    if not is_pdf(pdf):
        raise ProvenanceError("cannot sign: the data is not a PDF (no %PDF- header).")
    if not pdf.rstrip().endswith(b"%%EOF"):
        raise ProvenanceError(
            "cannot sign: the PDF does not end with %%EOF (incomplete or already signed); sign "
            "the finished PDF once."
        )
    body = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    metadata_json = provenance.with_key_id(key_id(private_key)).to_json()
    envelope = sign(private_key, FORMAT_PDF, hashlib.sha256(body).digest(), metadata_json)
    record = canonical_json({"envelope": envelope.to_json(), "metadata": metadata_json})
    return body + MARKER + base64.b64encode(record.encode("utf-8")) + b"\n"


def extract_pdf(data: bytes) -> SignedParts:
    """Split a PDF into the signed bytes' digest and its signature record (no judgement here)."""
    if not is_pdf(data):
        raise ProvenanceError("the file is not a PDF (no %PDF- header).")
    at = data.rfind(MARKER)
    if at == -1:
        hint = None
        if b"sketch2face" in data:
            hint = (
                "it names sketch2face as its creator but carries no signature line: a copy that "
                "was re-saved, printed to PDF or 'optimised' loses it"
            )
        return SignedParts(FORMAT_PDF, hashlib.sha256(data).digest(), None, None, hint=hint)
    signed = data[:at]
    line, _, after = data[at + len(MARKER) :].partition(b"\n")
    problem = None
    if at > 0 and data[at - 1 : at] not in (b"\n", b"\r"):
        problem = "the signature record is not on a line of its own"
    elif after.strip():
        problem = (
            f"{len(after)} bytes were appended after the signature (an appended PDF update can "
            "change what the document shows)"
        )
    metadata_json = envelope_json = None
    try:
        record = json.loads(base64.b64decode(line.strip(), validate=True).decode("utf-8"))
        metadata_json = str(record["metadata"])
        envelope_json = str(record["envelope"])
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        problem = problem or f"the signature record is unreadable ({type(exc).__name__})"
        envelope_json = envelope_json or ""
    return SignedParts(
        FORMAT_PDF, hashlib.sha256(signed).digest(), metadata_json, envelope_json, problem
    )
