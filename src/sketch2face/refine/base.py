"""The ``Refiner`` role: something that turns a generated face into a sharper, larger one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cv2
import numpy as np


@runtime_checkable
class Refiner(Protocol):
    """Turns an HxWx3 uint8 RGB face into a refined (usually 2x larger) HxWx3 uint8 RGB face."""

    name: str

    def refine(self, face_u8: np.ndarray) -> np.ndarray:
        """Refine one face; must never lose the image (fall back to an upscaled copy)."""
        ...


@dataclass(frozen=True)
class RefineResult:
    """One refined face and how it was made.

    Attributes:
        image_u8: the refined face, (upscale*H)x(upscale*W)x3 uint8 RGB.
        face_found: True when landmarks were found and the face was aligned to the template.
        fell_back: True when the network failed and ``image_u8`` is only the bicubic upscale.
        timings_ms: "align", "restore", "paste" and "total" for this face.
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
