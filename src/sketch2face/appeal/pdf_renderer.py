"""Draw a :class:`~sketch2face.appeal.layout.PageLayout` into a PDF with reportlab.

reportlab (BSD, maintained since 2000, pure Python wheels) is used through its low-level canvas:
the layout has already decided every position, so no flowables are needed. Fonts are embedded
(subset) from the same TrueType files the layout measured with.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from sketch2face.appeal.layout import Box, PageLayout, Picture, TextLine

#: the face is embedded at this many pixels per side: 256 px over ~110 mm would print at ~60 dpi
#: as visible blocks; a Lanczos upscale prints smoothly and adds no detail that was not there
EMBED_FACE_PX = 768
#: embedded as JPEG (passed through to the PDF as DCT): ~0.1 MB instead of ~1.1 MB as Flate;
#: the lossless original is the signed face PNG
EMBED_JPEG_QUALITY = 92


def render_pdf(layout: PageLayout, *, info: Mapping[str, str] | None = None) -> bytes:
    """The page as PDF bytes; ``info`` sets document properties (title, subject, keywords...)."""
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(layout.width_pt, layout.height_pt), pageCompression=1)
    info = info or {}
    canvas.setTitle(info.get("title", "Appeal for information"))
    canvas.setSubject(info.get("subject", ""))
    canvas.setKeywords(info.get("keywords", ""))
    canvas.setCreator(info.get("creator", "sketch2face"))
    canvas.setAuthor(info.get("author", ""))
    fonts = {w: _register(str(layout.fonts.path(w))) for w in ("regular", "bold")}
    height = layout.height_pt
    for element in layout.elements:
        if isinstance(element, Box):
            if element.fill is not None:
                canvas.setFillColorRGB(*(c / 255 for c in element.fill))
            if element.stroke is not None:
                canvas.setStrokeColorRGB(*(c / 255 for c in element.stroke))
                canvas.setLineWidth(element.stroke_pt)
            canvas.rect(
                element.x,
                height - element.y - element.height,
                element.width,
                element.height,
                stroke=int(element.stroke is not None),
                fill=int(element.fill is not None),
            )
        elif isinstance(element, TextLine):
            canvas.setFillColorRGB(*(c / 255 for c in element.color))
            canvas.setFont(fonts[element.weight], element.size_pt)
            draw = {
                "left": canvas.drawString,
                "center": canvas.drawCentredString,
                "right": canvas.drawRightString,
            }[element.align]
            draw(element.x, height - element.baseline, element.text)
        elif isinstance(element, Picture):
            canvas.drawImage(
                ImageReader(_face_jpeg(element.image)),
                element.x,
                height - element.y - element.height,
                element.width,
                element.height,
            )
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


def _face_jpeg(face: Image.Image) -> io.BytesIO:
    """The face upscaled to EMBED_FACE_PX (never downscaled) as JPEG bytes, no chroma subsampling."""
    image = face.convert("RGB")
    if image.width < EMBED_FACE_PX:
        size = (EMBED_FACE_PX, round(EMBED_FACE_PX * image.height / image.width))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=EMBED_JPEG_QUALITY, subsampling=0)
    buf.seek(0)
    return buf


def _register(path: str) -> str:
    """Register a TrueType file with reportlab once; returns its font name."""
    name = "s2f-" + path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, path))
    return name
