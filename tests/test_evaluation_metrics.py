"""Metrics: SSIM matches tf.image.ssim's definition, PSNR cap, dlib identity embedding, rank-1."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.signal import convolve2d

from sketch2face.evaluation.metrics import (
    DLIB_SAME_PERSON_DISTANCE,
    EMBEDDING_DIM,
    PSNR_MAX_DB,
    FaceEmbedder,
    dark_line_strength,
    default_embedder,
    drawn_lines,
    face_ellipse_mask,
    identity_distance,
    identity_similarity,
    is_same_person,
    psnr,
    rank1,
    ssim,
    ssim_gray,
    ssim_regions,
)
from sketch2face.imaging import load_image


def _tf_style_ssim(a_u8: np.ndarray, b_u8: np.ndarray) -> float:
    """Independent re-implementation of tf.image.ssim(max_val=255): 11x11 Gaussian, VALID conv."""
    coords = np.arange(11) - 5.0
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    g /= g.sum()
    window = np.outer(g, g)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    per_channel = []
    for ch in range(3):
        x = a_u8[:, :, ch].astype(np.float64)
        y = b_u8[:, :, ch].astype(np.float64)

        def f(z: np.ndarray) -> np.ndarray:
            return convolve2d(z, window, mode="valid")

        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        per_channel.append(s.mean())
    return float(np.mean(per_channel))


@pytest.fixture(scope="module")
def celeba(shared_dir: Path) -> dict[str, np.ndarray]:
    folder = shared_dir / "data/fixtures/celeba"
    return {p.stem: load_image(p) for p in sorted(folder.glob("*.jpg"))}


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return default_embedder()


def test_ssim_matches_the_tf_image_ssim_definition(celeba: dict[str, np.ndarray]) -> None:
    images = list(celeba.values())
    a, b = images[0], images[5]
    assert ssim(a, b) == pytest.approx(_tf_style_ssim(a, b), abs=1e-6)
    blurred = cv2.GaussianBlur(a, (0, 0), 2)
    assert ssim(a, blurred) == pytest.approx(_tf_style_ssim(a, blurred), abs=1e-6)


def test_identical_images_give_ssim_1_and_capped_psnr(celeba: dict[str, np.ndarray]) -> None:
    a = next(iter(celeba.values()))
    assert ssim(a, a.copy()) == pytest.approx(1.0)
    assert ssim_gray(a, a.copy()) == pytest.approx(1.0)
    assert psnr(a, a.copy()) == PSNR_MAX_DB
    assert math.isfinite(psnr(a, a))


def test_shift_and_noise_lower_ssim_and_psnr_has_the_textbook_value(
    celeba: dict[str, np.ndarray],
) -> None:
    a = next(iter(celeba.values()))
    shifted = np.roll(a, 4, axis=1)
    assert ssim(a, shifted) < 0.9
    assert ssim_gray(a, shifted) < 0.9
    assert -1.0 <= ssim(a, shifted) <= 1.0
    flat = np.full((64, 64, 3), 100, np.uint8)
    assert psnr(flat, flat + 10) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)
    rng = np.random.default_rng(0)
    noisy = np.clip(a.astype(int) + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, noisy) < ssim(a, cv2.GaussianBlur(a, (3, 3), 0.5))
    assert ssim_gray(a, noisy) != pytest.approx(ssim(a, noisy), abs=1e-4)


def test_region_ssim_splits_the_same_map_into_face_and_rest(
    celeba: dict[str, np.ndarray],
) -> None:
    a = cv2.resize(next(iter(celeba.values())), (256, 256))
    mask = face_ellipse_mask(256)
    # the face sits in the middle of the crop, a third of the frame, clear of the corners
    assert mask[150, 128] and not mask[10, 10] and not mask[250, 128]
    assert 0.25 < mask.mean() < 0.4
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, a.shape, dtype=np.uint8)
    # the photo inside the ellipse, noise around it: the face scores ~1, the rest near 0
    face_only = np.where(mask[:, :, None], a, noise)
    whole, face, rest = ssim_regions(face_only, a)
    assert whole == pytest.approx(ssim(face_only, a), abs=1e-12)
    assert face > 0.9 and rest < 0.2 and rest < whole < face
    # the regions partition the valid region: the whole is their area-weighted mean
    valid_face = mask[5:-5, 5:-5].mean()
    assert whole == pytest.approx(valid_face * face + (1 - valid_face) * rest, abs=1e-9)
    # and the other way round
    _, face2, rest2 = ssim_regions(np.where(mask[:, :, None], noise, a), a)
    assert face2 < 0.2 and rest2 > 0.9
    with pytest.raises(ValueError, match="square"):
        ssim_regions(a[:200], a[:200])


def test_drawn_lines_count_strokes_the_photo_lacks(celeba: dict[str, np.ndarray]) -> None:
    photo = next(iter(celeba.values()))
    assert drawn_lines(photo, photo) == 0.0
    drawn = photo.copy()
    cv2.line(drawn, (40, 60), (200, 60), (20, 20, 20), 2)  # a pencil outline across the face
    cv2.line(drawn, (60, 100), (60, 220), (20, 20, 20), 1)
    softened = cv2.GaussianBlur(photo, (0, 0), 2.0)  # losing detail draws nothing
    assert drawn_lines(drawn, photo) > 5 * max(drawn_lines(softened, photo), 0.05)
    on_line = np.zeros(photo.shape[:2], np.uint8)
    cv2.line(on_line, (40, 60), (200, 60), 1, 2)
    line_pixels = on_line.astype(bool)
    gained = dark_line_strength(drawn)[line_pixels] - dark_line_strength(photo)[line_pixels]
    assert gained.mean() > 30  # grey levels, on the stroke itself


def test_drawn_lines_agree_with_the_training_loss() -> None:
    torch = pytest.importorskip("torch")
    from sketch2face.models.losses import dark_line_loss

    rng = np.random.default_rng(4)
    a, b = (rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(2))

    def as_model_input(image_u8: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image_u8.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]

    loss = dark_line_loss(as_model_input(a), as_model_input(b)).item() * 127.5
    assert drawn_lines(a, b) == pytest.approx(loss, rel=1e-4)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((32, 32, 3), np.uint8), np.zeros((16, 32, 3), np.uint8))


def test_embeddings_separate_identities(
    celeba: dict[str, np.ndarray], embedder: FaceEmbedder
) -> None:
    same_a, same_b, other = celeba["10000_028381"], celeba["10000_087915"], celeba["10001_191146"]
    ea, eb, eo = (embedder.embed(x) for x in (same_a, same_b, other))
    assert ea.vector.shape == (EMBEDDING_DIM,) and ea.vector.dtype == np.float32
    assert ea.face_found and eb.face_found and eo.face_found
    assert (
        identity_distance(ea.vector, eb.vector)
        < DLIB_SAME_PERSON_DISTANCE
        < identity_distance(ea.vector, eo.vector)
    )
    assert is_same_person(ea.vector, eb.vector) and not is_same_person(ea.vector, eo.vector)
    assert identity_similarity(ea.vector, ea.vector) == pytest.approx(1.0)
    assert identity_similarity(ea.vector, eb.vector) > identity_similarity(ea.vector, eo.vector)


def test_no_face_uses_the_whole_image(embedder: FaceEmbedder) -> None:
    result = embedder.embed(np.full((256, 256, 3), 128, np.uint8))
    assert not result.face_found
    assert result.vector.shape == (EMBEDDING_DIM,) and np.all(np.isfinite(result.vector))


def test_rank1_on_known_sets() -> None:
    real = np.eye(4, 128, dtype=np.float32)
    assert rank1(real + 0.01, real) == 1.0
    assert rank1(real[[1, 0, 3, 2]], real) == 0.0
    assert rank1(real[[0, 1, 3, 2]], real) == 0.5
    with pytest.raises(ValueError):
        rank1(real[:3], real)


def test_rank1_on_real_photos(celeba: dict[str, np.ndarray], embedder: FaceEmbedder) -> None:
    # Two different people: a blurred copy must still find its own photo first.
    people = [celeba["10000_028381"], celeba["10001_191146"]]
    real, _ = embedder.embed_many(people)
    generated, found = embedder.embed_many([cv2.GaussianBlur(p, (0, 0), 1.0) for p in people])
    assert generated.shape == (2, EMBEDDING_DIM) and all(found)
    assert rank1(generated, real) == 1.0
    assert rank1(generated[::-1], real) == 0.0


def test_batched_embeddings_equal_single_ones_row_by_row(
    celeba: dict[str, np.ndarray], embedder: FaceEmbedder
) -> None:
    blank = np.full((256, 256, 3), 128, np.uint8)
    images = [celeba["10000_028381"], blank, celeba["10001_191146"]]
    vectors, found = embedder.embed_many(images)
    assert found == [True, False, True] and vectors.shape == (3, EMBEDDING_DIM)
    for image, vector in zip(images, vectors):
        np.testing.assert_allclose(embedder.embed(image).vector, vector, atol=1e-5)
    empty, none = embedder.embed_many([])
    assert empty.shape == (0, EMBEDDING_DIM) and none == []
