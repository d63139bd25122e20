"""The appeal sheet of a case's likeness and signed face exports (issue 12): the PDF and its
preview verify against the instance key, exported faces (download, API, case ZIP) carry signed
provenance while sketches do not, and non-members get 404."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sketch2face.db.models import AuditEvent, Candidate
from sketch2face.provenance import verify_bytes
from sketch2face.web.database import new_session
from sketch2face.web.pages.verify import get_public_key

from .test_cases import create_case
from .web_support import WebClient, generation_id_from, make_app

CONTACT = "Incident room, Northfield Police: 0123 456 7890"


@pytest.fixture
def contact_app(settings: Any, web_model_client: Any) -> Any:
    return make_app(dataclasses.replace(settings, appeal_contact=CONTACT), web_model_client)


def _signed_in(app: Any, user: str) -> WebClient:
    c = WebClient(app)
    assert c.login(user).status_code == 302
    return c


def _case_with_likeness(app: Any, c: WebClient, number: str = "2026-0413") -> tuple[int, str]:
    case_id = create_case(c, number)
    gid = generation_id_from(c.generate(case_number=number, notes="Seen near the station, 21:30"))
    assert (
        c.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "2"}).status_code == 302
    )
    with new_session(app) as s:
        candidate_id = s.scalars(sa.select(Candidate.id).order_by(Candidate.id)).first()
    assert (
        c.post(f"/cases/{case_id}/likeness", {"candidate_id": str(candidate_id)}).status_code == 302
    )
    return case_id, gid


def test_appeal_sheet_pdf_and_preview_are_signed_and_audited(contact_app: Any) -> None:
    alice = _signed_in(contact_app, "alice")
    case_id, gid = _case_with_likeness(contact_app, alice)
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f'href="/cases/{case_id}/appeal-sheet.pdf"' in page
    response = alice.get(f"/cases/{case_id}/appeal-sheet.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert 'filename="case-2026-0413-appeal.pdf"' in response.headers["Content-Disposition"]
    with contact_app.app_context():
        key = get_public_key(contact_app)
    result = verify_bytes(response.data, key, name="sheet.pdf")
    assert result.status == "valid", result.reason
    assert result.metadata.case_number == "2026-0413"
    assert result.metadata.generation_id == gid
    preview = alice.get(f"/cases/{case_id}/appeal-sheet.png")
    assert preview.status_code == 200 and preview.mimetype == "image/png"
    assert verify_bytes(preview.data, key, name="sheet.png").status == "valid"
    with new_session(contact_app) as s:
        formats = s.scalars(
            sa.select(AuditEvent.detail).where(AuditEvent.action == "appeal_sheet")
        ).all()
    assert sorted(d["format"] for d in formats) == ["pdf", "png"]


def test_appeal_sheet_text_when_poppler_is_there(contact_app: Any, tmp_path: Path) -> None:
    if subprocess.run(["which", "pdftotext"], capture_output=True).returncode != 0:
        pytest.skip("pdftotext (Debian poppler-utils) not installed")
    alice = _signed_in(contact_app, "alice")
    case_id, _ = _case_with_likeness(contact_app, alice, "PX-9")
    pdf = tmp_path / "sheet.pdf"
    pdf.write_bytes(alice.get(f"/cases/{case_id}/appeal-sheet.pdf").data)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "PX-9" in text and "0123 456 7890" in text and "Seen near the station" in text
    assert re.search(r"NOT A PHOTOGRAPH", text, re.IGNORECASE)


def test_appeal_sheet_describes_only_what_was_specified(contact_app: Any, tmp_path: Path) -> None:
    """Issue 23 item 1: the candidates' randomly drawn traits are not the witness's description;
    only the attributes held fixed (and the notes) are printed, labelled as the witness's."""
    if subprocess.run(["which", "pdftotext"], capture_output=True).returncode != 0:
        pytest.skip("pdftotext (Debian poppler-utils) not installed")
    alice = _signed_in(contact_app, "alice")

    def sheet_text(case_id: int) -> str:
        pdf = tmp_path / "sheet.pdf"
        pdf.write_bytes(alice.get(f"/cases/{case_id}/appeal-sheet.pdf").data)
        out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        return " ".join(out.split())

    case_id, _ = _case_with_likeness(contact_app, alice, "NOTHING-SAID")
    with new_session(contact_app) as s:
        drawn = s.scalars(sa.select(Candidate.attributes).order_by(Candidate.id)).first()
    assert drawn  # the candidate has random traits ...
    text = sheet_text(case_id)
    for label in ("Skin tone", "Hair colour", "Gender:", "As described"):
        assert label not in text, text  # ... that the sheet does not print
    assert "Seen near the station" in text

    case_id = create_case(alice, "SKIN-SAID")
    gid = generation_id_from(alice.generate(case_number="SKIN-SAID", notes="Tall"))
    form = {"generation_id": gid, "n": "2", "skin": "dark"}
    assert alice.post(f"/cases/{case_id}/candidates", form).status_code == 302
    with new_session(contact_app) as s:
        candidate = s.scalars(sa.select(Candidate).order_by(Candidate.id.desc())).first()
        candidate_id = candidate.id
        assert candidate.attributes.get("hair_color")
    alice.post(f"/cases/{case_id}/likeness", {"candidate_id": str(candidate_id)})
    text = sheet_text(case_id)
    assert "As described by the witness: Skin tone: dark" in text, text
    assert "Hair colour" not in text and "Gender:" not in text, text


