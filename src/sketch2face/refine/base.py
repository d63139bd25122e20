"""The ``Refiner`` role: something that turns a stage-one face into a more photographic one.

Two refiners implement it: the project's own (``refine.own``, 256x256 in and out, the default
second stage) and GFPGAN (``refine.gfpgan``, optional weights, 2x larger: 512x512). Whatever
shows or stores a refined face copes with either size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cv2
import numpy as np


@runtime_checkable
class Refiner(Protocol):
    """Turns an HxWx3 uint8 RGB face into a refined HxWx3 uint8 RGB face (the same size for the
    project's refiner, 2x larger for GFPGAN)."""

    name: str

    def refine(self, face_u8: np.ndarray) -> np.ndarray:
        """Refine one face; must never lose the image (on failure, return the unrefined face,
        resized to the refiner's output size)."""
        ...


@dataclass(frozen=True)
class RefineResult:
    """One refined face and how it was made.

    Attributes:
        image_u8: the refined face, HxWx3 uint8 RGB (GFPGAN: 2x the input's size; the project's
            refiner: the input's size).
        face_found: True when the face was located: GFPGAN found landmarks and aligned the face
            to its template; the project's refiner needs no alignment (always True).
        fell_back: True when the network failed and ``image_u8`` is only the unrefined face
            (GFPGAN: its bicubic upscale).
        timings_ms: "total" for this face (GFPGAN adds "align", "restore" and "paste").
    """

    image_u8: np.ndarray
    face_found: bool
    fell_back: bool
    timings_ms: dict[str, float] = field(default_factory=dict)


def upscale_bicubic(image_u8: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic ``factor``x upscale (the background every refiner pastes onto)."""
    if factor == 1:
        return image_u8.copy()
    height, width = image_u8.shape[:2]
    return cv2.resize(image_u8, (width * factor, height * factor), interpolation=cv2.INTER_CUBIC)


class NoRefiner:
    """A refiner that only resizes (bicubic by ``upscale``); useful as an explicit 'off' choice."""

    name = "none"

    def __init__(self, upscale: int = 1) -> None:
        if upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {upscale}")
        self.upscale = upscale

    def refine(self, face_u8: np.ndarray) -> np.ndarray:
        """Return the face (bicubic-upscaled when ``upscale`` > 1)."""
        return upscale_bicubic(np.ascontiguousarray(face_u8), self.upscale)


def refine_detailed(refiner: Refiner, face_u8: np.ndarray) -> RefineResult:
    """Refine one face with any refiner and say whether it fell back: the refiner's own
    ``refine_detailed`` when it has one, else its ``refine`` (which never falls back)."""
    detailed = getattr(refiner, "refine_detailed", None)
    if callable(detailed):
        result = detailed(face_u8)
        if isinstance(result, RefineResult):
            return result
    return RefineResult(refiner.refine(face_u8), face_found=True, fell_back=False)
