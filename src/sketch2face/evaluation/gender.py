"""Offline gender classifier: a logistic-regression head on dlib's 128-D face descriptors.

Used to check whether generated faces follow a ``gender`` request (``evaluate-attributes``) and to
give the CelebA training photos, which have no gender label, a pseudo label
(:mod:`sketch2face.data.pseudo_gender`). dlib's descriptors separate gender almost linearly, so a
129-parameter head fitted on FS2K's labelled *train* photos is enough; it ships as a small JSON
asset (:data:`ASSET_PATH`), so nothing here needs a dataset or the network at run time.

Labels follow FS2K: ``1`` female, ``0`` male; ``p_female`` is the head's probability of female.
Descriptors are computed as in :mod:`sketch2face.identity` (dlib's 5 landmarks -> 150 px chip ->
the PyTorch port of dlib's ResNet), in batches; dataset photos reuse the landmarks cached by
``prepare`` (:mod:`sketch2face.data.landmarks`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sketch2face.errors import CheckpointError, DatasetError, WeightsNotFoundError

logger = logging.getLogger(__name__)

#: The shipped head (refit with ``sketch2face gender fit``).
ASSET_PATH = Path(__file__).resolve().parents[1] / "assets" / "gender" / "gender_head_dlib128.json"
ASSET_FORMAT = "sketch2face-gender-head-v1"
DESCRIPTOR = "dlib_face_recognition_resnet_model_v1 (128-D, 150 px chip from 5 landmarks)"
DESCRIPTOR_DIM = 128
#: FS2K's convention, also used for pseudo labels and by ``attributes.training_vectors``.
FEMALE, MALE = 1, 0
LABEL_CONVENTION = "1 female, 0 male (FS2K); p = probability of female"
#: L2 strengths tried by cross-validation on the training descriptors (standardised features).
L2_GRID = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


# ---------------------------------------------------------------- the head


@dataclass(frozen=True)
class GenderHead:
    """``p_female = sigmoid(descriptor @ weights + bias)`` on raw dlib descriptors."""

    weights: np.ndarray  # (128,) float64
    bias: float
    meta: dict[str, Any] = field(default_factory=dict)  # provenance and measured accuracy

    def p_female(self, descriptors: np.ndarray) -> np.ndarray:
        """(N, 128) descriptors -> (N,) probability of female; NaN rows give NaN."""
        x = np.asarray(descriptors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.weights.shape[0]:
            raise ValueError(f"expected (N, {self.weights.shape[0]}) descriptors, got {x.shape}")
        return _sigmoid(x @ self.weights + self.bias)

    def to_json(self) -> dict[str, Any]:
        """The asset's JSON object."""
        return {
            "format": ASSET_FORMAT,
            "descriptor": DESCRIPTOR,
            "labels": LABEL_CONVENTION,
            "weights": [float(w) for w in self.weights],
            "bias": float(self.bias),
            **{k: v for k, v in self.meta.items() if k not in _RESERVED_KEYS},
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<json>") -> GenderHead:
        """Parse and check an asset object; :class:`CheckpointError` says what is wrong."""

        def bad(what: str) -> CheckpointError:
            return CheckpointError(
                f"{source}: {what}; the gender head is corrupt. Refit it with "
                "`sketch2face gender fit --dataset DIR` or reinstall sketch2face."
            )

        check_head_format(data, ASSET_FORMAT, bad)
        weights, bias = head_weights(data, DESCRIPTOR_DIM, bad)
        meta = {k: v for k, v in data.items() if k not in _RESERVED_KEYS}
        return cls(weights, bias, meta)


_RESERVED_KEYS = {"format", "descriptor", "labels", "weights", "bias"}


def check_head_format(data: Any, asset_format: str, bad: Callable[[str], Exception]) -> None:
    """Raise ``bad(reason)`` unless ``data`` is a JSON object of ``asset_format``."""
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    if data.get("format") != asset_format:
        raise bad(f"format is {data.get('format')!r}, expected {asset_format!r}")


def head_weights(
    data: dict[str, Any], dim: int, bad: Callable[[str], Exception], what: str = ""
) -> tuple[np.ndarray, float]:
    """A linear head's (weights (dim,), bias) from its JSON; ``bad(reason)`` when missing, of the
    wrong length (``what`` says where the length comes from) or not finite."""
    try:
        weights = np.asarray(data["weights"], dtype=np.float64)
        bias = float(data["bias"])
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(f"weights/bias missing or not numbers ({exc})") from exc
    if weights.shape != (dim,):
        raise bad(f"{weights.shape} weights, expected ({dim},){what}")
    if not (np.isfinite(weights).all() and math.isfinite(bias)):
        raise bad("non-finite weights")
    return weights, bias


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def save_gender_head(head: GenderHead, path: str | os.PathLike = ASSET_PATH) -> Path:
    """Write the head as JSON (atomically: a reader never sees half a file)."""
    return write_head_json(head.to_json(), path)


def write_head_json(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a fitted head's JSON atomically (a crash or full disk never leaves half a file)."""
    from sketch2face.imaging import atomic_write_bytes

    return atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode("utf-8"))


def read_head_json(path: str | os.PathLike, what: str, fit_command: str) -> dict[str, Any]:
    """A fitted head's JSON; :class:`WeightsNotFoundError` when missing and
    :class:`CheckpointError` when unreadable, both saying how to refit (``fit_command``)."""
    source = Path(path)
    if not source.is_file():
        raise WeightsNotFoundError(
            f"no {what} at {source}; fit one with `{fit_command}` "
            "(needs a prepared dataset with FS2K photos)."
        )
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{source}: not readable JSON ({exc}); the {what} is corrupt. Refit it with "
            f"`{fit_command}` or reinstall sketch2face."
        ) from exc
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{source}: not a JSON object; the {what} is corrupt. Refit it with `{fit_command}`."
        )
    return data


