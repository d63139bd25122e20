"""Evaluation tells the truth: baselines (mean face, sketch itself, stage one sharpened), rank-k,
grid ratio, realism."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from sketch2face.evaluation.baselines import (
    MEAN_FACE_PNG_KEY,
    MeanFace,
    compute_mean_face,
    load_mean_face,
    mean_face_path,
    read_mean_face_provenance,
    resolve_mean_face,
    save_mean_face,
    unsharp_mask,
)
from sketch2face.evaluation.evaluate import SHARPENED_LABEL, evaluate_pairs
from sketch2face.evaluation.metrics import (
    FaceEmbedder,
    default_embedder,
    identity_similarity,
    psnr,
    rank1,
    rank_k,
    ssim,
    ssim_gray,
    ssim_regions,
)
from sketch2face.evaluation.realism import (
    FEATURE_NAMES,
    grid_artifact_ratio,
    grid_energy_score,
    realism_accuracy,
    realism_accuracy_from_features,
    realism_distance,
    realism_distance_from_features,
    realism_features,
)
from sketch2face.imaging import load_image, save_png

# --- helpers ---------------------------------------------------------------------------------


def _faces(shared_dir: Path) -> list[np.ndarray]:
    """The 12 fixture photos as 256x256 centre squares (6 CelebA, 6 FS2K)."""
    fixtures = shared_dir / "data/fixtures"
    paths = sorted((fixtures / "celeba").glob("*.jpg")) + sorted(
        (fixtures / "fs2k_test").glob("*photo*.jpg")
    )
    out = []
    for path in paths:
        image = load_image(path)
        h, w = image.shape[:2]
        side = min(h, w)
        square = image[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
        out.append(cv2.resize(square, (256, 256), interpolation=cv2.INTER_AREA))
    return out


def _pencil_sketch(photo_u8: np.ndarray) -> np.ndarray:
    """A colour-dodge pencil sketch (grey RGB), independent of sketch2face.data."""
    gray = cv2.cvtColor(photo_u8, cv2.COLOR_RGB2GRAY)
    blurred = cv2.GaussianBlur(255 - gray, (0, 0), 6)
    sketch = cv2.divide(gray, 255 - blurred, scale=256)
    return np.repeat(sketch[:, :, None], 3, axis=2)


def _smooth_noise(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A synthetic 'photo': 1/f-like coloured noise, 0..255 uint8."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    amplitude = 1.0 / np.maximum(np.sqrt(fy**2 + fx**2), 1.0 / size)
    channels = []
    for _ in range(3):
        phase = rng.uniform(0, 2 * np.pi, (size, size))
        field_ = np.fft.ifft2(amplitude * np.exp(1j * phase)).real
        channels.append(field_)
    image = np.stack(channels, axis=2)
    image = (image - image.mean()) / image.std() * 40 + 128
    return np.clip(image, 0, 255).astype(np.uint8)


def _checkerboard(size: int, amplitude: float) -> np.ndarray:
    """Faint period-2 checkerboard plus a period-4 (2x2-block) checkerboard, in grey levels."""
    yy, xx = np.mgrid[:size, :size]
    period2 = np.where((xx + yy) % 2 == 0, 1.0, -1.0)
    period4 = np.where((xx // 2 + yy // 2) % 2 == 0, 1.0, -1.0)
    return amplitude * (period2 + period4)


@dataclass(frozen=True)
class _Result:
    inputs: list[np.ndarray]
    faces: list[np.ndarray]
    refined: list[np.ndarray | None]
    timings_ms: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


class ReturnsThePhoto:
    """A 'perfect' pipeline: looks each sketch up and returns its real photo."""

    model_version = "returns-the-photo@test"

    def __init__(self, sketches: Sequence[np.ndarray], photos: Sequence[np.ndarray]) -> None:
        self.lookup = {
            hashlib.sha1(np.ascontiguousarray(s).tobytes()).hexdigest(): p
            for s, p in zip(sketches, photos, strict=True)
        }
        self.refiner = None

    def __call__(self, sketches, *, refine=False, seed=None, batch_size=8, prepared=False):  # type: ignore[no-untyped-def]
        inputs = [np.asarray(s) for s in sketches]
        # an unknown sketch (e.g. re-cropped from a folder) is returned as it is
        faces = [self.lookup.get(hashlib.sha1(x.tobytes()).hexdigest(), x).copy() for x in inputs]
        return _Result(inputs, faces, [None] * len(faces))


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return default_embedder()


@pytest.fixture(scope="module")
def faces(shared_dir: Path) -> list[np.ndarray]:
    return _faces(shared_dir)


# --- the trivial second stage: unsharp mask ------------------------------------------------


def _gaussian_reference(image: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur in numpy (radius 4 sigma, mirrored border without repeating the
    edge pixel), written independently of OpenCV to check :func:`unsharp_mask` against."""
    radius = int(4 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    f = image.astype(np.float64)
    pad = [(radius, radius), (radius, radius)] + [(0, 0)] * (f.ndim - 2)
    padded = np.pad(f, pad, mode="reflect")
    rows = sum(kernel[k] * padded[k : k + f.shape[0]] for k in range(len(kernel)))
    return sum(kernel[k] * rows[:, k : k + f.shape[1]] for k in range(len(kernel)))


def test_unsharp_mask_steepens_an_edge_and_leaves_flat_areas_alone() -> None:
    # a vertical step edge, dark (60) left of column 32, light (180) from it on
    step = np.full((48, 64, 3), 60, np.uint8)
    step[:, 32:] = 180
    out = unsharp_mask(step)  # sigma 2 px, amount 1.0
    assert out.shape == step.shape and out.dtype == np.uint8
    row = out[24, :, 0].astype(int)
    # more contrast across the edge: darker just before it, lighter just after (overshoot)
    assert row[31] < 60 and row[32] > 180
    assert row[32] - row[31] > 180 - 60
    # the dark side only gets darker towards the edge, the light side lighter (no ringing)
    assert (np.diff(row[:32]) <= 0).all() and (np.diff(row[32:]) <= 0).all()
    assert row[:32].max() == 60 and row[32:].min() == 180
    # flat away from the edge (beyond the kernel's 4 sigma = 8 px) and along it
    assert (out[:, :22] == 60).all() and (out[:, 42:] == 180).all()
    assert (out == out[:1]).all()  # every row the same: no change along the edge
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    # the formula f + 1.0 * (f - blur(f)) against an independent blur, to the rounding
    expected = np.clip(np.rint(2.0 * step - _gaussian_reference(step, 2.0)), 0, 255)
    assert np.abs(out.astype(int) - expected).max() <= 1

    # a flat image stays flat, to the border; amount 0 changes nothing
    flat = np.full((40, 40, 3), 97, np.uint8)
    assert np.array_equal(unsharp_mask(flat), flat)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(unsharp_mask(noise, amount=0.0), noise)
    # a 0 -> 255 edge would over- and undershoot: clipped into uint8, not wrapped around
    hard = np.zeros((16, 32), np.uint8)
    hard[:, 16:] = 255
    sharp = unsharp_mask(hard)
    assert sharp.shape == hard.shape and sharp.dtype == np.uint8
    assert (sharp[:, :16] == 0).all() and (sharp[:, 16:] == 255).all()
    # a stronger mask adds more contrast; bad arguments are refused
    assert int(unsharp_mask(step, amount=2.0)[24, 32, 0]) > int(row[32])
    with pytest.raises(ValueError, match="uint8"):
        unsharp_mask(step.astype(np.float32))
    with pytest.raises(ValueError, match="sigma_px"):
        unsharp_mask(step, sigma_px=0.0)
    with pytest.raises(ValueError, match="amount"):
        unsharp_mask(step, amount=-1.0)


# --- rank-k ----------------------------------------------------------------------------------


def test_rank_k_on_known_sets() -> None:
    real = np.eye(6, 128, dtype=np.float32)
    # generated i lies between its own photo and photo (i+1) % 6, a little closer to its own
    generated = 0.55 * real + 0.45 * real[[1, 2, 3, 4, 5, 0]]
    assert rank_k(generated, real, 1) == 1.0 == rank1(generated, real)
    shifted = 0.45 * real + 0.55 * real[[5, 0, 1, 2, 3, 4]]  # own photo 2nd nearest, never 1st
    assert rank_k(shifted, real, 1) == 0.0
    assert rank_k(shifted, real, 2) == 1.0 and rank_k(shifted, real, 5) == 1.0
    assert rank_k(shifted, real, 100) == 1.0  # k beyond the gallery: everything is a hit
    # undetected faces count as misses
    found = [True, False, True, False, True, True]
    assert rank_k(generated, real, 1, face_found=found) == pytest.approx(4 / 6)
    assert rank_k(shifted, real, 5, face_found=found) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="face_found"):
        rank_k(generated, real, 1, face_found=[True])
    with pytest.raises(ValueError, match="k must be"):
        rank_k(generated, real, 0)


