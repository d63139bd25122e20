"""The appeal sheet's layout: one A4 page as a list of boxes, lines of text and the face.

:func:`layout_sheet` decides everything (positions, wrapping, font sizes) once, in points from
the top-left corner; :mod:`.pdf_renderer` and :mod:`.png_renderer` only draw the elements, so the
printed PDF and the PNG preview show the same page.

Reading order, top to bottom: the appeal headline; case number and date; the face, as large as
the page allows (at least 220 pt, about 78 mm); the notice that it is a computer-generated
likeness, not a photograph; the description; the contact line; a small provenance footer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from PIL import Image

from sketch2face.appeal.fonts import SheetFonts, find_fonts
from sketch2face.attributes import HAIR_COLOURS, SKIN_TONES
from sketch2face.errors import AppealSheetError

RGB = tuple[int, int, int]

#: A4 in PostScript points (210 x 297 mm)
PAGE_WIDTH_PT = 595.2756
PAGE_HEIGHT_PT = 841.8898
MARGIN_PT = 42.0  # ~15 mm: inside every office printer's unprintable border
MIN_FACE_PT = 220.0
MAX_FACE_PT = 340.0  # ~120 mm; larger only magnifies a 256-px face's blur

NAVY: RGB = (20, 33, 61)
AMBER: RGB = (255, 209, 102)
WHITE: RGB = (255, 255, 255)
INK: RGB = (17, 17, 17)
GREY: RGB = (88, 88, 88)
RULE: RGB = (200, 200, 200)
NOTICE_FILL: RGB = (255, 243, 205)
NOTICE_EDGE: RGB = (180, 83, 9)

HEADLINE = "Do you recognise this person?"
NOTICE_TITLE = "COMPUTER-GENERATED LIKENESS \u2014 NOT A PHOTOGRAPH"
NOTICE_TEXT = (
    "Made by software from a witness's sketch and description, it shows what the person may look "
    "like, not a photograph of them. Looking like this image does not make anyone a suspect."
)
CONTACT_LEAD = "If you recognise this person or have any information, please contact:"
#: the attribute line says whose words it is: what the witness or investigator specified
SPECIFIED_LEAD = "As described by the witness:"
ATTRIBUTE_LABELS = {"skin": "Skin tone", "hair_color": "Hair colour", "gender": "Gender"}
MAX_CASE_CHARS = 64
MAX_CONTACT_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_HEADLINE_CHARS = 60


@dataclass(frozen=True)
class AppealSheet:
    """What the sheet says besides the face."""

    case_number: str
    #: who to call, set by the administrator, e.g. "Incident room, 0123 456 789, quote 2026-0413"
    contact: str
    #: free text for the public: witness description and notes
    description: str = ""
    #: the attributes the witness or investigator specified (skin, hair_color, gender), never
    #: the values a candidate drew at random
    attributes: Mapping[str, str] = field(default_factory=dict)
    headline: str = HEADLINE

    def cleaned(self) -> AppealSheet:
        """Trimmed copy; AppealSheetError says which field is missing or too long."""
        case = self.case_number.strip()
        contact = " ".join(self.contact.split())
        description = "\n".join(line.rstrip() for line in self.description.strip().splitlines())
        headline = " ".join(self.headline.split()) or HEADLINE
        if not case:
            raise AppealSheetError("an appeal sheet needs the case number; give --case NUMBER.")
        if not contact:
            raise AppealSheetError(
                "an appeal sheet needs a contact line for the public; give --contact TEXT or set "
                "SKETCH2FACE_APPEAL_CONTACT (e.g. 'Incident room: 0123 456 789')."
            )
        for label, text, limit in (
            ("case number", case, MAX_CASE_CHARS),
            ("contact line", contact, MAX_CONTACT_CHARS),
            ("description", description, MAX_DESCRIPTION_CHARS),
            ("headline", headline, MAX_HEADLINE_CHARS),
        ):
            if len(text) > limit:
                raise AppealSheetError(
                    f"the {label} is {len(text)} characters; at most {limit} fit on the sheet."
                )
            if "\x00" in text:
                raise AppealSheetError(f"the {label} contains a NUL character; remove it.")
        attributes = {k: str(v).strip() for k, v in self.attributes.items() if str(v).strip()}
        return AppealSheet(case, contact, description, attributes, headline)


@dataclass(frozen=True)
class Box:
    """A filled and/or outlined rectangle; (x, y) is its top-left corner."""

    x: float
    y: float
    width: float
    height: float
    fill: RGB | None = None
    stroke: RGB | None = None
    stroke_pt: float = 0.0


@dataclass(frozen=True)
class TextLine:
    """One line of text; ``x`` is its left, centre or right edge per ``align``."""

    x: float
    baseline: float
    text: str
    weight: str  # "regular" | "bold"
    size_pt: float
    color: RGB
    align: str = "left"  # "left" | "center" | "right"


@dataclass(frozen=True)
class Picture:
    """The face, scaled into a square box."""

    x: float
    y: float
    width: float
    height: float
    image: Image.Image


Element = Box | TextLine | Picture


@dataclass(frozen=True)
class PageLayout:
    """A laid-out page: size, fonts and elements in drawing order."""

    width_pt: float
    height_pt: float
    fonts: SheetFonts
    elements: tuple[Element, ...]
    face_box: Box  # where the face is (tests and the web preview use it)


def layout_sheet(
    sheet: AppealSheet,
    face: Image.Image,
    *,
    issued: str,
    footer: Sequence[str] = (),
    fonts: SheetFonts | None = None,
) -> PageLayout:
    """Lay out one A4 page; raises AppealSheetError when the description cannot fit.

    Args:
        sheet: the texts (already cleaned or not: cleaned here).
        face: the generated face (any size; square expected).
        issued: the date printed beside the case number, e.g. "12 May 2026".
        footer: small print at the bottom (provenance), wrapped to the page width.
    """
    sheet = sheet.cleaned()
    fonts = fonts or find_fonts()
    w, h, m = PAGE_WIDTH_PT, PAGE_HEIGHT_PT, MARGIN_PT
    content_w = w - 2 * m
    out: list[Element] = []

    # header band
    band_h = 112.0
    out.append(Box(0, 0, w, band_h, fill=NAVY))
    out.append(TextLine(m, 44, "APPEAL FOR INFORMATION", "bold", 12, AMBER))
    headline_pt = _fit_size(fonts, sheet.headline, "bold", 30, 16, content_w)
    out.append(TextLine(m, 88, sheet.headline, "bold", headline_pt, WHITE))

    # case number and date
    out.append(TextLine(m, 140, "CASE NUMBER", "bold", 9, GREY))
    out.append(TextLine(w - m, 140, "ISSUED", "bold", 9, GREY, "right"))
    case_pt = _fit_size(fonts, sheet.case_number, "bold", 22, 11, content_w * 0.66)
    out.append(TextLine(m, 165, sheet.case_number, "bold", case_pt, INK))
    out.append(TextLine(w - m, 165, issued, "regular", 14, INK, "right"))
    out.append(Box(m, 178, content_w, 0.8, fill=RULE))
    top = 192.0

    # bottom up: footer, contact box
    footer_pt, footer_lead = 7.0, 9.5
    footer_lines = [
        ln for text in footer for ln in _wrap(fonts, text, "regular", footer_pt, content_w)
    ]
    first_footer = h - 22 - (len(footer_lines) - 1) * footer_lead
    for i, line in enumerate(footer_lines):
        out.append(TextLine(m, first_footer + i * footer_lead, line, "regular", footer_pt, GREY))
    footer_top = first_footer - footer_pt - 4 if footer_lines else h - m

    # the contact on one line if it fits at 13 pt or more (a phone number must not break),
    # else wrapped at 16 pt down to 12 pt in at most three lines
    contact_w = content_w - 32
    contact_pt = 18.0
    while contact_pt > 13 and fonts.width_pt(sheet.contact, "bold", contact_pt) > contact_w:
        contact_pt -= 0.5
    contact_lines = _wrap(fonts, sheet.contact, "bold", contact_pt, contact_w)
    if len(contact_lines) > 1:
        contact_pt = 16.0
        contact_lines = _wrap(fonts, sheet.contact, "bold", contact_pt, contact_w)
        while len(contact_lines) > 3 and contact_pt > 12:
            contact_pt -= 1
            contact_lines = _wrap(fonts, sheet.contact, "bold", contact_pt, contact_w)
    contact_lead = contact_pt * 1.3
    contact_h = 18 + 11 + 10 + len(contact_lines) * contact_lead + 12
    contact_top = footer_top - 12 - contact_h
    out.append(Box(m, contact_top, content_w, contact_h, fill=NAVY))
    out.append(TextLine(m + 16, contact_top + 18 + 9, CONTACT_LEAD, "regular", 11, WHITE))
    for i, line in enumerate(contact_lines):
        baseline = contact_top + 18 + 11 + 10 + contact_pt * 0.8 + i * contact_lead
        out.append(TextLine(m + 16, baseline, line, "bold", contact_pt, AMBER))

    # the notice, below the face
    notice_lines = _wrap(fonts, NOTICE_TEXT, "regular", 9.5, content_w - 28)
    notice_h = 14 + 15 + 8 + len(notice_lines) * 12.5 + 6

    # the description: as many lines as it needs, at the largest size that leaves the face
    # at least MIN_FACE_PT
    attribute_text = describe_attributes(sheet.attributes)
    if attribute_text:
        attribute_text = f"{SPECIFIED_LEAD} {attribute_text}"
    for body_pt in (11.0, 10.0, 9.0):
        lead = body_pt * 1.36
        body: list[tuple[str, str]] = []
        if attribute_text:
            body += [
                ("bold", ln) for ln in _wrap(fonts, attribute_text, "bold", body_pt, content_w)
            ]
        text = sheet.description or ("" if attribute_text else "No further description was given.")
        for paragraph in text.split("\n") if text else []:
            wrapped = _wrap(fonts, paragraph, "regular", body_pt, content_w)
            body += [("regular", ln) for ln in wrapped] or [("regular", "")]
        description_h = 22 + len(body) * lead
        room = contact_top - 14 - description_h - 16 - notice_h - 14 - top
        if room >= MIN_FACE_PT:
            break
    else:
        raise AppealSheetError(
            f"the description needs {len(body)} lines, more than one A4 page holds with a "
            f"readable face; shorten it (about {max(200, len(sheet.description) * 2 // 3)} "
            "characters fit)."
        )
    face_pt = min(room, MAX_FACE_PT)

    face_box = Box((w - face_pt) / 2, top, face_pt, face_pt, stroke=GREY, stroke_pt=0.75)
    out.append(Picture(face_box.x, face_box.y, face_pt, face_pt, face))
    out.append(face_box)

    notice_top = top + face_pt + 14
    out.append(Box(m, notice_top, content_w, notice_h, fill=NOTICE_FILL))
    out.append(Box(m, notice_top, 6, notice_h, fill=NOTICE_EDGE))
    title_pt = _fit_size(fonts, NOTICE_TITLE, "bold", 15, 10, content_w - 28)
    out.append(
        TextLine(m + 20, notice_top + 14 + title_pt * 0.8, NOTICE_TITLE, "bold", title_pt, INK)
    )
    for i, line in enumerate(notice_lines):
        out.append(
            TextLine(m + 20, notice_top + 14 + 15 + 12 + i * 12.5, line, "regular", 9.5, INK)
        )

    y = notice_top + notice_h + 16
    out.append(TextLine(m, y + 12, "DESCRIPTION", "bold", 10, GREY))
    y += 22
    for i, (weight, line) in enumerate(body):
        out.append(TextLine(m, y + body_pt + i * lead, line, weight, body_pt, INK))
    return PageLayout(w, h, fonts, tuple(out), face_box)


def describe_attributes(attributes: Mapping[str, str]) -> str:
    """'Skin tone: medium · Hair colour: dark brown · Gender: male' for the public.

    A hex colour (from the colour picker) is printed as the nearest named shade ("close to
    olive"): "#b07e58" means nothing on a poster.
    """
    parts = []
    for key, label in ATTRIBUTE_LABELS.items():
        value = attributes.get(key, "").strip()
        if not value:
            continue
        if value.startswith("#") and key in ("skin", "hair_color"):
            value = "close to " + _nearest_name(
                value, SKIN_TONES if key == "skin" else HAIR_COLOURS
            )
        parts.append(f"{label}: {value.replace('-', ' ')}")
    return "  \u00b7  ".join(parts)


def _nearest_name(hex_colour: str, palette: Mapping[str, tuple[int, int, int]]) -> str:
    digits = hex_colour.lstrip("#")
    try:
        rgb = tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return hex_colour
    return min(palette, key=lambda name: sum((a - b) ** 2 for a, b in zip(palette[name], rgb)))


def _fit_size(
    fonts: SheetFonts, text: str, weight: str, max_pt: float, min_pt: float, width_pt: float
) -> float:
    """The largest size (0.5 pt steps) at which ``text`` fits ``width_pt``; at least ``min_pt``."""
    size = max_pt
    while size > min_pt and fonts.width_pt(text, weight, size) > width_pt:
        size -= 0.5
    if fonts.width_pt(text, weight, size) > width_pt:
        raise AppealSheetError(
            f"{text[:40]!r}... is too long for one line of the sheet; shorten it."
        )
    return size


def _wrap(fonts: SheetFonts, text: str, weight: str, size_pt: float, width_pt: float) -> list[str]:
    """Greedy word wrap by measured width; words longer than a line are broken."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        while fonts.width_pt(word, weight, size_pt) > width_pt:  # e.g. a long URL
            cut = max(1, _longest_prefix(fonts, word, weight, size_pt, width_pt))
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{current} {word}" if current else word
        if fonts.width_pt(candidate, weight, size_pt) <= width_pt:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def _longest_prefix(
    fonts: SheetFonts, word: str, weight: str, size_pt: float, width_pt: float
) -> int:
    for cut in range(len(word), 0, -1):
        if fonts.width_pt(word[:cut], weight, size_pt) <= width_pt:
            return cut
    return 1


__all__ = [
    "AppealSheet",
    "Box",
    "PageLayout",
    "Picture",
    "TextLine",
    "describe_attributes",
    "layout_sheet",
]
