"""Signed PNG: provenance metadata and an Ed25519 signature in two text chunks.

* ``sketch2face:provenance`` (iTXt, UTF-8): the canonical metadata JSON
  (:class:`~sketch2face.provenance.metadata.Provenance`).
* ``sketch2face:signature`` (tEXt): the signature envelope
  (:mod:`sketch2face.provenance.signature`), over SHA-256 of the *decoded pixels* and SHA-256 of
  the metadata text.

The pixels, not the file bytes, are signed: the digest is taken over ``"<mode> <W>x<H>\\n"`` and
the raw pixel rows in RGB (RGBA when the image has transparency). A tool that re-saves the PNG
with other compression or reorders the chunks keeps it valid; any changed pixel, any change of the
metadata text, a second copy of either chunk, or added animation frames make it ``tampered``.
Other text chunks (``Comment``, ``Software``) are informative and not signed.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from sketch2face.errors import ProvenanceError
from sketch2face.provenance.keys import key_id
from sketch2face.provenance.metadata import STATEMENT, Provenance
from sketch2face.provenance.signature import FORMAT_PNG, SignedParts, sign

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METADATA_KEYWORD = "sketch2face:provenance"
SIGNATURE_KEYWORD = "sketch2face:signature"
MAX_TEXT_BYTES = 1 << 20
#: largest image verified (as sketch2face.imaging's decode limit; not imported: it pulls in torch)
MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_COMMENT = f"sketch2face: {STATEMENT}. Signed provenance: check with `sketch2face verify`."


def pixel_sha256(image: Image.Image) -> bytes:
    """SHA-256 of the decoded pixels: mode, size and raw rows (RGB, or RGBA with transparency)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha else "RGB"
    pixels = image if image.mode == mode else image.convert(mode)
    digest = hashlib.sha256(f"{mode} {image.width}x{image.height}\n".encode("ascii"))
    digest.update(pixels.tobytes())
    return digest.digest()


def sign_png(
    image: np.ndarray | Image.Image | bytes,
    provenance: Provenance,
    private_key: Ed25519PrivateKey,
    *,
    text: Mapping[str, str] | None = None,
) -> bytes:
    """Encode ``image`` as a signed PNG and return its bytes.

    Args:
        image: an HxWx3 uint8 RGB array, a PIL image, or PNG/JPEG bytes (their text chunks are
            kept, earlier sketch2face signatures dropped).
        provenance: the metadata; its ``key_id`` is set from ``private_key``.
        private_key: the instance key (:func:`~sketch2face.provenance.keys.ensure_signing_key`).
        text: extra text chunks; default a ``Comment`` with the likeness statement.
    """
    pil, kept_text = _to_image(image)
    metadata_json = provenance.with_key_id(key_id(private_key)).to_json()
    envelope = sign(private_key, FORMAT_PNG, pixel_sha256(pil), metadata_json)
    info = PngInfo()
    chunks = {**kept_text, "Comment": DEFAULT_COMMENT, "Software": "sketch2face", **(text or {})}
    for keyword, value in chunks.items():
        if keyword not in (METADATA_KEYWORD, SIGNATURE_KEYWORD):
            info.add_text(keyword, value)
    info.add_itxt(METADATA_KEYWORD, metadata_json)
    info.add_text(SIGNATURE_KEYWORD, envelope.to_json())
    buf = io.BytesIO()
    pil.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def extract_png(data: bytes, *, name: str = "the file") -> SignedParts:
    """Decode the pixels and read the provenance chunks of a PNG (no judgement made here)."""
    texts = _text_chunks(data, name)
    image = _open_png(data, name)
    problem = None
    frames = int(getattr(image, "n_frames", 1))
    if frames > 1:
        problem = f"the PNG has {frames} animation frames; the signed image has one"
    for keyword in (METADATA_KEYWORD, SIGNATURE_KEYWORD):
        if len(texts.get(keyword, [])) > 1:
            problem = f"the PNG holds {len(texts[keyword])} copies of the {keyword} chunk"
    metadata = texts.get(METADATA_KEYWORD, [None])[-1]
    envelope = texts.get(SIGNATURE_KEYWORD, [None])[-1]
    hint = None
    if (
        metadata is None
        and envelope is None
        and any("sketch2face" in value for values in texts.values() for value in values)
    ):
        hint = (
            "its text says it came from sketch2face, but it carries no signature: an older "
            "export, or a copy whose metadata was stripped (screenshots and many editors do this)"
        )
    return SignedParts(FORMAT_PNG, pixel_sha256(image), metadata, envelope, problem, hint)


def _to_image(image: np.ndarray | Image.Image | bytes) -> tuple[Image.Image, dict[str, str]]:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ProvenanceError(
                f"expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}; convert it "
                "with sketch2face.imaging.load_image first."
            )
        return Image.fromarray(image), {}
    if isinstance(image, Image.Image):
        image.load()
        return image, {}
    if isinstance(image, (bytes, bytearray)):
        pil = _open_png(bytes(image), "the image to sign", allow_other_formats=True)
        kept = {
            k: v
            for k, v in getattr(pil, "text", {}).items()
            if isinstance(v, str) and k not in (METADATA_KEYWORD, SIGNATURE_KEYWORD)
        }
        return pil, kept
    raise ProvenanceError(f"cannot sign a {type(image).__name__}; pass an array, image or bytes.")


def _open_png(data: bytes, name: str, *, allow_other_formats: bool = False) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.format != "PNG" and not allow_other_formats:
            raise ProvenanceError(f"{name} is a {image.format} image, not a PNG.")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ProvenanceError(
                f"{name} is {image.width}x{image.height} pixels, over the {MAX_IMAGE_PIXELS} pixel "
                "limit; sketch2face never exports images that large."
            )
        image.load()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        if isinstance(exc, ProvenanceError):
            raise
        raise ProvenanceError(
            f"{name} cannot be decoded as an image ({exc}); it is truncated or corrupt — ask for "
            "the original export again."
        ) from exc
    return image


def _text_chunks(data: bytes, name: str) -> dict[str, list[str]]:
    """Every tEXt/iTXt/zTXt value by keyword, in file order (duplicates kept, to be refused)."""
    if not data.startswith(PNG_MAGIC):
        raise ProvenanceError(f"{name} is not a PNG file.")
    texts: dict[str, list[str]] = {}
    pos = len(PNG_MAGIC)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if len(body) < length:
            break  # truncated: Pillow's decode reports it
        if ctype == b"IEND":
            break
        if ctype not in (b"tEXt", b"iTXt", b"zTXt"):
            continue
        try:
            keyword, value = _decode_text_chunk(ctype, body)
        except (ValueError, zlib.error):
            continue  # unreadable text chunk: ignored, as PNG readers do
        texts.setdefault(keyword, []).append(value)
    return texts


def _decode_text_chunk(ctype: bytes, body: bytes) -> tuple[str, str]:
    keyword_raw, _, rest = body.partition(b"\x00")
    keyword = keyword_raw.decode("latin-1")
    if ctype == b"tEXt":
        return keyword, rest.decode("latin-1")
    if ctype == b"zTXt":
        return keyword, _inflate(rest[1:]).decode("latin-1")
    compressed, _method = rest[0], rest[1]
    _language, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    if compressed:
        text = _inflate(text)
    return keyword, text.decode("utf-8")


def _inflate(data: bytes) -> bytes:
    """zlib-decompress a text chunk, refusing more than 1 MiB (a decompression bomb)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk larger than 1 MiB")
    return out
