"""Signed provenance: the instance key, signed PNG and PDF, verification verdicts, `verify` CLI."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from reportlab.pdfgen.canvas import Canvas

from sketch2face.cli.main import main
from sketch2face.errors import ProvenanceError
from sketch2face.provenance import (
    KIND_FACE,
    PUBLIC_KEY_FILENAME,
    SIGNING_KEY_FILENAME,
    STATEMENT,
    Provenance,
    ensure_signing_key,
    key_id,
    load_public_key,
    sign_pdf,
    sign_png,
    verify_bytes,
    verify_file,
    weights_sha256,
)
from sketch2face.provenance.pdf import MARKER
from sketch2face.provenance.png import METADATA_KEYWORD, SIGNATURE_KEYWORD


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return ensure_signing_key(tmp_path / "instance")


@pytest.fixture
def other_key(tmp_path: Path) -> Ed25519PrivateKey:
    return ensure_signing_key(tmp_path / "elsewhere")


def _face_u8(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _meta(case: str = "2026-0413") -> Provenance:
    return Provenance.create(
        KIND_FACE,
        model_id="pix2pix-unet-ngf32-256px-step1250",
        model_sha256="ab" * 32,
        generation_id="4f2a9c1e0b7d4e2a8c3f5b6a7d8e9f01",
        case_number=case,
    )


def _resave(
    png: bytes,
    *,
    pixels: np.ndarray | None = None,
    text: dict[str, str] | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """Re-encode a PNG (another compression level) with the given pixels and text chunks."""
    image = Image.open(io.BytesIO(png))
    chunks = dict(image.text) if text is None else text
    info = PngInfo()
    for keyword, value in reversed(list(chunks.items())):  # reversed: chunk order must not matter
        info.add_itxt(keyword, value)
    for keyword, value in extra or []:
        info.add_itxt(keyword, value)
    out = io.BytesIO()
    Image.fromarray(np.asarray(image) if pixels is None else pixels).save(
        out, format="PNG", pnginfo=info, compress_level=9
    )
    return out.getvalue()


def _pdf() -> bytes:
    buf = io.BytesIO()
    canvas = Canvas(buf)
    canvas.drawString(72, 720, "Case 2026-0413: generated likeness")
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


# ---------------------------------------------------------------------------------------- keys
def test_signing_key_is_created_once_private_and_with_a_public_copy(tmp_path: Path) -> None:
    data_dir = tmp_path / "instance"
    first = ensure_signing_key(data_dir)
    second = ensure_signing_key(data_dir)
    assert key_id(first) == key_id(second) and len(key_id(first)) == 64
    assert stat.S_IMODE((data_dir / SIGNING_KEY_FILENAME).stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / PUBLIC_KEY_FILENAME).stat().st_mode) == 0o600
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(
        [PUBLIC_KEY_FILENAME, SIGNING_KEY_FILENAME]
    )
    public = load_public_key(data_dir / PUBLIC_KEY_FILENAME)
    assert key_id(public) == key_id(first)
    assert key_id(load_public_key(data_dir / SIGNING_KEY_FILENAME)) == key_id(first)


def test_loose_key_permissions_are_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "instance"
    ensure_signing_key(data_dir)
    (data_dir / SIGNING_KEY_FILENAME).chmod(0o644)
    ensure_signing_key(data_dir)
    assert stat.S_IMODE((data_dir / SIGNING_KEY_FILENAME).stat().st_mode) == 0o600


def test_unreadable_or_wrong_keys_say_what_to_do(tmp_path: Path) -> None:
    data_dir = tmp_path / "instance"
    data_dir.mkdir()
    (data_dir / SIGNING_KEY_FILENAME).write_text("not a key\n")
    with pytest.raises(ProvenanceError, match="not an unencrypted PEM private key.*move it away"):
        ensure_signing_key(data_dir)
    with pytest.raises(ProvenanceError, match="does not exist"):
        load_public_key(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(ProvenanceError, match="not a PEM public key"):
        load_public_key(tmp_path / "junk.pem")


# ---------------------------------------------------------------------------------------- PNG
def test_signed_png_is_valid_with_its_metadata(key: Ed25519PrivateKey) -> None:
    png = sign_png(_face_u8(), _meta(), key)
    result = verify_bytes(png, key.public_key())
    assert result.status == "valid" and result.is_valid and result.trusted is True
    assert result.file_kind == "png" and result.key_id == key_id(key)
    meta = result.metadata
    assert meta is not None
    assert meta.case_number == "2026-0413" and meta.statement == STATEMENT == (
        "AI-generated likeness, not a photograph"
    )
    assert (
        meta.generation_id == "4f2a9c1e0b7d4e2a8c3f5b6a7d8e9f01" and meta.model_sha256 == "ab" * 32
    )
    assert meta.software == "sketch2face" and meta.key_id == key_id(key)
    assert meta.created_at.endswith("Z") and meta.created_at[4] == "-"
    image = Image.open(io.BytesIO(png))
    assert np.array_equal(np.asarray(image), _face_u8())  # lossless: the pixels are the face
    assert "not a photograph" in image.text["Comment"]
    # without a trusted key the file is still checked, under the key it carries
    untrusted = verify_bytes(png)
    assert untrusted.status == "valid" and untrusted.trusted is None


def test_resaving_with_other_compression_and_chunk_order_stays_valid(
    key: Ed25519PrivateKey,
) -> None:
    png = sign_png(_face_u8(), _meta(), key)
    resaved = _resave(png)
    assert resaved != png
    assert verify_bytes(resaved, key.public_key()).status == "valid"


def test_one_changed_pixel_is_tampered(key: Ed25519PrivateKey) -> None:
    png = sign_png(_face_u8(), _meta(), key)
    pixels = _face_u8().copy()
    pixels[10, 20, 1] ^= 1
    result = verify_bytes(_resave(png, pixels=pixels), key.public_key())
    assert result.status == "tampered" and "pixels" in result.reason
    assert result.metadata is not None  # shown to people, as claimed (not trusted)


def test_changed_metadata_is_tampered(key: Ed25519PrivateKey) -> None:
    png = sign_png(_face_u8(), _meta(), key)
    text = dict(Image.open(io.BytesIO(png)).text)
    forged = text[METADATA_KEYWORD].replace("2026-0413", "2026-0999")
    assert forged != text[METADATA_KEYWORD]
    result = verify_bytes(_resave(png, text={**text, METADATA_KEYWORD: forged}), key.public_key())
    assert result.status == "tampered" and "metadata" in result.reason
    assert result.metadata is not None and result.metadata.case_number == "2026-0999"
    # the same values re-serialised differently are a change of the signed text too
    respaced = json.dumps(json.loads(text[METADATA_KEYWORD]), indent=1)
    result = verify_bytes(_resave(png, text={**text, METADATA_KEYWORD: respaced}))
    assert result.status == "tampered"


def test_removed_or_duplicated_chunks_are_tampered(key: Ed25519PrivateKey) -> None:
    png = sign_png(_face_u8(), _meta(), key)
    text = dict(Image.open(io.BytesIO(png)).text)
    no_signature = {k: v for k, v in text.items() if k != SIGNATURE_KEYWORD}
    result = verify_bytes(_resave(png, text=no_signature))
    assert result.status == "tampered" and "signature was removed" in result.reason
    no_metadata = {k: v for k, v in text.items() if k != METADATA_KEYWORD}
    result = verify_bytes(_resave(png, text=no_metadata))
    assert result.status == "tampered" and "metadata was removed" in result.reason
    other = json.loads(text[METADATA_KEYWORD])
    other["case_number"] = "X"
    doubled = _resave(png, extra=[(METADATA_KEYWORD, json.dumps(other))])
    result = verify_bytes(doubled)
    assert result.status == "tampered" and "2 copies" in result.reason
    broken = {**text, SIGNATURE_KEYWORD: '{"alg": "Ed25519", "public_key": "!!"}'}
    assert verify_bytes(_resave(png, text=broken)).status == "tampered"


def test_wrong_trusted_key_is_tampered_and_a_re_signed_copy_is_caught(
    key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    png = sign_png(_face_u8(), _meta(), key)
    result = verify_bytes(png, other_key.public_key())
    assert result.status == "tampered" and result.trusted is False
    assert "not the trusted key" in result.reason and result.key_id == key_id(key)
    # an attacker edits the pixels and signs again with their own key: intact, but not ours
    edited = _face_u8().copy()
    edited[:8] = 0
    forged = sign_png(edited, _meta(), other_key)
    assert verify_bytes(forged).status == "valid"  # only self-consistent...
    assert verify_bytes(forged, key.public_key()).status == "tampered"  # ...not this instance's


def test_metadata_naming_another_key_is_tampered(
    key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    from sketch2face.provenance.png import pixel_sha256
    from sketch2face.provenance.signature import FORMAT_PNG, sign

    image = Image.fromarray(_face_u8())
    metadata = _meta().with_key_id(key_id(key)).to_json()  # claims `key`...
    envelope = sign(other_key, FORMAT_PNG, pixel_sha256(image), metadata)  # ...signed by another
    info = PngInfo()
    info.add_itxt(METADATA_KEYWORD, metadata)
    info.add_text(SIGNATURE_KEYWORD, envelope.to_json())
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    result = verify_bytes(buf.getvalue())
    assert result.status == "tampered" and "names key" in result.reason


def test_unsigned_files(key: Ed25519PrivateKey) -> None:
    buf = io.BytesIO()
    Image.fromarray(_face_u8()).save(buf, format="PNG")
    result = verify_bytes(buf.getvalue(), key.public_key())
    assert result.status == "unsigned" and result.metadata is None and not result.is_valid
    # an older export names sketch2face in its Comment: unsigned, with the likely reason
    info = PngInfo()
    info.add_text("Comment", "sketch2face: Generated likeness, not a photograph.")
    buf = io.BytesIO()
    Image.fromarray(_face_u8()).save(buf, format="PNG", pnginfo=info)
    assert "stripped" in verify_bytes(buf.getvalue()).reason
    jpeg = io.BytesIO()
    Image.fromarray(_face_u8()).save(jpeg, format="JPEG")
    result = verify_bytes(jpeg.getvalue())
    assert result.status == "unsigned" and result.file_kind == "image" and "JPEG" in result.reason


def test_not_an_image_or_broken_inputs_raise_clear_errors(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    with pytest.raises(ProvenanceError, match="neither a PNG, a PDF"):
        verify_bytes(b"hello, this is text")
    with pytest.raises(ProvenanceError, match="empty"):
        verify_bytes(b"")
    with pytest.raises(ProvenanceError, match="no such file"):
        verify_file(tmp_path / "missing.png")
    png = sign_png(_face_u8(), _meta(), key)
    with pytest.raises(ProvenanceError, match="truncated or corrupt"):
        verify_bytes(png[: len(png) // 2])
    with pytest.raises(ProvenanceError, match="HxWx3 uint8"):
        sign_png(np.zeros((4, 4), dtype=np.float32), _meta(), key)


def test_signing_png_bytes_keeps_their_text_and_replaces_an_old_signature(
    key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    info = PngInfo()
    info.add_text("Description", "witness sketch, case 2026-0413")
    buf = io.BytesIO()
    Image.fromarray(_face_u8()).save(buf, format="PNG", pnginfo=info)
    once = sign_png(buf.getvalue(), _meta(), other_key)
    twice = sign_png(once, _meta(), key)
    assert Image.open(io.BytesIO(twice)).text["Description"] == "witness sketch, case 2026-0413"
    assert verify_bytes(twice, key.public_key()).status == "valid"


# ---------------------------------------------------------------------------------------- PDF
def test_signed_pdf_valid_tampered_unsigned(
    key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    pdf = _pdf()
    signed = sign_pdf(pdf, _meta(), key)
    assert signed.startswith(pdf) and signed.endswith(b"\n")
    last_line = signed.rstrip(b"\n").rsplit(b"\n", 1)[1]
    assert last_line.startswith(MARKER)
    result = verify_bytes(signed, key.public_key())
    assert result.status == "valid" and result.file_kind == "pdf"
    assert result.metadata is not None and result.metadata.case_number == "2026-0413"

    # one byte of page content changed
    at = signed.index(b"/MediaBox")
    flipped = signed[:at] + b"/MediaBoy" + signed[at + 9 :]
    result = verify_bytes(flipped, key.public_key())
    assert result.status == "tampered" and "PDF bytes" in result.reason
    # an appended incremental update after the signature
    appended = signed + b"1 0 obj\n<< /Type /Catalog >>\nendobj\nxref\n0 0\ntrailer\n<<>>\n%%EOF\n"
    result = verify_bytes(appended)
    assert result.status == "tampered" and "appended" in result.reason
    # the signed metadata edited inside the record
    line = last_line[len(MARKER) :]
    record = json.loads(base64.b64decode(line))
    record["metadata"] = record["metadata"].replace("2026-0413", "2026-0999")
    forged_line = MARKER + base64.b64encode(json.dumps(record).encode())
    forged = signed[: signed.rindex(MARKER)] + forged_line + b"\n"
    result = verify_bytes(forged)
    assert result.status == "tampered" and "metadata" in result.reason
    # garbage in the record
    result = verify_bytes(signed[: signed.rindex(MARKER)] + MARKER + b"@@@\n")
    assert result.status == "tampered" and "unreadable" in result.reason
    # signature line stripped: unsigned; the creator still names sketch2face -> the hint
    assert verify_bytes(pdf).status == "unsigned"
    stripped = verify_bytes(pdf.replace(b"ReportLab", b"sketch2face", 1))
    assert stripped.status == "unsigned" and "re-saved" in stripped.reason
    # signed elsewhere
    assert verify_bytes(sign_pdf(pdf, _meta(), other_key), key.public_key()).status == "tampered"


def test_sign_pdf_refuses_what_is_not_a_finished_pdf(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ProvenanceError, match="not a PDF"):
        sign_pdf(b"hello", _meta(), key)
    with pytest.raises(ProvenanceError, match="does not end with %%EOF"):
        sign_pdf(_pdf()[:-200], _meta(), key)
    with pytest.raises(ProvenanceError, match="already signed"):
        sign_pdf(sign_pdf(_pdf(), _meta(), key), _meta(), key)


# ---------------------------------------------------------------------------------------- metadata
def test_weights_sha256_is_the_file_digest_and_follows_changes(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights v1" * 1000)
    assert weights_sha256(weights) == hashlib.sha256(b"weights v1" * 1000).hexdigest()
    weights.write_bytes(b"weights v2" * 1001)
    os.utime(weights, ns=(1, 2_000_000_000_000_000_000))
    assert weights_sha256(weights) == hashlib.sha256(b"weights v2" * 1001).hexdigest()
    with pytest.raises(ProvenanceError, match="cannot read the model weights"):
        weights_sha256(tmp_path / "missing.safetensors")


def test_metadata_json_is_canonical_and_round_trips() -> None:
    meta = _meta().with_key_id("cd" * 32)
    text = meta.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert Provenance.from_json(text) == meta
    with pytest.raises(ValueError, match="unknown provenance kind"):
        Provenance.create("selfie")
    with pytest.raises(ProvenanceError, match="lacks"):
        Provenance.from_json('{"kind": "face"}')


# ---------------------------------------------------------------------------------------- CLI
def test_verify_cli_exit_status(
    tmp_path: Path, key: Ed25519PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    instance = tmp_path / "instance"
    good = tmp_path / "face.png"
    good.write_bytes(sign_png(_face_u8(), _meta(), key))
    pixels = _face_u8().copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    bad = tmp_path / "tampered.png"
    bad.write_bytes(_resave(good.read_bytes(), pixels=pixels))
    plain = tmp_path / "plain.png"
    Image.fromarray(_face_u8()).save(plain)
    sheet = tmp_path / "sheet.pdf"
    sheet.write_bytes(sign_pdf(_pdf(), _meta(), key))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")

    assert main(["verify", str(good), "--key-dir", str(instance)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID:") and "2026-0413" in out and key_id(key)[:16] in out
    assert main(["verify", str(sheet), "--public-key", str(instance / PUBLIC_KEY_FILENAME)]) == 0
    assert main(["verify", str(bad), "--key-dir", str(instance)]) == 1
    assert "TAMPERED" in capsys.readouterr().out
    assert main(["verify", str(plain)]) == 2
    assert "UNSIGNED" in capsys.readouterr().out
    assert main(["verify", str(text)]) == 3
    assert main(["verify", str(tmp_path / "missing.png")]) == 3
    assert "no such file" in capsys.readouterr().out
    assert main(["verify", str(good), "--public-key", str(tmp_path / "none.pem")]) == 3
    # a key from another instance: the signature is intact but not this instance's
    elsewhere = tmp_path / "elsewhere"
    ensure_signing_key(elsewhere)
    assert main(["verify", str(good), "--key-dir", str(elsewhere)]) == 1
    capsys.readouterr()
    assert main(["verify", str(good), "--json", "--key-dir", str(instance)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "valid" and report["metadata"]["case_number"] == "2026-0413"
    assert report["trusted"] is True


def test_verify_cli_exits_0_only_for_a_trusted_signer(
    tmp_path: Path, key: Ed25519PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23 item 12: a changed face re-signed with someone else's key holds only against the
    key it carries; with no trusted key at hand that is 'signature intact, signer not trusted'
    (exit 4), never 'valid' (exit 0)."""
    instance = tmp_path / "instance"
    ensure_signing_key(instance)
    pixels = _face_u8().copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    forged = tmp_path / "forged.png"
    forged.write_bytes(sign_png(pixels, _meta(), Ed25519PrivateKey.generate()))
    no_key = tmp_path / "no-instance-here"
    assert main(["verify", str(forged), "--key-dir", str(no_key)]) == 4
    out = capsys.readouterr().out
    assert out.startswith("SIGNATURE INTACT, SIGNER NOT TRUSTED:") and "VALID" not in out
    assert main(["verify", str(forged), "--json", "--key-dir", str(no_key)]) == 4
    assert json.loads(capsys.readouterr().out)["verdict"] == "signature intact, signer not trusted"
    assert main(["verify", str(forged), "--key-dir", str(instance)]) == 1  # not this instance's
    genuine = tmp_path / "genuine.png"
    genuine.write_bytes(sign_png(_face_u8(), _meta(), key))
    pem = tmp_path / "signer.pem"
    from sketch2face.provenance.keys import public_key_pem

    pem.write_bytes(public_key_pem(key.public_key()))
    assert main(["verify", str(genuine), "--public-key", str(pem)]) == 0
