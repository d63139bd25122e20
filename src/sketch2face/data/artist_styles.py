"""The artist drawing styles a photo -> sketch model is conditioned on (FS2K's three styles)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sketch2face.errors import ConfigError

#: manifest ``style`` values of FS2K's artist sketches, in condition-vector order
ARTIST_STYLES = ("fs2k_style0", "fs2k_style1", "fs2k_style2")


def style_index(style: str) -> int:
    """Position of an artist style in the condition vector ("fs2k_style1" or "1" -> 1)."""
    name = style if style.startswith("fs2k_style") else f"fs2k_style{style}"
    if name not in ARTIST_STYLES:
        raise ConfigError(
            f"unknown artist style {style!r}; choose one of {', '.join(ARTIST_STYLES)} (or 0, 1, 2)"
        )
    return ARTIST_STYLES.index(name)


def style_vectors(styles: Sequence[str]) -> np.ndarray:
    """(N, 3) float32 one-hot condition vectors for the given styles."""
    out = np.zeros((len(styles), len(ARTIST_STYLES)), dtype=np.float32)
    for row, style in enumerate(styles):
        out[row, style_index(style)] = 1.0
    return out
