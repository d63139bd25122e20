"""Appeal sheet: A4 PDF + PNG preview from one layout, both signed; rendered and checked as a page.

The PDF is rasterised with poppler's pdftoppm (Debian poppler-utils, installed in CI by
scripts/ci_services.sh), or with pypdfium2 when only that is installed; text comes from pdftotext
or pypdf. Without either tool those checks skip with the reason.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from sketch2face.appeal import (
    AppealSheet,
    AppealSheetFiles,
    describe_attributes,
    make_appeal_sheet,
)
from sketch2face.appeal.layout import NOTICE_TITLE, PAGE_HEIGHT_PT, PAGE_WIDTH_PT
from sketch2face.cli.main import main
from sketch2face.errors import AppealSheetError, InvalidImageError
from sketch2face.provenance import (
    KIND_APPEAL_SHEET,
    KIND_FACE,
    Provenance,
    ensure_signing_key,
    sign_png,
    verify_bytes,
    verify_file,
)

CONTACT = "Incident room, Northfield Police: 0123 456 7890 (quote 2026-0413)"
DESCRIPTION = (
    "Woman, about 25-35 years old, about 1.65 m, slim build. Seen near Northfield station on "
    "3 May 2026 at about 21:30, wearing a green rain jacket."
)
RENDER_DPI = 50


def _face_u8() -> np.ndarray:
    """A face-like test image: warm oval on a blue-grey background, with dark eyes and mouth."""
    yy, xx = np.mgrid[:256, :256]
    face = np.empty((256, 256, 3), dtype=np.uint8)
    face[:] = (120, 140, 160)
    oval = ((xx - 128) / 80.0) ** 2 + ((yy - 128) / 105.0) ** 2 < 1
    face[oval] = (214, 170, 140)
    for cx in (98, 158):
        face[(xx - cx) ** 2 + (yy - 110) ** 2 < 64] = (30, 30, 30)
    face[(np.abs(xx - 128) < 28) & (np.abs(yy - 175) < 4)] = (140, 60, 60)
    return face


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return ensure_signing_key(tmp_path / "instance")


@pytest.fixture
def sheet_files(key: Ed25519PrivateKey) -> AppealSheetFiles:
    sheet = AppealSheet(
        case_number="2026-0413",
        contact=CONTACT,
        description=DESCRIPTION,
        attributes={"skin": "light", "hair_color": "dark-brown", "gender": "female"},
    )
    return make_appeal_sheet(
        _face_u8(),
        sheet,
        key,
        model_id="pix2pix-unet-ngf32-256px-step1250",
        model_sha256="ab" * 32,
        generation_id="4f2a9c1e0b7d4e2a8c3f5b6a7d8e9f01",
        now=datetime(2026, 5, 12, 9, 30, tzinfo=UTC),
    )


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "sheet.pdf"
    path.write_bytes(pdf)
    if shutil.which("pdftotext"):
        return subprocess.run(
            ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
        ).stdout
    try:
        from pypdf import PdfReader
    except ImportError:
        pytest.skip("no PDF text extractor: install Debian's poppler-utils (pdftotext) or pypdf")
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def _render(pdf: bytes, tmp_path: Path, dpi: int = RENDER_DPI) -> Image.Image:
    path = tmp_path / "sheet.pdf"
    path.write_bytes(pdf)
    if shutil.which("pdftoppm"):
        subprocess.run(
            ["pdftoppm", "-r", str(dpi), "-png", "-singlefile", str(path), str(tmp_path / "page")],
            check=True,
            capture_output=True,
        )
        return Image.open(tmp_path / "page.png").convert("RGB")
    try:
        import pypdfium2
    except ImportError:
        pytest.skip("no PDF renderer: install Debian's poppler-utils (pdftoppm) or pypdfium2")
    document = pypdfium2.PdfDocument(str(path))
    try:
        return document[0].render(scale=dpi / 72).to_pil().convert("RGB")
    finally:
        document.close()


def test_pdf_is_one_signed_a4_page(sheet_files: AppealSheetFiles, key: Ed25519PrivateKey) -> None:
    pdf = sheet_files.pdf
    assert pdf.startswith(b"%PDF-")
    boxes = re.findall(rb"/MediaBox\s*\[\s*([\d.\s]+)\]", pdf)
    assert len(boxes) == 1
    x0, y0, width, height = (float(v) for v in boxes[0].split())
    assert (x0, y0) == (0, 0)
    assert width == pytest.approx(210 / 25.4 * 72, abs=0.05)  # 210 x 297 mm
    assert height == pytest.approx(297 / 25.4 * 72, abs=0.05)
    result = verify_bytes(pdf, key.public_key())
    assert result.status == "valid" and result.file_kind == "pdf"
    meta = result.metadata
    assert meta is not None and meta.kind == KIND_APPEAL_SHEET and meta.case_number == "2026-0413"
    assert meta.generation_id == "4f2a9c1e0b7d4e2a8c3f5b6a7d8e9f01"
    assert meta.created_at == "2026-05-12T09:30:00Z"
    preview = verify_bytes(sheet_files.preview_png, key.public_key())
    assert preview.status == "valid" and preview.metadata == meta


def test_pdf_text_has_case_notice_description_and_contact(
    sheet_files: AppealSheetFiles, tmp_path: Path
) -> None:
    text = " ".join(_pdf_text(sheet_files.pdf, tmp_path).split())
    for expected in (
        "2026-0413",
        NOTICE_TITLE,
        "NOT A PHOTOGRAPH",
        "Do you recognise this person?",
        "Skin tone: light",
        "Hair colour: dark brown",
        "slim build",
        "0123 456 7890",
        "12 May 2026",
        "digitally signed",
    ):
        assert expected in text, f"{expected!r} not on the page"


def test_rendered_page_shows_face_notice_and_matches_the_preview(
    sheet_files: AppealSheetFiles, tmp_path: Path
) -> None:
    page = _render(sheet_files.pdf, tmp_path)
    scale = RENDER_DPI / 72
    assert page.size == (round(PAGE_WIDTH_PT * scale), round(PAGE_HEIGHT_PT * scale)) or (
        abs(page.width - PAGE_WIDTH_PT * scale) <= 1
        and abs(page.height - PAGE_HEIGHT_PT * scale) <= 1
    )
    pixels = np.asarray(page).astype(np.int16)
    box = sheet_files.layout.face_box
    assert box.width >= 220  # the face is large: at least ~78 mm
    inset = 4  # stay inside the face's border line
    face = pixels[
        round((box.y + inset) * scale) : round((box.y + box.height - inset) * scale),
        round((box.x + inset) * scale) : round((box.x + box.width - inset) * scale),
    ]
    assert face.mean() < 220 and face.std() > 20  # an image, not white paper
    # the face's skin colour (214, 170, 140) is at its centre
    cy, cx = face.shape[0] // 2, face.shape[1] // 2
    centre = face[cy - 3 : cy + 3, cx - 3 : cx + 3].reshape(-1, 3).mean(axis=0)
    assert np.abs(centre - (214, 170, 140)).max() < 25
    # the header band is dark navy, the notice box below the face amber-tinted
    assert np.abs(pixels[5, page.width // 2] - (20, 33, 61)).max() < 10
    notice_y = round((box.y + box.height + 20) * scale)
    assert np.abs(pixels[notice_y, page.width - round(60 * scale)] - (255, 243, 205)).max() < 10
    # the Pillow preview is the same page: small differences are font rasterisation only
    preview = Image.open(io.BytesIO(sheet_files.preview_png)).convert("RGB").resize(page.size)
    difference = np.abs(np.asarray(preview).astype(np.int16) - pixels).mean()
    assert difference < 10, f"PDF and PNG preview differ by {difference:.1f} levels on average"


def test_preview_png_is_a4_at_100_dpi(sheet_files: AppealSheetFiles) -> None:
    preview = Image.open(io.BytesIO(sheet_files.preview_png))
    assert preview.size == (827, 1169)
    assert preview.width / preview.height == pytest.approx(210 / 297, abs=0.002)


def test_missing_or_oversized_texts_and_bad_faces_are_refused(key: Ed25519PrivateKey) -> None:
    with pytest.raises(AppealSheetError, match="contact line.*SKETCH2FACE_APPEAL_CONTACT"):
        make_appeal_sheet(_face_u8(), AppealSheet("2026-0413", contact="  "), key)
    with pytest.raises(AppealSheetError, match="case number"):
        make_appeal_sheet(_face_u8(), AppealSheet(" ", contact=CONTACT), key)
    too_long = "\n".join(["A line of description."] * 60)
    with pytest.raises(AppealSheetError, match="more than one A4 page holds"):
        make_appeal_sheet(_face_u8(), AppealSheet("1", CONTACT, too_long), key)
    with pytest.raises(AppealSheetError, match="at most 2000"):
        make_appeal_sheet(_face_u8(), AppealSheet("1", CONTACT, "x" * 2001), key)
    with pytest.raises(InvalidImageError):
        make_appeal_sheet(b"not an image", AppealSheet("1", CONTACT), key)


def test_long_description_shrinks_the_face_but_keeps_it_large(key: Ed25519PrivateKey) -> None:
    short = make_appeal_sheet(_face_u8(), AppealSheet("1", CONTACT, "Short."), key)
    long_text = " ".join(["Wore a dark jacket with a hood and white trainers."] * 14)
    long = make_appeal_sheet(_face_u8(), AppealSheet("1", CONTACT, long_text), key)
    assert 220 <= long.layout.face_box.width < short.layout.face_box.width <= 340


def test_attributes_read_as_words() -> None:
    text = describe_attributes({"skin": "#b07e58", "hair_color": "dark-brown", "gender": "male"})
    assert (
        text == "Skin tone: close to olive  \u00b7  Hair colour: dark brown  \u00b7  Gender: male"
    )
    assert describe_attributes({}) == ""


def test_appeal_sheet_cli(
    tmp_path: Path,
    key: Ed25519PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    instance = tmp_path / "instance"
    face = tmp_path / "face.png"
    meta = Provenance.create(
        KIND_FACE,
        model_id="m-1",
        model_sha256="cd" * 32,
        generation_id="g" * 32,
        case_number="2026-0413",
    )
    face.write_bytes(sign_png(_face_u8(), meta, key))
    out = tmp_path / "out" / "sheet.pdf"
    preview = tmp_path / "out" / "sheet.png"
    monkeypatch.setenv("SKETCH2FACE_APPEAL_CONTACT", CONTACT)
    args = [
        "appeal-sheet",
        str(face),
        "--case",
        "2026-0413",
        "-o",
        str(out),
        "--key-dir",
        str(instance),
    ]
    assert main([*args, "--preview", str(preview), "--description", DESCRIPTION]) == 0
    assert "wrote" in capsys.readouterr().out
    result = verify_file(out, key.public_key())
    assert result.status == "valid" and result.metadata is not None
    # the face's signed provenance carries over into the sheet's
    assert result.metadata.model_id == "m-1" and result.metadata.generation_id == "g" * 32
    assert verify_file(preview, key.public_key()).status == "valid"
    assert main(["verify", str(out), "--key-dir", str(instance)]) == 0

    # a face signed for another case, a tampered face and a missing contact are refused
    assert main([*args[:3], "2026-9999", *args[4:]]) == 1
    assert "signed for case 2026-0413" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    pixels = _face_u8()
    pixels[0, 0] = 0
    image = Image.open(face)
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in image.text.items():
        info.add_itxt(k, v)
    Image.fromarray(pixels).save(broken, pnginfo=info)
    assert main(["appeal-sheet", str(broken), *args[2:]]) == 1
    assert "broken signature" in capsys.readouterr().err
    monkeypatch.delenv("SKETCH2FACE_APPEAL_CONTACT")
    assert main(args) == 1
    assert "contact line" in capsys.readouterr().err
    # an unsigned face works, with the model named from --checkpoint
    plain = tmp_path / "plain.png"
    Image.fromarray(_face_u8()).save(plain)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    assert (
        main(
            [
                "appeal-sheet",
                str(plain),
                *args[2:],
                "--contact",
                "Call 101",
                "--checkpoint",
                str(weights),
            ]
        )
        == 0
    )
    meta_out = verify_file(out, key.public_key()).metadata
    assert meta_out is not None and meta_out.model_id == "model.safetensors"
    assert meta_out.generation_id is None