def load_gender_head(path: str | os.PathLike = ASSET_PATH) -> GenderHead:
    """The fitted head; a clear error when the file is missing or corrupt (read each call: 3 KB)."""
    data = read_head_json(path, "gender head", "sketch2face gender fit --dataset DIR")
    return GenderHead.from_json(data, str(path))


# ---------------------------------------------------------------- fitting


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, max_iter: int = 100
) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method; returns (weights, bias) on raw x.

    Features are standardised for the fit (so one ``l2`` suits every feature scale; the bias is not
    penalised) and the scaling is folded back into the returned weights. ``l2`` multiplies
    ``||w||^2 / 2`` against the summed log loss.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"expected (N, D) features and N labels, got {x.shape} and {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all() or len(np.unique(y)) < 2:
        raise ValueError("labels must be 0/1 and include both classes")
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-12] = 1.0
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0

    def objective(w: np.ndarray) -> float:
        s = z @ w
        # log(1 + e^s) - y s, stable for large |s|
        return float(np.sum(np.logaddexp(0.0, s) - y * s) + 0.5 * np.sum(penalty * w * w))

    w = np.zeros(z.shape[1])
    value = objective(w)
    for _ in range(max_iter):
        p = _sigmoid(z @ w)
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:  # backtracking: Newton can overshoot on (nearly) separable data
            candidate = w - t * step
            new_value = objective(candidate)
            if new_value <= value or t < 1e-6:
                break
            t *= 0.5
        w, improvement, value = candidate, value - new_value, new_value
        if np.max(np.abs(t * step)) < 1e-8 or improvement < 1e-10 * max(1.0, abs(value)):
            break
    weights = w[:-1] / std
    return weights, float(w[-1] - weights @ mean)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def choose_l2(
    x: np.ndarray, y: np.ndarray, *, grid: Sequence[float] = L2_GRID, folds: int = 5, seed: int = 0
) -> tuple[float, dict[float, dict[str, float]]]:
    """The L2 strength with the lowest k-fold log loss on (x, y) (calibration matters: pseudo labels
    keep only confident probabilities); also the per-strength fold accuracy and log loss."""
    order = np.random.default_rng(seed).permutation(len(x))
    parts = np.array_split(order, folds)
    scores: dict[float, dict[str, float]] = {}
    for l2 in grid:
        losses, hits = [], 0
        for k in range(folds):
            held = parts[k]
            fit_rows = np.concatenate([parts[j] for j in range(folds) if j != k])
            w, b = fit_logistic(x[fit_rows], y[fit_rows], l2=l2)
            p = _sigmoid(x[held] @ w + b)
            losses.append(_log_loss(p, y[held]) * len(held))
            hits += int(((p >= 0.5) == (y[held] == 1)).sum())
        scores[float(l2)] = {"log_loss": sum(losses) / len(x), "accuracy": hits / len(x)}
    best = min(scores, key=lambda l2: (scores[l2]["log_loss"], -l2))
    return best, scores


