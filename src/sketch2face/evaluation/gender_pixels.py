"""A second, independent gender classifier: a logistic head on HOG features of the aligned face crop.

The dlib head (:mod:`sketch2face.evaluation.gender`) is also a training loss, so generated faces can
learn to please that exact classifier and its verdict on them is optimistic. This one never sees
dlib (no detector, landmarks or recogniser): it reads the pixels of the grey, aligned 256x256 crop
(dataset photos and generated faces share the crop geometry of :mod:`sketch2face.data.align`),
so ``evaluate-attributes`` can report both verdicts side by side.

Feature recipe (:class:`HogRecipe`): grey crop -> central ``crop_fraction`` -> ``size`` px ->
HOG (``skimage.feature.hog``). The HOG of the mirrored crop is averaged in, which makes the features
mirror-symmetric (gender does not depend on which way a face looks) and lets half the blocks go:
the kept vector is half as long and a left/right pose change moves it less. Colour is left out on
purpose: it did not help on validation, and it would tie the verdict to the skin and hair colour
requests that the same report measures.

Recipe choice (FS2K train, 5-fold CV on train, accuracy on the 131 val photos; test never looked
at): 64 px / 8 px cells 0.898 CV / 0.847 val; 96 px / 12 px cells 0.908 / 0.878; 96 px / 8 px cells
at 0.75, 0.9 and 1.0 of the crop 0.906 / 0.893, 0.920 / 0.901, 0.915 / 0.916; colour statistics or
finer orientation bins did not help. 0.9 of the crop at 96 px / 8 px cells has the best CV accuracy
and log loss and the best val log loss (1.0's val accuracy is 2 photos higher, within noise); it
keeps 2,376 features.

The classifier is :func:`sketch2face.evaluation.gender.fit_logistic` with L2 chosen by
:func:`~sketch2face.evaluation.gender.choose_l2`, fitted on FS2K's labelled *train* photos; the
fitted head ships as a small JSON asset (:data:`ASSET_PATH`, refit with
``sketch2face gender fit --features hog``). Labels follow FS2K: ``1`` female, ``0`` male.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sketch2face.errors import CheckpointError, DatasetError
from sketch2face.evaluation.gender import (
    FEMALE,
    LABEL_CONVENTION,
    MALE,
    check_head_format,
    choose_l2,
    fit_logistic,
    head_weights,
    read_head_json,
    write_head_json,
)

#: The shipped head (refit with ``sketch2face gender fit --features hog``).
ASSET_PATH = Path(__file__).resolve().parents[1] / "assets" / "gender" / "gender_head_hog.json"
ASSET_FORMAT = "sketch2face-gender-head-hog-v1"
#: L2 strengths tried by cross-validation. Fewer than the dlib head's: with ~2.4k features each
#: Newton fit costs seconds, and CV never chose below 30 or above 1000 while the recipe was picked.
L2_GRID = (30.0, 100.0, 300.0, 1000.0)
_FIX = (
    "Refit it with `sketch2face gender fit --features hog --dataset DIR` or reinstall sketch2face."
)


# ---------------------------------------------------------------- features


@dataclass(frozen=True)
class HogRecipe:
    """How a crop becomes a feature vector (stored in the asset, so a head always knows its own)."""

    crop_fraction: float = 0.9  # central part of the aligned crop: face and hair, little background
    size: int = 96  # px side the central part is resized to before HOG
    pixels_per_cell: int = 8
    cells_per_block: int = 2
    orientations: int = 9
    block_norm: str = "L2-Hys"
    mirror_symmetric: bool = True  # average in the mirrored crop's HOG, keep half the blocks

    def __post_init__(self) -> None:
        if not 0.1 <= self.crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction {self.crop_fraction} must be in [0.1, 1]")
        if self.cells_per_block < 1 or self.orientations < 2 or self.pixels_per_cell < 2:
            raise ValueError(f"invalid HOG parameters: {self}")
        if self.size // self.pixels_per_cell < self.cells_per_block:
            raise ValueError(f"size {self.size} too small for {self.cells_per_block} cells a block")
        if self.block_norm not in ("L1", "L1-sqrt", "L2", "L2-Hys"):
            raise ValueError(f"unknown block_norm {self.block_norm!r}")

    @property
    def blocks(self) -> tuple[int, int]:
        """(rows, columns) of HOG blocks kept."""
        n = self.size // self.pixels_per_cell - self.cells_per_block + 1
        return n, ((n + 1) // 2 if self.mirror_symmetric else n)

    @property
    def feature_dim(self) -> int:
        """Length of one feature vector."""
        rows, cols = self.blocks
        return rows * cols * self.cells_per_block**2 * self.orientations


def _grey_central(image: np.ndarray, fraction: float, size: int) -> np.ndarray:
    """Grey [0, 1] central ``fraction`` of an HxWx3 uint8 image, resized to ``size`` square.

    Taking the fraction of the image's own size equals resizing to 256 px first (same geometry),
    without the extra resampling.
    """
    from skimage.transform import resize

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 8 or a.shape[1] < 8:
        raise ValueError(f"expected an HxWx3 RGB face crop, got shape {a.shape}")
    h, w = a.shape[:2]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top, left = (h - ch) // 2, (w - cw) // 2
    rgb = a[top : top + ch, left : left + cw, :3].astype(np.float64)
    grey = (rgb @ np.array([0.299, 0.587, 0.114])) / 255.0  # ITU-R 601 luma, as PIL's "L"
    return resize(grey, (size, size), anti_aliasing=True, preserve_range=True)


def hog_features(
    images_u8: Sequence[np.ndarray] | np.ndarray, recipe: HogRecipe | None = None
) -> np.ndarray:
    """(N, recipe.feature_dim) float64 features of HxWx3 uint8 aligned face crops."""
    from skimage.feature import hog

    recipe = recipe or HogRecipe()

    def one(grey: np.ndarray) -> np.ndarray:
        return hog(
            grey,
            orientations=recipe.orientations,
            pixels_per_cell=(recipe.pixels_per_cell,) * 2,
            cells_per_block=(recipe.cells_per_block,) * 2,
            block_norm=recipe.block_norm,
            feature_vector=False,
        )

    out = np.empty((len(images_u8), recipe.feature_dim), dtype=np.float64)
    for i, image in enumerate(images_u8):
        grey = _grey_central(image, recipe.crop_fraction, recipe.size)
        blocks = one(grey)
        if recipe.mirror_symmetric:
            # HOG of the mirror image is the mirrored HOG, so the mean is mirror-symmetric and
            # its left half (with the middle column) holds all of it
            blocks = (blocks + one(np.ascontiguousarray(grey[:, ::-1]))) / 2
            blocks = blocks[:, : recipe.blocks[1]]
        out[i] = blocks.ravel()
    return out


# ---------------------------------------------------------------- the head


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class PixelGenderHead:
    """``p_female = sigmoid(hog_features(crop) @ weights + bias)``."""

    recipe: HogRecipe
    weights: np.ndarray  # (recipe.feature_dim,) float64
    bias: float
    meta: dict[str, Any] = field(default_factory=dict)  # provenance and measured accuracy

    def p_female_features(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features -> (N,) probability of female."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.weights.shape[0]:
            raise ValueError(f"expected (N, {self.weights.shape[0]}) features, got {x.shape}")
        return _sigmoid(x @ self.weights + self.bias)

    def p_female(self, images_u8: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N,) probability of female for HxWx3 uint8 aligned face crops (256 px or any size)."""
        if len(images_u8) == 0:
            return np.zeros(0)
        return self.p_female_features(hog_features(images_u8, self.recipe))

    def labels(self, images_u8: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N,) int8: 1 female, 0 male (FS2K convention); every crop gets a verdict."""
        return (self.p_female(images_u8) >= 0.5).astype(np.int8)

    def to_json(self) -> dict[str, Any]:
        """The asset's JSON object."""
        return {
            "format": ASSET_FORMAT,
            "features": "HOG of the grey aligned face crop (skimage.feature.hog); no dlib",
            "recipe": asdict(self.recipe),
            "labels": LABEL_CONVENTION,
            "weights": [float(w) for w in self.weights],
            "bias": float(self.bias),
            **{k: v for k, v in self.meta.items() if k not in _RESERVED_KEYS},
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<json>") -> PixelGenderHead:
        """Parse and check an asset object; :class:`CheckpointError` says what is wrong."""

        def bad(what: str) -> CheckpointError:
            return CheckpointError(f"{source}: {what}; the pixel gender head is corrupt. {_FIX}")

        check_head_format(data, ASSET_FORMAT, bad)
        try:
            recipe = HogRecipe(**data["recipe"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"feature recipe missing or invalid ({exc})") from exc
        weights, bias = head_weights(data, recipe.feature_dim, bad, " for its recipe")
        meta = {k: v for k, v in data.items() if k not in _RESERVED_KEYS}
        return cls(recipe, weights, bias, meta)


_RESERVED_KEYS = {"format", "features", "recipe", "labels", "weights", "bias"}


def save_pixel_gender_head(head: PixelGenderHead, path: str | os.PathLike = ASSET_PATH) -> Path:
    """Write the head as JSON (atomically: a reader never sees half a file)."""
    return write_head_json(head.to_json(), path)


def load_pixel_gender_head(path: str | os.PathLike = ASSET_PATH) -> PixelGenderHead:
    """The fitted head; :class:`WeightsNotFoundError` if missing, :class:`CheckpointError` if corrupt."""
    data = read_head_json(
        path, "pixel gender head", "sketch2face gender fit --features hog --dataset DIR"
    )
    return PixelGenderHead.from_json(data, str(path))


# ---------------------------------------------------------------- fitting


def _accuracy(head: PixelGenderHead, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    p = head.p_female_features(x) if len(x) else np.zeros(0)
    correct = (p >= 0.5) == (y == FEMALE)
    return {
        "accuracy": float(correct.mean()) if len(p) else None,
        "count": len(p),
        "female": int((y == FEMALE).sum()),
        "male": int((y == MALE).sum()),
    }


def fit_pixel_gender_head_on(
    images_u8: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    recipe: HogRecipe | None = None,
    grid: Sequence[float] = L2_GRID,
) -> PixelGenderHead:
    """Fit on given crops and 0/1 labels (L2 by 5-fold CV when ``grid`` has several values)."""
    recipe = recipe or HogRecipe()
    y = np.asarray(labels, dtype=np.float64)
    x = hog_features(images_u8, recipe)
    return _fit_features(x, y, recipe, grid)


def _fit_features(
    x: np.ndarray, y: np.ndarray, recipe: HogRecipe, grid: Sequence[float]
) -> PixelGenderHead:
    if len(grid) > 1:
        l2, cv = choose_l2(x, y, grid=grid)
    else:
        l2, cv = float(grid[0]), {}
    weights, bias = fit_logistic(x, y, l2=l2)
    meta = {"l2": l2, "cross_validation": {str(k): v for k, v in cv.items()}}
    return PixelGenderHead(recipe, weights, bias, meta)


def split_features(
    dataset_dir: str | os.PathLike,
    split: str,
    ids: Sequence[str],
    recipe: HogRecipe,
    *,
    progress: bool = True,
) -> np.ndarray:
    """(len(ids), D) features of those photos of a prepared split, from its cached uint8 arrays."""
    from tqdm import tqdm

    from sketch2face.data.dataset import load_split_u8

    arrays = load_split_u8(dataset_dir, split)  # memory-mapped: only the rows used are read
    position = {row_id: k for k, row_id in enumerate(arrays.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise DatasetError(f"{len(missing)} ids not in split {split!r}, e.g. {missing[:3]}")
    rows = [position[i] for i in ids]
    out = np.empty((len(rows), recipe.feature_dim), dtype=np.float64)
    step = 256
    for start in tqdm(
        range(0, len(rows), step), desc=f"HOG {split}", disable=not progress or not rows
    ):
        chunk = rows[start : start + step]
        out[start : start + len(chunk)] = hog_features(arrays.photos[chunk], recipe)
    return out


def fit_pixel_gender_head(
    dataset_dir: str | os.PathLike,
    *,
    source: str = "fs2k",
    recipe: HogRecipe | None = None,
    grid: Sequence[float] = L2_GRID,
    progress: bool = True,
) -> PixelGenderHead:
    """Fit the head on a prepared dataset's labelled ``source`` photos of the *train* split.

    L2 is chosen by 5-fold cross-validation on train. Accuracy on val (and, for information only,
    test) is measured and stored in ``head.meta``; neither is used to fit or choose anything.
    """
    from sketch2face.data.manifest import MANIFEST_NAME, file_sha256, read_manifest

    recipe = recipe or HogRecipe()
    root = Path(dataset_dir)
    started = time.perf_counter()
    rows = read_manifest(root / MANIFEST_NAME)
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", "val", "test"):
        labelled = [
            r
            for r in rows
            if r.split == split and r.source == source and r.attributes.get("gender") in (0, 1)
        ]
        y = np.array([int(r.attributes["gender"]) for r in labelled], dtype=np.float64)
        data[split] = (
            split_features(root, split, [r.id for r in labelled], recipe, progress=progress),
            y,
        )
    x, y = data["train"]
    if len(y) < 20 or len(np.unique(y)) < 2:
        raise DatasetError(
            f"{root}: only {len(y)} {source} train photos with a gender label; cannot fit a "
            "pixel gender head."
        )
    fitted = _fit_features(x, y, recipe, grid)
    meta: dict[str, Any] = {
        "fitted_on": {
            "dataset_manifest_sha256": file_sha256(root / MANIFEST_NAME),
            "source": source,
            "split": "train",
            "female": int((y == FEMALE).sum()),
            "male": int((y == MALE).sum()),
        },
        **fitted.meta,
        "train": _accuracy(fitted, x, y),
        "val": _accuracy(fitted, *data["val"]),
        "test_for_information": _accuracy(fitted, *data["test"]),
        "fitted_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fit_seconds": round(time.perf_counter() - started, 1),
    }
    return PixelGenderHead(recipe, fitted.weights, fitted.bias, meta)
