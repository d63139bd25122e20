"""OpenCV photo -> sketch synthesis, and the ink/paper normalisation every sketch goes through.

Naming: ``*_u8`` is an HxWx3 uint8 RGB array; ``gray_u8`` an HxW uint8 array.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import cv2
import numpy as np

#: Darkest strokes are stretched to black: this percentile of the gray levels becomes 0.
INK_PERCENTILE = 0.5
#: The paper level: this percentile of the gray levels becomes 255 (most of a sketch is paper).
PAPER_PERCENTILE = 90.0
#: After the stretch, anything at least this bright is paper and set to pure white.
WHITE_THRESHOLD = 232
#: The stretch never amplifies contrast more than 255/MIN_INK_RANGE (a blank page stays blank).
MIN_INK_RANGE = 48.0


def _to_gray(image_u8: np.ndarray) -> np.ndarray:
    if image_u8.ndim == 2:
        return image_u8
    return cv2.cvtColor(np.ascontiguousarray(image_u8), cv2.COLOR_RGB2GRAY)


def _gray_to_rgb(gray_u8: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray_u8[:, :, None], 3, axis=2))


def _equalized_gray(photo_u8: np.ndarray) -> np.ndarray:
    """Gray with local contrast equalised (CLAHE), so dark or flat photos still give strokes."""
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
    return clahe.apply(_to_gray(photo_u8))


def pencil_sketch(photo_u8: np.ndarray, *, blur_ksize: int = 21) -> np.ndarray:
    """Pencil sketch by colour dodge: gray / (255 - blur(255 - gray)) * 256 (the reference recipe).

    The gray image is CLAHE-equalised first so low-contrast photos do not give near-blank sketches.
    """
    gray = _equalized_gray(photo_u8)
    inverted = 255 - gray
    blurred = cv2.GaussianBlur(inverted, (blur_ksize, blur_ksize), 0)
    sketch = cv2.divide(gray, 255 - blurred, scale=256)
    return _gray_to_rgb(sketch)


def line_sketch(
    photo_u8: np.ndarray,
    *,
    sigma: float = 1.2,
    k: float = 1.6,
    tau: float = 0.985,
    epsilon: float = -0.004,
    phi: float = 120.0,
) -> np.ndarray:
    """Line drawing by XDoG (Winnemoeller et al. 2012): soft-thresholded difference of Gaussians.

    Gives darker, drawn-looking contour strokes than the pencil dodge, with flat regions left white.
    """
    gray = _equalized_gray(photo_u8).astype(np.float32) / 255.0
    gray = cv2.bilateralFilter(gray, 5, 0.1, 3)  # keep contours, drop skin texture
    narrow = cv2.GaussianBlur(gray, (0, 0), sigma)
    wide = cv2.GaussianBlur(gray, (0, 0), sigma * k)
    dog = narrow - tau * wide
    lines = np.where(dog >= epsilon, 1.0, 1.0 + np.tanh(phi * (dog - epsilon)))
    return _gray_to_rgb(np.clip(lines * 255.0 + 0.5, 0, 255).astype(np.uint8))


#: Synthetic sketch styles: name -> photo_u8 -> sketch_u8 (not yet normalised).
SKETCH_STYLES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "pencil": pencil_sketch,
    "line": line_sketch,
}


def pick_style(item_id: str, styles: list[str] | tuple[str, ...]) -> str:
    """Choose one style per item, deterministically from a hash of its id (not Python's hash())."""
    if not styles:
        raise ValueError("at least one sketch style is needed")
    digest = hashlib.sha256(f"style:{item_id}".encode()).digest()
    return styles[int.from_bytes(digest[:4], "big") % len(styles)]


def synthesize_sketch(photo_u8: np.ndarray, style: str) -> np.ndarray:
    """Photo -> normalised sketch in the named style."""
    try:
        fn = SKETCH_STYLES[style]
    except KeyError:
        raise ValueError(
            f"unknown sketch style {style!r}; choose from {', '.join(SKETCH_STYLES)}"
        ) from None
    return normalize_sketch(fn(photo_u8))


def flatten_illumination(
    gray_u8: np.ndarray, *, kernel_px: int = 31, blur_sigma: float = 12.0
) -> np.ndarray:
    """Remove uneven lighting (a phone photo of paper) by dividing by the local paper level.

    The paper level is a grey-level dilation (local maximum over ``kernel_px``, wider than any
    pencil stroke, so strokes vanish and only paper remains) smoothed by a Gaussian; dividing by it
    makes shadowed and lit paper equally white while strokes keep their darkness relative to the
    paper around them. Tuned for 256 px crops.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel_px, kernel_px))
    paper = cv2.dilate(gray_u8, kernel).astype(np.float32)
    paper = np.maximum(cv2.GaussianBlur(paper, (0, 0), blur_sigma), 32.0)
    flat = gray_u8.astype(np.float32) * (255.0 / paper)
    return np.clip(flat + 0.5, 0, 255).astype(np.uint8)


def normalize_sketch(image_u8: np.ndarray) -> np.ndarray:
    """Gray 3-channel sketch with comparable ink darkness and pure-white paper.

    Percentile level stretch (darkest strokes -> black, paper level -> white), then everything
    brighter than :data:`WHITE_THRESHOLD` is set to 255. Deterministic; HxWx3 (or HxW) uint8 in,
    HxWx3 uint8 out.
    """
    gray = _to_gray(image_u8).astype(np.float32)
    ink, paper = np.percentile(gray, [INK_PERCENTILE, PAPER_PERCENTILE])
    paper = max(float(paper), 1.0)
    ink = min(float(ink), paper - MIN_INK_RANGE)
    stretched = (gray - ink) * (255.0 / (paper - ink))
    out = np.clip(stretched + 0.5, 0, 255).astype(np.uint8)
    out[out >= WHITE_THRESHOLD] = 255
    return _gray_to_rgb(out)
