"""Printable appeal sheet: the chosen likeness on one A4 page for the public, signed.

One layout (:mod:`.layout`), two renderers: the PDF for printing (:mod:`.pdf_renderer`,
reportlab) and a PNG preview (:mod:`.png_renderer`, Pillow), both signed with the instance key
(:mod:`sketch2face.provenance`). Entry point: :func:`make_appeal_sheet`.
"""

from __future__ import annotations

from sketch2face.appeal.layout import AppealSheet, PageLayout, describe_attributes, layout_sheet
from sketch2face.appeal.pdf_renderer import render_pdf
from sketch2face.appeal.png_renderer import render_png
from sketch2face.appeal.sheet import (
    APPEAL_CONTACT_ENV,
    AppealSheetFiles,
    contact_from_env,
    make_appeal_sheet,
)

__all__ = [
    "APPEAL_CONTACT_ENV",
    "AppealSheet",
    "AppealSheetFiles",
    "PageLayout",
    "contact_from_env",
    "describe_attributes",
    "layout_sheet",
    "make_appeal_sheet",
    "render_pdf",
    "render_png",
]
