"""The signed message and the signature envelope, shared by the PNG and PDF formats.

What is signed (Ed25519 over the message itself)::

    b"sketch2face-provenance/v1" 0x00 <format: b"png-pixels" | b"pdf-bytes"> 0x00
    SHA-256(content) SHA-256(metadata JSON as stored, UTF-8)

The format tag keeps a signature made for one kind of content from being replayed on another;
both digests are fixed-size, so the concatenation is unambiguous.

The envelope (stored next to the content) is canonical JSON::

    {"alg": "Ed25519", "public_key": <base64 raw 32 bytes>, "signature": <base64 64 bytes>, "v": 1}

The public key travels with the file so that anyone can check that it is intact; whether the key
is the *instance's* is a separate question, answered only when the verifier is given that key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sketch2face.provenance.keys import raw_public_key
from sketch2face.provenance.metadata import canonical_json

MAGIC = b"sketch2face-provenance/v1"
ALGORITHM = "Ed25519"
ENVELOPE_VERSION = 1
FORMAT_PNG = b"png-pixels"
FORMAT_PDF = b"pdf-bytes"


class EnvelopeError(ValueError):
    """A signature envelope that cannot be read (treated as tampering by verifiers)."""


@dataclass(frozen=True)
class Envelope:
    """A detached signature plus the public key it claims."""

    public_key: Ed25519PublicKey
    signature: bytes

    def to_json(self) -> str:
        """Canonical JSON of the envelope."""
        return canonical_json(
            {
                "alg": ALGORITHM,
                "public_key": base64.b64encode(raw_public_key(self.public_key)).decode("ascii"),
                "signature": base64.b64encode(self.signature).decode("ascii"),
                "v": ENVELOPE_VERSION,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Envelope:
        """Parse an envelope; EnvelopeError says what is wrong with it."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EnvelopeError(f"the signature record is not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise EnvelopeError("the signature record is not a JSON object")
        if data.get("alg") != ALGORITHM:
            raise EnvelopeError(f"unsupported signature algorithm {data.get('alg')!r}")
        try:
            raw_key = base64.b64decode(str(data["public_key"]), validate=True)
            signature = base64.b64decode(str(data["signature"]), validate=True)
            public_key = Ed25519PublicKey.from_public_bytes(raw_key)
        except (KeyError, binascii.Error, ValueError) as exc:
            raise EnvelopeError(f"the signature record is malformed ({exc})") from exc
        if len(signature) != 64:
            raise EnvelopeError(f"the signature is {len(signature)} bytes, not 64")
        return cls(public_key, signature)


@dataclass(frozen=True)
class SignedParts:
    """What a verifier needs from a file: the content digest and the stored texts.

    ``problem`` is set when the file's structure already shows tampering (duplicate chunks, data
    after the signature); ``hint`` says why an unsigned file looks like it was once signed.
    """

    content_format: bytes
    content_sha256: bytes
    metadata_json: str | None
    envelope_json: str | None
    problem: str | None = None
    hint: str | None = None


def signed_message(content_format: bytes, content_sha256: bytes, metadata_json: str) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    metadata_sha256 = hashlib.sha256(metadata_json.encode("utf-8")).digest()
    return MAGIC + b"\x00" + content_format + b"\x00" + content_sha256 + metadata_sha256


def sign(
    private_key: Ed25519PrivateKey, content_format: bytes, content_sha256: bytes, metadata_json: str
) -> Envelope:
    """Sign content digest + metadata; returns the envelope to store with the file."""
    message = signed_message(content_format, content_sha256, metadata_json)
    return Envelope(private_key.public_key(), private_key.sign(message))


def signature_holds(
    envelope: Envelope, content_format: bytes, content_sha256: bytes, metadata_json: str
) -> bool:
    """Whether the envelope's signature matches this content and metadata under its own key."""
    try:
        envelope.public_key.verify(
            envelope.signature, signed_message(content_format, content_sha256, metadata_json)
        )
    except InvalidSignature:
        return False
    return True