def test_appeal_sheet_needs_a_likeness_and_membership(contact_app: Any) -> None:
    alice = _signed_in(contact_app, "alice")
    case_id = create_case(alice, "NO-LIKE")
    assert alice.get(f"/cases/{case_id}/appeal-sheet.pdf").status_code == 404
    case_id, _ = _case_with_likeness(contact_app, alice, "MEMBERS")
    bob = _signed_in(contact_app, "bob")  # not a member
    for path in ("appeal-sheet.pdf", "appeal-sheet.png", "likeness.png", "export.zip"):
        assert bob.get(f"/cases/{case_id}/{path}").status_code == 404, path


def test_appeal_sheet_contact_line_is_filled_in_on_the_case_page(app: Any, tmp_path: Path) -> None:
    """Issue 23 item 5: with no contact line set for the server, the case page offers the field
    (no button leading to a Conflict page about environment variables); once filled in, the
    sheet prints it."""
    alice = _signed_in(app, "alice")
    case_id, _ = _case_with_likeness(app, alice, "NO-CONTACT")
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="contact-needed"' in page and 'name="appeal_contact"' in page
    assert f'href="/cases/{case_id}/appeal-sheet.pdf"' not in page
    direct = alice.get(f"/cases/{case_id}/appeal-sheet.pdf")
    assert direct.status_code == 409
    body = direct.get_data(as_text=True)
    assert "Contact line for the public" in body and "SKETCH2FACE_APPEAL_CONTACT" not in body
    saved = alice.post(
        f"/cases/{case_id}/edit",
        {"appeal_contact": "  Incident room,  0999 111 222 ", "return_to": "likeness"},
    )
    assert saved.status_code == 302 and saved.headers["Location"].endswith("#likeness")
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f'href="/cases/{case_id}/appeal-sheet.pdf"' in page and 'id="contact-needed"' not in page
    assert 'value="Incident room, 0999 111 222"' in page
    sheet = alice.get(f"/cases/{case_id}/appeal-sheet.pdf")
    assert sheet.status_code == 200
    if subprocess.run(["which", "pdftotext"], capture_output=True).returncode == 0:
        pdf = tmp_path / "sheet.pdf"
        pdf.write_bytes(sheet.data)
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "0999 111 222" in text
    too_long = alice.post(f"/cases/{case_id}/edit", {"appeal_contact": "x" * 201})
    assert too_long.status_code == 400


def test_a_case_contact_line_overrides_the_servers(contact_app: Any) -> None:
    alice = _signed_in(contact_app, "alice")
    case_id, _ = _case_with_likeness(contact_app, alice, "OWN-CONTACT")
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f'placeholder="{CONTACT}"' in page  # the server's line is the default
    alice.post(f"/cases/{case_id}/edit", {"appeal_contact": "DC Jones, 0111 222 333"})
    with contact_app.test_request_context():
        from sketch2face.db.models import Case
        from sketch2face.web.pages.appeal_sheets import case_contact

        with new_session(contact_app) as s:
            assert case_contact(s.get(Case, case_id)) == "DC Jones, 0111 222 333"


def test_exported_faces_are_signed_and_sketches_are_not(contact_app: Any) -> None:
    alice = _signed_in(contact_app, "alice")
    case_id, gid = _case_with_likeness(contact_app, alice, "SIGN-1")
    with contact_app.app_context():
        key = get_public_key(contact_app)
    face = alice.get(f"/generations/{gid}/face.png?download=1")
    assert verify_bytes(face.data, key, name="face.png").status == "valid"
    shown = alice.get(f"/generations/{gid}/face.png")  # shown in the page: stored bytes
    assert verify_bytes(shown.data, key, name="face.png").status == "unsigned"
    sketch = alice.get(f"/generations/{gid}/sketch.png?download=1")
    assert verify_bytes(sketch.data, key, name="sketch.png").status == "unsigned"
    archive = zipfile.ZipFile(io.BytesIO(alice.get(f"/cases/{case_id}/export.zip").data))
    statuses = {
        name: verify_bytes(archive.read(name), key, name=name).status
        for name in archive.namelist()
        if name.endswith(".png") and not name.endswith("grid.png")
    }
    assert statuses.pop(f"generations/{gid}/sketch.png") == "unsigned"
    assert statuses.pop("rounds/1/input.png") == "unsigned"
    assert statuses and set(statuses.values()) == {"valid"}, statuses
    likeness = verify_bytes(archive.read("likeness.png"), key, name="likeness.png")
    assert likeness.metadata.case_number == "SIGN-1"


def test_signed_provenance_records_the_weights_sha256(
    contact_app: Any, tiny_checkpoint: Path
) -> None:
    """Issue 23 item 14: downloads, candidates, case exports and appeal sheets name the weights
    by SHA-256 (of the file the app's model client loaded), never 'not recorded'."""
    import hashlib

    expected = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    alice = _signed_in(contact_app, "alice")
    case_id, gid = _case_with_likeness(contact_app, alice, "SHA-1")
    with contact_app.app_context():
        key = get_public_key(contact_app)
    signed = {
        "face": alice.get(f"/generations/{gid}/face.png?download=1").data,
        "sheet": alice.get(f"/cases/{case_id}/appeal-sheet.pdf").data,
    }
    with zipfile.ZipFile(io.BytesIO(alice.get(f"/cases/{case_id}/export.zip").data)) as archive:
        signed["candidate"] = archive.read("rounds/1/candidate-01.png")
        signed["likeness"] = archive.read("likeness.png")
        signed["exported face"] = archive.read(f"generations/{gid}/face.png")
    for name, data in signed.items():
        result = verify_bytes(data, key, name=name)
        assert result.status == "valid", (name, result.reason)
        assert result.metadata.model_sha256 == expected, name