# ---------------------------------------------------------------- descriptors


@cache  # one converted network per device, not one per call
def _recogniser(device: str) -> torch.nn.Module:
    from sketch2face.identity.dlib_resnet import load_dlib_face_resnet

    # channels_last: ~1.5x faster on CPU for this ResNet (same numbers)
    return load_dlib_face_resnet(device).to(memory_format=torch.channels_last)


_recogniser_lock = threading.Lock()


def default_device() -> str:
    """``cuda`` when available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@torch.no_grad()
def descriptors_from_landmarks(
    images_u8: Sequence[np.ndarray] | np.ndarray,
    landmarks: Sequence[np.ndarray | None] | np.ndarray,
    *,
    device: str | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """(N, 128) float32 dlib descriptors from given (5, 2) landmarks; NaN rows where they are
    None or NaN.

    Like :meth:`sketch2face.identity.FaceEmbedder.embed_u8`, but the chips are warped a batch at a
    time (about 10x faster than one by one on CPU) and never all held in memory.
    """
    from sketch2face.identity.chips import CHIP_SIZE, chip_transform, warp_chips

    if len(landmarks) != len(images_u8):
        raise ValueError(f"{len(landmarks)} landmark sets for {len(images_u8)} images")
    device = device or default_device()
    with _recogniser_lock:
        model = _recogniser(device)
    out = np.full((len(images_u8), DESCRIPTOR_DIM), np.nan, dtype=np.float32)
    valid = [
        i
        for i in range(len(images_u8))
        if landmarks[i] is not None and np.isfinite(np.asarray(landmarks[i], np.float64)).all()
    ]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i in valid:  # images of one shape can be stacked
        by_shape.setdefault(tuple(np.shape(images_u8[i])), []).append(i)
    for rows in by_shape.values():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            images = torch.from_numpy(np.stack([np.asarray(images_u8[i]) for i in chunk]))
            images = images.to(device).permute(0, 3, 1, 2).float()
            matrices = np.stack(
                [chip_transform(np.asarray(landmarks[i], np.float64)) for i in chunk]
            )
            # dlib truncates its chip to uint8; flooring keeps our descriptors equal to dlib's
            chips = warp_chips(images, matrices, CHIP_SIZE).floor()
            chips = chips.contiguous(memory_format=torch.channels_last)
            out[chunk] = model(chips).float().cpu().numpy()
    return out


# ---------------------------------------------------------------- prediction


@dataclass(frozen=True)
class GenderPrediction:
    """Per image: ``p_female`` (NaN where no descriptor) and whether dlib detected a face."""

    p_female: np.ndarray  # (N,) float64
    face_found: np.ndarray  # (N,) bool

    @property
    def labels(self) -> np.ndarray:
        """(N,) int8: 1 female, 0 male (FS2K convention), -1 where no descriptor was made."""
        labels = np.full(len(self.p_female), -1, dtype=np.int8)
        known = np.isfinite(self.p_female)
        labels[known] = (self.p_female[known] >= 0.5).astype(np.int8)
        return labels

    def seen_as(self, gender: str) -> np.ndarray:
        """(N,) bool: classified as ``gender`` ("female" or "male")."""
        if gender not in ("female", "male"):
            raise ValueError(f"gender {gender!r}: use female or male")
        return self.labels == (FEMALE if gender == "female" else MALE)


def predict_gender(
    images_u8: Sequence[np.ndarray] | np.ndarray,
    *,
    landmarks: Sequence[np.ndarray | None] | np.ndarray | None = None,
    head: GenderHead | None = None,
    whole_image_fallback: bool = False,
    device: str | None = None,
) -> GenderPrediction:
    """Gender of HxWx3 uint8 RGB faces with the shipped head.

    ``landmarks`` (5, 2) per image skip detection (e.g. the dataset's cached ones). Otherwise dlib's
    HOG detector finds the largest face; where it finds none the row is NaN / label -1, unless
    ``whole_image_fallback`` (for aligned face crops such as generated faces, whose landmarks can
    still be placed when the detector misses; the evaluation's identity metrics do the same).
    """
    head = head or load_gender_head()
    n = len(images_u8)
    if n == 0:
        return GenderPrediction(np.zeros(0), np.zeros(0, dtype=bool))
    if landmarks is not None:
        found = np.array(
            [p is not None and np.isfinite(np.asarray(p, np.float64)).all() for p in landmarks],
            dtype=bool,
        )
        descriptors = descriptors_from_landmarks(images_u8, landmarks, device=device)
    else:
        from sketch2face.identity.chips import detect_landmarks5, whole_image_landmarks5

        points = [detect_landmarks5(np.asarray(im)) for im in images_u8]
        found = np.array([p is not None for p in points], dtype=bool)
        if whole_image_fallback:
            points = [
                p if p is not None else whole_image_landmarks5(np.asarray(im))
                for p, im in zip(points, images_u8)
            ]
        descriptors = descriptors_from_landmarks(images_u8, points, device=device)
    return GenderPrediction(head.p_female(descriptors), found)


# ---------------------------------------------------------------- dataset helpers


def split_descriptors(
    dataset_dir: str | os.PathLike,
    split: str,
    ids: Sequence[str],
    *,
    device: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """(len(ids), 128) descriptors of those photos of a prepared split, from its cached arrays and
    landmarks (NaN rows where the photo has no landmarks)."""
    from tqdm import tqdm

    from sketch2face.data.dataset import load_split_u8
    from sketch2face.data.landmarks import load_split_landmarks

    arrays = load_split_u8(dataset_dir, split)  # memory-mapped
    points = load_split_landmarks(dataset_dir, split, progress=progress)
    position = {row_id: k for k, row_id in enumerate(arrays.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise DatasetError(f"{len(missing)} ids not in split {split!r}, e.g. {missing[:3]}")
    rows = [position[i] for i in ids]
    out = np.full((len(rows), DESCRIPTOR_DIM), np.nan, dtype=np.float32)
    step = 4 * batch_size  # bounded memory: only this many photos are read at once
    for start in tqdm(
        range(0, len(rows), step), desc=f"descriptors {split} ({step} a step)", disable=not progress
    ):
        chunk = rows[start : start + step]
        out[start : start + len(chunk)] = descriptors_from_landmarks(
            arrays.photos[chunk], points[chunk], device=device, batch_size=batch_size
        )
    return out


def _accuracy(head: GenderHead, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    known = np.isfinite(x[:, 0])
    p = head.p_female(x[known])
    correct = (p >= 0.5) == (y[known] == FEMALE)
    return {
        "accuracy": float(correct.mean()) if len(p) else None,
        "count": int(known.sum()),
        "no_face": int((~known).sum()),
        "female": int((y[known] == FEMALE).sum()),
        "male": int((y[known] == MALE).sum()),
    }


def fit_gender_head(
    dataset_dir: str | os.PathLike,
    *,
    source: str = "fs2k",
    device: str | None = None,
    progress: bool = True,
) -> GenderHead:
    """Fit the head on a prepared dataset's labelled ``source`` photos of the *train* split.

    The L2 strength is chosen by 5-fold cross-validation on train. Accuracy on the val split (and,
    for information only, test) is measured and stored in ``head.meta``; neither is used to fit.
    """
    import time

    from sketch2face.data.manifest import MANIFEST_NAME, file_sha256, read_manifest

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
        x = split_descriptors(
            root, split, [r.id for r in labelled], device=device, progress=progress
        )
        data[split] = (x, y)
    x, y = data["train"]
    known = np.isfinite(x[:, 0])
    if known.sum() < 20 or len(np.unique(y[known])) < 2:
        raise DatasetError(
            f"{root}: only {int(known.sum())} {source} train photos with a gender label and a "
            "face; cannot fit a gender head."
        )
    x, y = x[known].astype(np.float64), y[known]
    l2, cv = choose_l2(x, y)
    weights, bias = fit_logistic(x, y, l2=l2)
    head = GenderHead(weights, bias)
    meta: dict[str, Any] = {
        "fitted_on": {
            "dataset_manifest_sha256": file_sha256(root / MANIFEST_NAME),
            "source": source,
            "split": "train",
            "female": int((y == FEMALE).sum()),
            "male": int((y == MALE).sum()),
        },
        "l2": l2,
        "cross_validation": {str(k): v for k, v in cv.items()},
        "train": _accuracy(head, x, y),
        "val": _accuracy(head, *data["val"]),
        "test_for_information": _accuracy(head, *data["test"]),
        "fitted_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fit_seconds": round(time.perf_counter() - started, 1),
    }
    return GenderHead(weights, bias, meta)
