"""Sketch synthesis, ink normalisation and illumination flattening."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sketch2face.data.sketchify import (
    SKETCH_STYLES,
    WHITE_THRESHOLD,
    flatten_illumination,
    line_sketch,
    normalize_sketch,
    pencil_sketch,
    pick_style,
    synthesize_sketch,
)
from sketch2face.imaging import load_image


@pytest.fixture(scope="module")
def face_photo_u8(shared_dir):
    path = sorted((shared_dir / "data" / "fixtures" / "celeba").glob("*.jpg"))[0]
    return cv2.resize(load_image(path), (256, 256), interpolation=cv2.INTER_AREA)


def _drawn_page(paper: int = 235, ink: int = 150) -> np.ndarray:
    """A grey page with a faint drawn oval and a few strokes, like a light pencil sketch."""
    page = np.full((256, 256), paper, np.uint8)
    cv2.ellipse(page, (128, 128), (70, 95), 0, 0, 360, ink, 3)
    cv2.line(page, (100, 110), (120, 110), ink, 2)
    cv2.line(page, (136, 110), (156, 110), ink, 2)
    cv2.line(page, (110, 170), (146, 170), ink, 2)
    return page


def test_normalize_sketch_makes_paper_white_and_ink_black():
    out = normalize_sketch(_drawn_page())
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 0], out[:, :, 1]) and np.array_equal(out[:, :, 1], out[:, :, 2])
    assert (out[:, :, 0] == 255).mean() > 0.9  # the grey paper became pure white
    assert out.min() < 30  # faint 150-grey strokes stretched to near black
    assert out[10, 10, 0] == 255


def test_normalize_sketch_keeps_blank_page_blank_and_is_deterministic():
    blank = np.full((64, 64, 3), 240, np.uint8)
    blank[5, 5] = 236  # sensor noise must not be stretched into ink
    out = normalize_sketch(blank)
    assert out.min() >= WHITE_THRESHOLD - 40
    page = _drawn_page()
    assert np.array_equal(normalize_sketch(page), normalize_sketch(page))


def test_flatten_illumination_removes_a_shadow_gradient():
    page = _drawn_page(paper=240, ink=90).astype(np.float32)
    shade = np.linspace(0.45, 1.0, 256, dtype=np.float32)[None, :]  # a phone shadow left->right
    photographed = (page * shade).astype(np.uint8)
    naive = normalize_sketch(photographed)[:, :, 0]
    flat = normalize_sketch(flatten_illumination(photographed))[:, :, 0]
    left_paper = (slice(5, 60), slice(4, 30))
    assert (flat[left_paper] == 255).mean() > 0.95  # shadowed paper is white after flattening
    assert (naive[left_paper] == 255).mean() < 0.5  # ...and would not be without it
    assert flat[128, 128 - 70] < 100  # the stroke in the shadow is still dark


@pytest.mark.parametrize("style", sorted(SKETCH_STYLES))
def test_synthesized_sketch_has_white_paper_and_dark_strokes(face_photo_u8, style):
    sketch = synthesize_sketch(face_photo_u8, style)
    assert sketch.shape == (256, 256, 3) and sketch.dtype == np.uint8
    gray = sketch[:, :, 0]
    assert np.array_equal(gray, sketch[:, :, 2])
    assert (gray == 255).mean() > 0.3, "paper should be pure white"
    assert (gray < 64).mean() > 0.01, "there should be dark strokes"
    assert np.percentile(gray, 1) < 40


def test_raw_styles_differ_and_pencil_matches_the_dodge_formula(face_photo_u8):
    pencil = pencil_sketch(face_photo_u8)
    line = line_sketch(face_photo_u8)
    assert pencil.shape == line.shape == face_photo_u8.shape
    assert np.abs(pencil.astype(int) - line.astype(int)).mean() > 5
    flat = np.full((32, 32, 3), 128, np.uint8)
    assert pencil_sketch(flat).min() >= 250  # dodge of a flat area is white


def test_pick_style_is_deterministic_and_uses_every_style():
    styles = ("pencil", "line")
    picks = [pick_style(f"celeba-{i}", styles) for i in range(200)]
    assert picks == [pick_style(f"celeba-{i}", styles) for i in range(200)]
    assert set(picks) == set(styles)
    assert 0.3 < picks.count("pencil") / len(picks) < 0.7
    with pytest.raises(ValueError):
        synthesize_sketch(np.zeros((8, 8, 3), np.uint8), "watercolour")
