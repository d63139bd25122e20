"""Draw a :class:`~sketch2face.appeal.layout.PageLayout` into a PNG preview with Pillow.

The same elements and fonts as the PDF (no PDF rasteriser needed at run time), at ``dpi`` pixels
per inch: 100 dpi gives an 827 x 1169 preview, good for a screen.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from sketch2face.appeal.layout import Box, PageLayout, Picture, TextLine

PREVIEW_DPI = 100
_ANCHORS = {"left": "ls", "center": "ms", "right": "rs"}


def render_png(layout: PageLayout, *, dpi: int = PREVIEW_DPI) -> Image.Image:
    """The page as an RGB image at ``dpi``."""
    scale = dpi / 72.0
    page = Image.new(
        "RGB", (round(layout.width_pt * scale), round(layout.height_pt * scale)), "white"
    )
    draw = ImageDraw.Draw(page)
    for element in layout.elements:
        if isinstance(element, Box):
            x0, y0 = element.x * scale, element.y * scale
            x1 = (element.x + element.width) * scale
            y1 = (element.y + element.height) * scale
            if element.fill is not None:
                draw.rectangle((x0, y0, x1, y1), fill=element.fill)
            if element.stroke is not None:
                width = max(1, round(element.stroke_pt * scale))
                draw.rectangle((x0, y0, x1, y1), outline=element.stroke, width=width)
        elif isinstance(element, TextLine):
            font = _font(str(layout.fonts.path(element.weight)), element.size_pt * scale)
            draw.text(
                (element.x * scale, element.baseline * scale),
                element.text,
                font=font,
                fill=element.color,
                anchor=_ANCHORS[element.align],
            )
        elif isinstance(element, Picture):
            box_px = (round(element.width * scale), round(element.height * scale))
            face = element.image.convert("RGB").resize(box_px, Image.Resampling.LANCZOS)
            page.paste(face, (round(element.x * scale), round(element.y * scale)))
    return page


@lru_cache(maxsize=32)
def _font(path: str, size_px: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size_px)
