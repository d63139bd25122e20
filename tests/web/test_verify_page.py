"""The "Verify a file" page: instance key, valid / tampered / unsigned uploads, audit, limits."""

from __future__ import annotations

import io
import stat
from typing import Any

import numpy as np
import sqlalchemy as sa
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sketch2face.db.models import AuditEvent, Generation
from sketch2face.provenance import (
    KIND_FACE,
    SIGNING_KEY_FILENAME,
    Provenance,
    ensure_signing_key,
    key_id,
    load_public_key,
    sign_pdf,
    sign_png,
    verify_bytes,
)
from sketch2face.services.signing import generation_appeal_sheet, sign_generation_png
from sketch2face.web.database import new_session
from sketch2face.web.pages.verify import VERIFY, get_signing_key

from .web_support import WebClient, generation_id_from


def _face_u8() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _signed_png(app: Any, case: str = "2026-0413") -> bytes:
    meta = Provenance.create(KIND_FACE, model_id="m-1", generation_id="a" * 32, case_number=case)
    return sign_png(_face_u8(), meta, get_signing_key(app))


def _upload(client: WebClient, data: bytes, name: str = "face.png", **kw: Any) -> Any:
    return client.post(
        "/verify", {"file": (io.BytesIO(data), name)}, content_type="multipart/form-data", **kw
    )


def _verify_events(app: Any) -> list[AuditEvent]:
    with new_session(app) as s:
        return list(s.scalars(sa.select(AuditEvent).where(AuditEvent.action == VERIFY)))


def test_the_instance_key_is_made_at_first_start(app: Any, settings: Any) -> None:
    path = settings.data_dir / SIGNING_KEY_FILENAME
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_id(ensure_signing_key(settings.data_dir)) == key_id(get_signing_key(app))


def test_page_needs_sign_in_and_has_a_csrf_upload_form(
    client: WebClient, alice: WebClient, app: Any
) -> None:
    assert client.get("/verify").status_code == 302
    page = alice.get("/verify").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'name="csrf_token"' in page
    assert 'type="file" name="file"' in page
    assert key_id(get_signing_key(app))[:16] in page
    assert 'href="/verify"' in page  # in the navigation


def test_valid_tampered_and_unsigned_uploads(app: Any, alice: WebClient) -> None:
    signed = _signed_png(app)
    response = _upload(alice, signed)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-status="valid"' in page
    assert "2026-0413" in page and "AI-generated likeness, not a photograph" in page

    image = Image.open(io.BytesIO(signed))
    info = PngInfo()
    for keyword, value in image.text.items():
        info.add_itxt(keyword, value)
    pixels = np.asarray(image).copy()
    pixels[5, 5] = 255 - pixels[5, 5]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=info)
    page = _upload(alice, buf.getvalue(), "edited.png").get_data(as_text=True)
    assert 'data-status="tampered"' in page and "not trustworthy" in page

    plain = io.BytesIO()
    Image.fromarray(_face_u8()).save(plain, format="PNG")
    page = _upload(alice, plain.getvalue(), "plain.png").get_data(as_text=True)
    assert 'data-status="unsigned"' in page

    events = _verify_events(app)
    assert [e.detail["status"] for e in events] == ["valid", "tampered", "unsigned"]
    assert events[0].username == "alice" and events[0].detail["filename"] == "face.png"
    assert events[0].generation_id == "a" * 32 and events[1].generation_id is None
    assert events[0].detail["case_number"] == "2026-0413"


def test_a_file_signed_by_another_instance_is_not_valid_here(
    app: Any, alice: WebClient, tmp_path: Any
) -> None:
    other = ensure_signing_key(tmp_path / "other-instance")
    pdf_meta = Provenance.create("appeal-sheet", case_number="2026-0413")
    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    canvas = Canvas(buf)
    canvas.drawString(72, 720, "appeal")
    canvas.save()
    foreign = sign_pdf(buf.getvalue(), pdf_meta, other)
    page = _upload(alice, foreign, "sheet.pdf").get_data(as_text=True)
    assert 'data-status="tampered"' in page and "not the trusted key" in page
    ours = sign_pdf(buf.getvalue(), pdf_meta, get_signing_key(app))
    assert 'data-status="valid"' in _upload(alice, ours, "sheet.pdf").get_data(as_text=True)


def test_bad_uploads_are_explained(app: Any, alice: WebClient, settings: Any) -> None:
    response = _upload(alice, b"just some text", "notes.txt")
    assert response.status_code == 400
    assert "neither a PNG, a PDF" in response.get_data(as_text=True)
    response = alice.post("/verify", {}, content_type="multipart/form-data")
    assert response.status_code == 400 and "Choose the exported PNG or PDF" in response.get_data(
        as_text=True
    )
    too_big = b"%PDF-1.4\n" + b"0" * settings.max_upload_bytes
    response = _upload(alice, too_big, "big.pdf")
    assert response.status_code == 413
    assert [e.detail["status"] for e in _verify_events(app)] == ["unreadable"]


def test_post_without_csrf_token_is_refused(app: Any, alice: WebClient) -> None:
    response = alice.http.post(
        "/verify",
        data={"file": (io.BytesIO(_signed_png(app)), "face.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400 and _verify_events(app) == []


def test_public_key_download_is_the_instance_key(app: Any, alice: WebClient, tmp_path: Any) -> None:
    response = alice.get("/verify/public-key.pem")
    assert response.status_code == 200 and b"BEGIN PUBLIC KEY" in response.data
    path = tmp_path / "key.pem"
    path.write_bytes(response.data)
    assert key_id(load_public_key(path)) == key_id(get_signing_key(app))


def test_sign_generation_png_signs_a_stored_face(app: Any, alice: WebClient) -> None:
    gid = generation_id_from(alice.generate(case_number="2026-0413"))
    stored = alice.get(f"/generations/{gid}/face.png").data
    with app.test_request_context():
        with new_session(app) as s:
            generation = s.get(Generation, gid)
            signed = sign_generation_png(generation, stored)
    result = verify_bytes(signed, get_signing_key(app).public_key())
    assert result.status == "valid" and result.metadata is not None
    assert result.metadata.generation_id == gid and result.metadata.case_number == "2026-0413"
    assert result.metadata.model_id and result.metadata.model_id == generation.model_version
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(signed))), np.asarray(Image.open(io.BytesIO(stored)))
    )
    page = _upload(alice, signed, "export.png").get_data(as_text=True)
    assert 'data-status="valid"' in page and gid in page


def test_generation_appeal_sheet_is_signed_with_the_generation_provenance(
    app: Any, alice: WebClient
) -> None:
    gid = generation_id_from(
        alice.generate(case_number="2026-0413", notes="Seen near the station.", skin="dark")
    )
    stored = alice.get(f"/generations/{gid}/face.png").data
    with app.test_request_context():
        with new_session(app) as s:
            files = generation_appeal_sheet(
                s.get(Generation, gid), stored, contact="Incident room: 0123 456 789"
            )
    for data in (files.pdf, files.preview_png):
        result = verify_bytes(data, get_signing_key(app).public_key())
        assert result.status == "valid" and result.metadata is not None
        assert result.metadata.kind == "appeal-sheet" and result.metadata.generation_id == gid
        assert result.metadata.case_number == "2026-0413"
    texts = [e.text for e in files.layout.elements if hasattr(e, "text")]
    assert (
        "Seen near the station." in texts
        and "As described by the witness: Skin tone: dark" in texts
    )
