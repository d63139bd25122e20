"""Degrade real face photos to look like stage one's faces: the refiner's training inputs (issue 22).

Stage one (the sketch -> photo U-Net) leaves the same artefacts on every face, and the refiner
learns to undo exactly these, on real photos of the person, so every detail it puts back comes
from the face itself and never from another person's photo:

* soft, painted skin: strong low-pass (area down / bicubic up), Gaussian blur and edge-preserving
  (bilateral) smoothing;
* the sketch's pencil lines left on the skin: the photo's own aligned sketch (artist or OpenCV)
  multiplied in as thin dark lines, a few faded out, with a faint light rim;
* red blotches and pink smears: low-frequency chroma fields and a warm cast on a less saturated face;
* rainbow backgrounds: the background replaced by a blurred photo mixed with smooth random hues;
* a faint frame a few pixels inside the border;
* JPEG blocks and a little sensor noise.

Everything is drawn from a ``numpy.random.Generator`` so a training step is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DegradeConfig:
    """Chances and ranges of each artefact (defaults: measured by eye against stage one's sheet)."""

    downscale: tuple[float, float] = (2.0, 5.0)  # area down by this factor, bicubic back up
    blur_sigma: tuple[float, float] = (0.5, 2.0)  # then a Gaussian blur
    p_bilateral: float = 0.6  # edge-preserving smoothing (the "oil paint" look)
    # Sketch lines left on the face, matched to stage one's faces of 48 FS2K val sketches
    # (scripts/refiner_degrade_sheet.py; darkness = levels below the image's 15-px median on the
    # sketch's black strokes, away from the photo's own edges). Stage one keeps most strokes (face
    # contour, nose sides, lips, collar lines): face 5.7, chin/neck/collar 4.4, as narrow as the
    # pencil's black core with a light rim beside it (-1.1). The first overlay drew them too faint
    # on the face (3.7) and too wide (+0.7 beside); these settings: 5.7, 6.6 and -1.3.
    p_lines: float = 0.9
    line_alpha: tuple[float, float] = (0.3, 0.8)  # darkening where the sketch is black
    line_gamma: float = 2.0  # ink ** gamma: drops the pencil's grey fringe, keeps the black core
    line_blur: tuple[float, float] = (0.3, 0.8)  # Gaussian sigma of the strokes (px at 256)
    line_keep: float = 0.7  # offset of the smooth fade field in [-1, 1]: higher keeps more strokes
    line_halo: tuple[float, float] = (0.1, 0.5)  # light rim 1-3 px beside the strokes
    p_blotches: float = 0.7  # red blotches / pink skin
    blotch_levels: tuple[float, float] = (6.0, 28.0)
    p_background: float = 0.7  # rainbow / smeared background
    p_frame: float = 0.35  # faint frame near the border
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (35, 90)
    noise_levels: tuple[float, float] = (0.0, 3.0)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _smooth_field(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """A smooth random field in [-1, 1]: ``cells`` x ``cells`` values, bicubic up to ``size``."""
    coarse = rng.uniform(-1.0, 1.0, size=(cells, cells, channels)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return field.reshape(size, size, channels)


def face_ellipse_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float mask, 1 on an aligned face/head (random ellipse near the centre), feathered."""
    mask = np.zeros((size, size), np.float32)
    centre = (
        int(size * rng.uniform(0.46, 0.54)),
        int(size * rng.uniform(0.46, 0.56)),
    )
    axes = (int(size * rng.uniform(0.30, 0.42)), int(size * rng.uniform(0.40, 0.52)))
    cv2.ellipse(mask, centre, axes, 0.0, 0.0, 360.0, 1.0, thickness=-1)
    sigma = size * rng.uniform(0.03, 0.08)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def _soften(image: np.ndarray, rng: np.random.Generator, cfg: DegradeConfig) -> np.ndarray:
    size = image.shape[0]
    if rng.random() < cfg.p_bilateral:
        for _ in range(int(rng.integers(1, 3))):
            image = cv2.bilateralFilter(image, 9, _uniform(rng, (40.0, 90.0)), 7.0)
    small = max(8, int(round(size / _uniform(rng, cfg.downscale))))
    image = cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(image, (0, 0), _uniform(rng, cfg.blur_sigma))


def _blotches(
    image: np.ndarray, face: np.ndarray, rng: np.random.Generator, cfg: DegradeConfig
) -> np.ndarray:
    size = image.shape[0]
    out = image.astype(np.float32)
    grey = out.mean(axis=2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(0.6, 1.1)  # washed-out or slightly loud colour
    warm = np.array([1.0, -0.45, -0.35], np.float32) * rng.uniform(0.0, 12.0)
    field = np.clip(_smooth_field(rng, size, int(rng.integers(4, 9)), 1), 0.0, 1.0)
    blotch = field * np.array([1.0, -0.6, -0.5], np.float32) * _uniform(rng, cfg.blotch_levels)
    out += face[..., None] * (warm + blotch)
    return np.clip(out, 0.0, 255.0).astype(np.uint8)


def _background(image: np.ndarray, face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    smeared = cv2.GaussianBlur(image, (0, 0), size * rng.uniform(0.03, 0.08)).astype(np.float32)
    hues = (_smooth_field(rng, size, int(rng.integers(2, 5)), 3) * 0.5 + 0.5) * 255.0
    mix = rng.uniform(0.15, 0.6)
    back = (1.0 - mix) * smeared + mix * hues
    keep = face[..., None]
    out = keep * image.astype(np.float32) + (1.0 - keep) * back
    return np.clip(out, 0.0, 255.0).astype(np.uint8)


def _lines(
    image: np.ndarray, sketch: np.ndarray, rng: np.random.Generator, cfg: DegradeConfig
) -> np.ndarray:
    size = image.shape[0]
    grey = sketch.astype(np.float32).mean(axis=2) / 255.0 if sketch.ndim == 3 else sketch / 255.0
    ink = (1.0 - grey) ** cfg.line_gamma
    # stage one keeps most strokes and loses some: fade the ink with a smooth random mask
    field = _smooth_field(rng, size, int(rng.integers(3, 7)), 1)[..., 0]
    ink = ink * np.clip(field + cfg.line_keep, 0.0, 1.0)
    ink = cv2.GaussianBlur(ink, (0, 0), _uniform(rng, cfg.line_blur))
    alpha = _uniform(rng, cfg.line_alpha)
    out = image.astype(np.float32) * (1.0 - alpha * ink[..., None])
    # U-Net ringing: a slightly lighter rim where the blurred stroke reaches beyond the stroke
    rim = np.clip(cv2.GaussianBlur(ink, (0, 0), 2.0) - ink, 0.0, 1.0)
    out += _uniform(rng, cfg.line_halo) * rim[..., None] * (255.0 - out)
    return np.clip(out, 0.0, 255.0).astype(np.uint8)


def _frame(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    frame = np.zeros((size, size), np.float32)
    inset = int(rng.integers(1, 8))
    cv2.rectangle(
        frame, (inset, inset), (size - 1 - inset, size - 1 - inset), 1.0, int(rng.integers(1, 3))
    )
    frame = cv2.GaussianBlur(frame, (0, 0), 0.8)
    delta = rng.uniform(-30.0, 30.0)
    out = image.astype(np.float32) + frame[..., None] * delta
    return np.clip(out, 0.0, 255.0).astype(np.uint8)


def _jpeg(image: np.ndarray, rng: np.random.Generator, cfg: DegradeConfig) -> np.ndarray:
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # never expected; the clean image is still a valid input
        return image
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])


def degrade_like_stage_one(
    photo_u8: np.ndarray,
    sketch_u8: np.ndarray | None,
    rng: np.random.Generator,
    cfg: DegradeConfig = DegradeConfig(),
) -> np.ndarray:
    """One aligned (H, W, 3) uint8 RGB photo -> the same face with stage one's artefacts.

    ``sketch_u8`` is the photo's aligned sketch (any of the dataset's: artist, OpenCV, drawn by the
    photo -> sketch model); its strokes become the lines left on the skin. None = no lines.
    """
    if photo_u8.ndim != 3 or photo_u8.shape[2] != 3 or photo_u8.dtype != np.uint8:
        raise ValueError(
            f"expected an (H, W, 3) uint8 photo, got {photo_u8.shape} {photo_u8.dtype}"
        )
    if photo_u8.shape[0] != photo_u8.shape[1]:
        raise ValueError(f"expected a square aligned photo, got {photo_u8.shape[:2]}")
    if sketch_u8 is not None and sketch_u8.shape[:2] != photo_u8.shape[:2]:
        raise ValueError(
            f"sketch {sketch_u8.shape[:2]} and photo {photo_u8.shape[:2]} differ in size"
        )
    size = photo_u8.shape[0]
    face = face_ellipse_mask(rng, size)
    image = np.ascontiguousarray(photo_u8)
    if rng.random() < cfg.p_background:
        image = _background(image, face, rng)
    image = _soften(image, rng, cfg)
    if rng.random() < cfg.p_blotches:
        image = _blotches(image, face, rng, cfg)
    if sketch_u8 is not None and rng.random() < cfg.p_lines:
        image = _lines(image, sketch_u8, rng, cfg)
    if rng.random() < cfg.p_frame:
        image = _frame(image, rng)
    if rng.random() < cfg.p_jpeg:
        image = _jpeg(image, rng, cfg)
    sigma = _uniform(rng, cfg.noise_levels)
    if sigma > 0:
        noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
        image = np.clip(noisy, 0.0, 255.0).astype(np.uint8)
    return image


def degrade_batch(
    photos_u8: np.ndarray,
    sketches_u8: np.ndarray | None,
    seed: int,
    cfg: DegradeConfig = DegradeConfig(),
) -> np.ndarray:
    """(N, H, W, 3) uint8 photos (and their aligned sketches) -> degraded copies; one seed per batch."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            degrade_like_stage_one(photo, None if sketches_u8 is None else sketches_u8[i], rng, cfg)
            for i, photo in enumerate(photos_u8)
        ]
    )
