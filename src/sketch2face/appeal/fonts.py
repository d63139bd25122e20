"""The sheet's two fonts (regular, bold): one TrueType pair shared by the PDF and PNG renderers.

Both renderers measure and draw with the same files, so the layout computed once fits in both.
Preference: DejaVu Sans (wide Unicode coverage) from Debian's fonts-dejavu or matplotlib's copy,
else Bitstream Vera, which ships inside reportlab (a dependency) and so is always there.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from sketch2face.errors import AppealSheetError

#: units per em at which widths are measured (then scaled linearly)
_MEASURE_SIZE = 1000


@dataclass(frozen=True)
class SheetFonts:
    """Paths of the regular and bold TrueType files."""

    regular: Path
    bold: Path

    def path(self, weight: str) -> Path:
        """The file for ``"regular"`` or ``"bold"``."""
        return self.bold if weight == "bold" else self.regular

    def width_pt(self, text: str, weight: str, size_pt: float) -> float:
        """Advance width of ``text`` set at ``size_pt`` points, in points."""
        return _measuring_font(str(self.path(weight))).getlength(text) * size_pt / _MEASURE_SIZE


@lru_cache(maxsize=8)
def _measuring_font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _MEASURE_SIZE)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def find_fonts() -> SheetFonts:
    """The best available regular/bold pair (see the module docstring)."""
    candidates: list[tuple[Path, Path]] = [
        (
            Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
            Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
        )
    ]
    if (mpl := _package_dir("matplotlib")) is not None:
        ttf = mpl / "mpl-data" / "fonts" / "ttf"
        candidates.append((ttf / "DejaVuSans.ttf", ttf / "DejaVuSans-Bold.ttf"))
    if (rl := _package_dir("reportlab")) is not None:
        candidates.append((rl / "fonts" / "Vera.ttf", rl / "fonts" / "VeraBd.ttf"))
    for regular, bold in candidates:
        if regular.is_file() and bold.is_file():
            return SheetFonts(regular, bold)
    raise AppealSheetError(
        "no TrueType font for the appeal sheet: reinstall reportlab (it ships Vera.ttf) or "
        "install Debian's fonts-dejavu-core."
    )
