"""``make_appeal_sheet``: face + texts -> signed A4 PDF and signed PNG preview of the same page."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from sketch2face.appeal.layout import AppealSheet, PageLayout, layout_sheet
from sketch2face.appeal.pdf_renderer import render_pdf
from sketch2face.appeal.png_renderer import PREVIEW_DPI, render_png
from sketch2face.imaging import ImageInput, load_image
from sketch2face.provenance import (
    KIND_APPEAL_SHEET,
    STATEMENT,
    Provenance,
    short_key_id,
    sign_pdf,
    sign_png,
)

#: the CLI's default contact line (the web app's administrator setting is read by the web code)
APPEAL_CONTACT_ENV = "SKETCH2FACE_APPEAL_CONTACT"


@dataclass(frozen=True)
class AppealSheetFiles:
    """A finished appeal sheet: both files signed with the same provenance."""

    pdf: bytes
    preview_png: bytes
    provenance: Provenance
    layout: PageLayout


def contact_from_env() -> str:
    """The default contact line from ``$SKETCH2FACE_APPEAL_CONTACT`` ('' when unset)."""
    return os.environ.get(APPEAL_CONTACT_ENV, "").strip()


def make_appeal_sheet(
    face: ImageInput,
    sheet: AppealSheet,
    private_key: Ed25519PrivateKey,
    *,
    model_id: str | None = None,
    model_sha256: str | None = None,
    generation_id: str | None = None,
    refiner_id: str | None = None,
    refiner_sha256: str | None = None,
    backdrop: str | None = None,
    now: datetime | None = None,
    preview_dpi: int = PREVIEW_DPI,
) -> AppealSheetFiles:
    """Lay out, render and sign an appeal sheet.

    Args:
        face: the chosen likeness (path, bytes, PIL image or HxWx3 uint8 array).
        sheet: case number, contact line, description, attributes.
        private_key: the instance key (``provenance.ensure_signing_key``).
        model_id, model_sha256, generation_id: provenance of the face, when known.
        refiner_id, refiner_sha256, backdrop: its second stage ("none": stage one's face) and
            backdrop, when known (``Provenance.create``).
        now: signing time (tests); default the current UTC time.

    Raises InvalidImageError for an unreadable face, AppealSheetError for missing or oversized
    texts.
    """
    sheet = sheet.cleaned()
    face_u8 = load_image(face)
    provenance = Provenance.create(
        KIND_APPEAL_SHEET,
        model_id=model_id,
        model_sha256=model_sha256,
        generation_id=generation_id,
        case_number=sheet.case_number,
        refiner_id=refiner_id,
        refiner_sha256=refiner_sha256,
        backdrop=backdrop,
        now=now,
    )
    issued = datetime.strptime(provenance.created_at, "%Y-%m-%dT%H:%M:%SZ")
    footer = (
        f"Computer-generated likeness made with {provenance.software} "
        f"{provenance.software_version}  \u00b7  model {model_id or 'not recorded'}  \u00b7  "
        f"generation {generation_id or 'not recorded'}  \u00b7  {provenance.created_at}",
        f"This sheet is digitally signed (Ed25519, key {short_key_id(private_key)}). Check a copy "
        "with: sketch2face verify FILE, or on the 'Verify a file' page of the issuing system.",
    )
    layout = layout_sheet(
        sheet, _square(face_u8), issued=f"{issued.day} {issued:%B %Y}", footer=footer
    )
    pdf = render_pdf(
        layout,
        info={
            "title": f"Appeal for information - case {sheet.case_number}",
            "subject": STATEMENT,
            "keywords": f"case {sheet.case_number}; generation {generation_id or 'n/a'}; "
            "sketch2face signed provenance",
            "creator": f"sketch2face {provenance.software_version}",
        },
    )
    preview = render_png(layout, dpi=preview_dpi)
    buf = io.BytesIO()
    preview.save(buf, format="PNG")
    return AppealSheetFiles(
        pdf=sign_pdf(pdf, provenance, private_key),
        preview_png=sign_png(buf.getvalue(), provenance, private_key),
        provenance=provenance,
        layout=layout,
    )


def _square(face_u8: np.ndarray) -> Image.Image:
    """The face on a white square (a non-square face is padded, never cropped or stretched)."""
    image = Image.fromarray(face_u8)
    side = max(image.size)
    if image.width == image.height:
        return image
    square = Image.new("RGB", (side, side), "white")
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square