def test_rank_k_breaks_ties_like_argmin() -> None:
    """A constant 'generated' image (mean face) has one ranking for all: exactly k hits."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(10, 128))
    constant = np.repeat(rng.normal(size=(1, 128)), 10, axis=0)
    assert rank_k(constant, real, 1) == pytest.approx(1 / 10)
    assert rank_k(constant, real, 5) == pytest.approx(5 / 10)
    # exact ties: identical gallery entries, the lower index wins (as np.argmin)
    same = np.zeros((4, 128))
    assert rank_k(same, same, 1) == pytest.approx(1 / 4)
    assert rank_k(same, same, 3) == pytest.approx(3 / 4)


# --- grid artefact ratio ---------------------------------------------------------------------


def test_grid_ratio_detects_a_faint_checkerboard_on_synthetic_images() -> None:
    rng = np.random.default_rng(1)
    clean = [_smooth_noise(rng, 128) for _ in range(4)]
    board = _checkerboard(128, 2.0)[:, :, None]
    dirty = [np.clip(np.rint(c + board), 0, 255).astype(np.uint8) for c in clean]
    assert grid_artifact_ratio(clean, clean) == pytest.approx(1.0)
    assert grid_artifact_ratio(dirty, clean) > 1.5
    assert grid_artifact_ratio(clean, dirty) < 1 / 1.5
    # smooth images have ~1 grid score: the neighbourhood predicts the grid bins
    assert 0.5 < np.mean([grid_energy_score(c) for c in clean]) < 2.0
    # a flat image has no grid energy: ratio 1 by definition, not 0/0
    assert grid_energy_score(np.full((64, 64, 3), 77, np.uint8)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 64"):
        grid_energy_score(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError):
        grid_artifact_ratio([], clean)


def test_grid_ratio_on_photos(faces: list[np.ndarray]) -> None:
    board = _checkerboard(256, 1.5)[:, :, None]
    dirty = [np.clip(np.rint(f + board), 0, 255).astype(np.uint8) for f in faces]
    assert grid_artifact_ratio(faces, faces) == pytest.approx(1.0)
    assert grid_artifact_ratio(dirty, faces) > 1.5
    # blurring removes energy everywhere, it adds no grid peaks
    blurred = [cv2.GaussianBlur(f, (0, 0), 1.5) for f in faces]
    assert grid_artifact_ratio(blurred, faces) < 1.5
    # the checkerboard of a stride-2 transposed convolution whose 3x3 kernel overlaps unevenly
    # (output pixels get 1, 2 or 4 taps): a 2x upsampler as in the U-Net decoder
    import torch

    deconv = torch.nn.ConvTranspose2d(
        3, 3, 3, stride=2, padding=1, output_padding=1, groups=3, bias=False
    )
    torch.nn.init.constant_(deconv.weight, 1.0 / 2.25)  # 2.25 taps on average: keeps the mean
    small = [cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA) for f in faces]
    with torch.no_grad():
        x = torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float()
        up = deconv(x).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert up.shape == (len(faces), 256, 256, 3)
    assert grid_artifact_ratio(up, faces) > 1.5


# --- realism accuracy ------------------------------------------------------------------------


def test_realism_accuracy_on_synthetic_images() -> None:
    rng = np.random.default_rng(2)
    a = [_smooth_noise(rng) for _ in range(24)]
    b = [_smooth_noise(rng) for _ in range(24)]
    assert abs(realism_accuracy(a, b) - 0.5) < 0.2  # two samples of one distribution
    assert realism_accuracy([cv2.GaussianBlur(x, (0, 0), 2) for x in a], b) > 0.8
    assert realism_accuracy([np.full_like(x, 128) for x in a], b) > 0.8
    assert realism_accuracy(a, a) == pytest.approx(0.5)  # identical pairs share a fold
    assert np.isnan(realism_accuracy(a[:3], b[:3]))  # too few to cross-validate
    features = realism_features(a[0])
    assert features.shape == (len(FEATURE_NAMES),) and np.all(np.isfinite(features))
    assert np.all(np.isfinite(realism_features(np.zeros((64, 64, 3), np.uint8))))


def test_realism_accuracy_on_photos(faces: list[np.ndarray]) -> None:
    rng = np.random.default_rng(3)

    def crops(n: int) -> list[np.ndarray]:
        out = []
        for _ in range(n):
            face = faces[rng.integers(len(faces))]
            side = int(rng.integers(128, 257))
            y, x = rng.integers(0, 257 - side, size=2)
            crop = face[y : y + side, x : x + side]
            out.append(cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA))
        return out

    real_a, real_b = crops(30), crops(30)
    assert abs(realism_accuracy(real_a, real_b) - 0.5) < 0.2
    assert realism_accuracy([cv2.GaussianBlur(x, (0, 0), 2.5) for x in real_a], real_b) > 0.8
    mean = np.rint(np.mean(real_b, axis=0)).astype(np.uint8)
    assert realism_accuracy([mean] * 30, real_b) > 0.8


def test_realism_distance_grows_with_the_difference_and_keeps_ranking_separable_sets(
    faces: list[np.ndarray],
) -> None:
    rng = np.random.default_rng(4)
    pick = [faces[rng.integers(len(faces))] for _ in range(40)]
    real_a = [cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA) for f in pick[:20]]
    real_b = [cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA) for f in pick[20:]]
    feats = {
        "same": realism_features_matrix(real_a),
        "blur1": realism_features_matrix([cv2.GaussianBlur(x, (0, 0), 1.0) for x in real_a]),
        "blur3": realism_features_matrix([cv2.GaussianBlur(x, (0, 0), 3.0) for x in real_a]),
    }
    real = realism_features_matrix(real_b)
    # identical sets: 0; a sample of the same photos: small; more blur: further, monotonically
    assert realism_distance_from_features(real, real) == pytest.approx(0.0, abs=1e-6)
    d_same, d1, d3 = (realism_distance_from_features(feats[k], real) for k in feats)
    assert d_same < d1 < d3
    # both blurred sets are separable (accuracy saturates), the distance still tells them apart
    assert realism_accuracy_from_features(feats["blur3"], real) > 0.8
    assert d3 > 2 * d1
    # one constant image (zero covariance) still gives a finite distance; too few images: NaN
    constant = realism_features_matrix([np.full_like(real_a[0], 128)] * 20)
    assert np.isfinite(realism_distance_from_features(constant, real))
    assert np.isnan(realism_distance_from_features(real[:3], real[:3]))
    assert realism_distance(real_a, real_b) == pytest.approx(d_same)
    with pytest.raises(ValueError, match="feature arrays"):
        realism_distance_from_features(real[:, :5], real)


def realism_features_matrix(images: list[np.ndarray]) -> np.ndarray:
    return np.stack([realism_features(x) for x in images])


# --- mean face: compute, store, find ---------------------------------------------------------


def _write_dataset(root: Path, faces: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """A prepared dataset: pairs 0-3 test, the rest train. Returns (sketches, train indices)."""
    from sketch2face.data.manifest import ManifestRow, write_manifest

    rows, sketches, train = [], [], []
    for i, face in enumerate(faces):
        sketch = _pencil_sketch(face)
        sketches.append(sketch)
        save_png(sketch, root / "sketches" / f"{i:02d}.png")
        save_png(face, root / "photos" / f"{i:02d}.png")
        split = "test" if i < 4 else "train"
        if split == "train":
            train.append(i)
        rows.append(
            ManifestRow(
                id=f"p{i:02d}",
                source="fixture",
                style="pencil",
                split=split,
                sketch=f"sketches/{i:02d}.png",
                photo=f"photos/{i:02d}.png",
            )
        )
    write_manifest(root / "manifest.jsonl", rows)
    return sketches, train


def test_mean_face_is_the_mean_of_the_train_photos_only(
    faces: list[np.ndarray], tmp_path: Path
) -> None:
    root = tmp_path / "dataset"
    _, train = _write_dataset(root, faces)
    mean = compute_mean_face(root)
    expected = np.rint(np.mean([faces[i].astype(np.float64) for i in train], axis=0))
    assert mean.dtype == np.uint8 and mean.shape == (256, 256, 3)
    assert np.array_equal(mean, expected.astype(np.uint8))
    with_test = np.rint(np.mean([f.astype(np.float64) for f in faces], axis=0)).astype(np.uint8)
    assert not np.array_equal(mean, with_test)

    checkpoint = tmp_path / "models" / "run7.safetensors"
    assert mean_face_path(checkpoint) == tmp_path / "models" / "run7.mean_face.png"
    path = save_mean_face(mean, mean_face_path(checkpoint), provenance={"photos": len(train)})
    assert np.array_equal(load_image(path), mean)
    assert read_mean_face_provenance(path) == {"photos": len(train)}
    loaded = load_mean_face(path)
    assert np.array_equal(loaded.image, mean) and f"{len(train)} train photos" in loaded.source
    with pytest.raises(ValueError, match="256x256x3 uint8"):
        save_mean_face(mean[:128], tmp_path / "bad.png")


def test_resolve_mean_face_order(faces: list[np.ndarray], tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    _write_dataset(root, faces)
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"")

    face, message = resolve_mean_face(checkpoint)
    assert face is None and "no mean face stored beside the checkpoint" in message
    assert "sketch2face export --mean-face" in message

    face, message = resolve_mean_face(checkpoint, dataset_dir=root)
    assert face is not None and np.array_equal(face.image, compute_mean_face(root))
    assert "computed now from the train split" in message and str(root) in message

    stored = np.full((256, 256, 3), 99, np.uint8)
    save_mean_face(stored, mean_face_path(checkpoint))
    face, message = resolve_mean_face(checkpoint, dataset_dir=root)
    assert face is not None and np.array_equal(face.image, stored) and "stored in" in message

    explicit = save_mean_face(np.full((256, 256, 3), 7, np.uint8), tmp_path / "other.png")
    face, _ = resolve_mean_face(checkpoint, explicit=explicit)
    assert face is not None and int(face.image[0, 0, 0]) == 7


# --- evaluate_pairs with baselines -----------------------------------------------------------


def test_baselines_are_scored_beside_a_perfect_pipeline(
    faces: list[np.ndarray], embedder: FaceEmbedder, tmp_path: Path
) -> None:
    photos = faces[:8]
    sketches = [_pencil_sketch(p) for p in photos]
    sketch_paths = [save_png(s, tmp_path / "sk" / f"{i}.png") for i, s in enumerate(sketches)]
    photo_paths = [save_png(p, tmp_path / "ph" / f"{i}.png") for i, p in enumerate(photos)]
    mean_u8 = np.rint(np.mean([f.astype(np.float64) for f in faces[8:]], axis=0)).astype(np.uint8)

    report = evaluate_pairs(
        ReturnsThePhoto(sketches, photos),
        sketch_paths,
        photo_paths,
        prepared=True,
        progress=False,
        embedder=embedder,
        mean_face=MeanFace(mean_u8, "test mean of 4 other photos"),
        batch_size=3,
    )
    n = len(photos)
    real_found = [embedder.embed(p).face_found for p in photos]
    # the model returns the real photo: perfect scores, indistinguishable, no extra grid energy
    assert report.ssim == pytest.approx(1.0) and report.ssim_gray == pytest.approx(1.0)
    assert report.ssim_face == pytest.approx(1.0) and report.ssim_rest == pytest.approx(1.0)
    assert report.faces_found == {"generated": sum(real_found), "real": sum(real_found)}
    assert report.rank1 == pytest.approx(sum(real_found) / n) == report.rank5
    assert report.rank1_fallback == 1.0 and report.rank5_chance == pytest.approx(5 / n)
    assert report.grid_artifact_ratio == pytest.approx(1.0)
    assert report.realism_accuracy == pytest.approx(0.5)
    assert report.realism_distance == pytest.approx(0.0, abs=1e-6)

    mean_b, sketch_b = report.baselines["mean_face"], report.baselines["sketch"]
    assert mean_b["available"] and mean_b["source"] == "test mean of 4 other photos"
    assert mean_b["count"] == n and sketch_b["count"] == n
    # values recomputed independently
    assert mean_b["ssim"] == pytest.approx(np.mean([ssim(mean_u8, p) for p in photos]))
    assert mean_b["ssim_gray"] == pytest.approx(np.mean([ssim_gray(mean_u8, p) for p in photos]))
    assert mean_b["psnr"] == pytest.approx(np.mean([psnr(mean_u8, p) for p in photos]))
    mean_regions = np.mean([ssim_regions(mean_u8, p) for p in photos], axis=0)
    assert [mean_b["ssim"], mean_b["ssim_face"], mean_b["ssim_rest"]] == pytest.approx(mean_regions)
    assert "SSIM face" in report.summary_table() and "SSIM rest" in report.summary_table()
    assert mean_b["realism_distance"] > 1.0  # one constant image: nothing like n real photos
    assert sketch_b["ssim"] == pytest.approx(
        np.mean([ssim(s, p) for s, p in zip(sketches, photos, strict=True)])
    )
    assert sketch_b["psnr"] == pytest.approx(
        np.mean([psnr(s, p) for s, p in zip(sketches, photos, strict=True)])
    )
    mean_emb = embedder.embed(mean_u8)
    real_embs = [embedder.embed(p).vector for p in photos]
    assert mean_b["identity_similarity"] == pytest.approx(
        np.mean([identity_similarity(mean_emb.vector, r) for r in real_embs]), abs=1e-6
    )
    # one constant image: one ranking for every pair -> exactly 1 (rank-1) / 5 (rank-5) hits
    assert mean_b["faces_found"] == (n if mean_emb.face_found else 0)
    if mean_emb.face_found:
        assert mean_b["rank1"] == pytest.approx(1 / n) and mean_b["rank5"] == pytest.approx(5 / n)
    else:
        assert mean_b["rank1"] == 0.0 == mean_b["rank5"]
    assert mean_b["rank1_fallback"] == pytest.approx(1 / n)
    sketch_found = [embedder.embed(s).face_found for s in sketches]
    assert sketch_b["faces_found"] == sum(sketch_found)
    assert sketch_b["rank1"] <= sum(sketch_found) / n
    assert 0.0 <= sketch_b["rank1"] <= sketch_b["rank5"] <= 1.0
    # a constant image and grey sketches are trivially told from colour photos
    assert mean_b["realism_accuracy"] > 0.8 and sketch_b["realism_accuracy"] > 0.8
    assert mean_b["ssim"] < report.ssim and sketch_b["ssim"] < report.ssim

    # stage one sharpened (the trivial second stage): here the photos through the unsharp mask,
    # scored on the same pairs with the same figures as the other rows
    sharpened = [unsharp_mask(p) for p in photos]
    sharp_b = report.baselines["sharpened"]
    assert sharp_b["available"] and sharp_b["count"] == n and "unsharp mask" in sharp_b["source"]
    assert (sharp_b["sigma_px"], sharp_b["amount"]) == (2.0, 1.0)
    assert sharp_b["ssim"] == pytest.approx(
        np.mean([ssim(s, p) for s, p in zip(sharpened, photos, strict=True)])
    )
    assert sharp_b["psnr"] == pytest.approx(
        np.mean([psnr(s, p) for s, p in zip(sharpened, photos, strict=True)])
    )
    assert sharp_b["realism_distance"] == pytest.approx(realism_distance(sharpened, photos))
    assert sharp_b["grid_artifact_ratio"] == pytest.approx(grid_artifact_ratio(sharpened, photos))
    assert 0.5 < sharp_b["ssim"] < 1.0 and sharp_b["realism_distance"] > 0.0  # not the photos
    sharp_found = [embedder.embed(s).face_found for s in sharpened]
    assert sharp_b["faces_found"] == sum(sharp_found)
    assert {"rank1", "rank5", "realism_accuracy", "identity_similarity"} <= set(sharp_b)

    item = report.items[0]
    assert item["baselines"]["sharpened"]["ssim"] == pytest.approx(ssim(sharpened[0], photos[0]))
    assert item["baselines"]["mean_face"]["ssim"] == pytest.approx(ssim(mean_u8, photos[0]))
    assert item["baselines"]["sketch"]["ssim"] == pytest.approx(ssim(sketches[0], photos[0]))
    data = json.loads(report.to_json())
    for key in ("rank1", "rank5", "faces_found", "grid_artifact_ratio", "realism_accuracy"):
        assert key in data and key in data["baselines"]["sketch"], key
    assert "grid_method" in data and "realism_method" in data

    table = report.summary_table()
    lines = table.splitlines()
    assert lines[1].split()[:3] == ["system", "SSIM", "(RGB)"] and "rank-5" in lines[1]
    model_row = next(line for line in lines if line.startswith("stage one (pix2pix) "))
    mean_row = next(line for line in lines if line.startswith("mean face "))
    sketch_row = next(line for line in lines if line.startswith("sketch itself "))
    sharp_row = next(line for line in lines if line.startswith(SHARPENED_LABEL + " "))
    assert sharp_row.removeprefix(SHARPENED_LABEL).split()[0] == f"{sharp_b['ssim']:.4f}"
    assert f"{sharp_b['realism_distance']:.2f}" == sharp_row.split()[-2]
    assert f"{sharp_b['drawn_lines']:.2f}" == sharp_row.split()[-1]
    assert lines.index(sharp_row) == lines.index(model_row) + 2  # after stage one and refined
    assert f"{SHARPENED_LABEL}: stage one's own faces through an unsharp mask" in table
    assert "1.0000" in model_row and f"{sum(real_found)}/{n}" in model_row
    assert f"{mean_b['ssim']:.4f}" in mean_row and f"{sketch_b['ssim']:.4f}" in sketch_row
    assert "counts as a miss" in table and "mean face: test mean of 4 other photos" in table


def test_missing_mean_face_is_reported_with_the_reason(
    faces: list[np.ndarray], embedder: FaceEmbedder, tmp_path: Path
) -> None:
    photos = faces[:2]
    sketches = [_pencil_sketch(p) for p in photos]
    report = evaluate_pairs(
        ReturnsThePhoto(sketches, photos),
        [save_png(s, tmp_path / f"s{i}.png") for i, s in enumerate(sketches)],
        [save_png(p, tmp_path / f"p{i}.png") for i, p in enumerate(photos)],
        prepared=True,
        progress=False,
        embedder=embedder,
        mean_face_unavailable="nothing stored (test)",
    )
    assert report.baselines["mean_face"] == {"available": False, "reason": "nothing stored (test)"}
    assert report.baselines["sketch"]["available"] and np.isnan(report.realism_accuracy)
    assert json.loads(report.to_json())["realism_accuracy"] is None  # 2 pairs: too few
    table = report.summary_table()
    assert "mean face: unavailable (nothing stored (test))" in table
    assert next(line for line in table.splitlines() if line.startswith("mean face ")).endswith(
        "unavailable (see below)"
    )


# --- CLI -------------------------------------------------------------------------------------


def _install_pipeline(monkeypatch: pytest.MonkeyPatch, pipeline: ReturnsThePhoto) -> None:
    class FakeSketch2Face:
        @classmethod
        def from_pretrained(cls, checkpoint=None, **_kwargs):  # type: ignore[no-untyped-def]
            return pipeline

    try:
        import sketch2face.pipeline as real_module
    except ModuleNotFoundError:
        module = types.ModuleType("sketch2face.pipeline")
        module.Sketch2Face = FakeSketch2Face  # type: ignore[attr-defined]
        module.resolve_checkpoint = lambda c: Path(c)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "sketch2face.pipeline", module)
    else:
        monkeypatch.setattr(real_module, "Sketch2Face", FakeSketch2Face)


def test_cli_prints_the_baseline_rows_and_exports_the_mean_face(
    faces: list[np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sketch2face.cli.main import main

    root = tmp_path / "dataset"
    sketches, train = _write_dataset(root, faces)
    _install_pipeline(monkeypatch, ReturnsThePhoto(sketches, faces))
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"")  # never loaded: the pipeline is a stand-in
    report_path = tmp_path / "report.json"
    evaluate = [
        "evaluate",
        "--manifest",
        str(root),
        "--checkpoint",
        str(checkpoint),
        "--report",
        str(report_path),
        "--no-progress",
    ]

    # 1. nothing stored: computed from the manifest's train split, and said so
    assert main(evaluate) == 0
    out = capsys.readouterr().out
    assert "computed now from the train split" in out
    data = json.loads(report_path.read_text())
    assert data["count"] == 4 and data["ssim"] == pytest.approx(1.0)  # the test split
    assert data["baselines"]["mean_face"]["available"] and data["baselines"]["sketch"]["available"]
    expected_mean = compute_mean_face(root)
    assert data["baselines"]["mean_face"]["ssim"] == pytest.approx(
        np.mean([ssim(expected_mean, faces[i]) for i in range(4)])
    )
    rows = [line.split()[0:2] for line in out.splitlines()]
    assert ["system", "SSIM"] in rows and rows[rows.index(["system", "SSIM"]) + 1] == [
        "stage",
        "one",
    ]
    assert any(line.startswith("mean face ") for line in out.splitlines())
    assert any(line.startswith("sketch itself ") for line in out.splitlines())
    assert any(line.startswith(SHARPENED_LABEL + " ") for line in out.splitlines())
    assert data["baselines"]["sharpened"]["available"]
    assert data["baselines"]["sharpened"]["ssim"] == pytest.approx(
        np.mean([ssim(unsharp_mask(faces[i]), faces[i]) for i in range(4)])
    )
    assert "rank-5" in out and "faces found" in out and "realism acc" in out

    # 2. export --mean-face stores it beside the checkpoint; evaluate then uses the stored one
    assert (
        main(["export", "--mean-face", "--dataset", str(root), "--checkpoint", str(checkpoint)])
        == 0
    )
    stored = tmp_path / "model.mean_face.png"
    assert f"mean of {len(train)} train photos" in capsys.readouterr().out
    assert np.array_equal(load_image(stored), expected_mean)
    with_prov = read_mean_face_provenance(stored)
    assert with_prov["photos"] == len(train) and with_prov["split"] == "train"
    assert MEAN_FACE_PNG_KEY.startswith("sketch2face")
    assert main(evaluate) == 0
    assert f"mean face: stored in {stored}" in capsys.readouterr().out

    # 3. an explicit --mean-face wins; --no-baselines skips them
    other = save_mean_face(np.full((256, 256, 3), 120, np.uint8), tmp_path / "other.png")
    assert main([*evaluate, "--mean-face", str(other), "--limit", "2"]) == 0
    assert f"mean face: stored in {other}" in capsys.readouterr().out
    assert main([*evaluate, "--no-baselines"]) == 0
    out = capsys.readouterr().out
    assert (
        re.search(r"^mean face +unavailable", out, re.M) and "baselines were not requested" in out
    )
    assert re.search(rf"^{re.escape(SHARPENED_LABEL)} +unavailable \(see below\)", out, re.M)
    assert json.loads(report_path.read_text())["baselines"]["sharpened"] == {
        "available": False,
        "reason": "baselines were not requested",
    }

    # folders, no mean face stored beside the checkpoint, no manifest: unavailable, with the reason
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(b"")
    for i in range(2):
        save_png(sketches[i], tmp_path / "sk" / f"{i}.png")
        save_png(faces[i], tmp_path / "ph" / f"{i}.png")
    folders = ["--sketches", str(tmp_path / "sk"), "--photos", str(tmp_path / "ph")]
    code = main(
        [
            "evaluate",
            *folders,
            "--checkpoint",
            str(bare),
            "--report",
            str(report_path),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "mean face: unavailable (no mean face stored beside the checkpoint" in out
    assert "sketch2face export --mean-face" in out
    data = json.loads(report_path.read_text())
    assert data["baselines"]["mean_face"]["available"] is False
    assert "export --mean-face" in data["baselines"]["mean_face"]["reason"]
    assert data["baselines"]["sketch"]["available"] and data["count"] == 2

    # 4. argument errors
    assert main(["export", "--mean-face", "--checkpoint", str(checkpoint)]) == 1
    assert "--dataset" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "--mean-face",
                "--dataset",
                str(root),
                "--checkpoint",
                str(tmp_path / "none.safetensors"),
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err
