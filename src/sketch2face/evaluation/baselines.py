"""Trivial baselines evaluation scores beside the model: the mean training face, the sketch itself
and stage one sharpened (a trivial second stage).

* **mean face**: one constant 256x256 uint8 RGB image, the per-pixel mean of the ``train`` split
  photos of the prepared dataset the model was trained on. Any model that scores below it on a
  metric has learnt nothing that metric can see. It is stored with the model as
  ``<checkpoint stem>.mean_face.png`` beside the ``.safetensors`` file (``sketch2face export
  --mean-face --dataset DIR``), with the dataset, split, photo count and manifest hash in the
  PNG's ``sketch2face:mean_face`` text chunk.
* **sketch**: the prepared 256x256 sketch the network saw, scored exactly like a generated face
  (computed inside :func:`sketch2face.evaluation.evaluate.evaluate_pairs`; nothing to store).
* **stage one sharpened**: stage one's own face through :func:`unsharp_mask` (Gaussian sigma 2 px,
  amount 1.0), a second stage that restores nothing from outside the face. A refiner is only worth
  its weights if it beats this on rank-1 and realism FD: on FS2K val the mask alone took stage one
  from rank-1 0.489 / FD 163 to 0.519 / 47 (0.29x, past the issue's FD <= 0.6x target), while on
  CelebA's photo-made sketches it hurt (0.860 / 22 -> 0.825 / 25). Also computed inside
  ``evaluate_pairs``; nothing to store.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, PngImagePlugin

from sketch2face.errors import DatasetError, InvalidImageError
from sketch2face.imaging import atomic_write_bytes, load_image

MEAN_FACE_SUFFIX = ".mean_face.png"
MEAN_FACE_SIZE_PX = 256
#: PNG text chunk holding the provenance JSON of a stored mean face.
MEAN_FACE_PNG_KEY = "sketch2face:mean_face"
_CHUNK = 256
#: The trivial second stage: unsharp mask of stage one's face, Gaussian sigma (px) and amount.
SHARPEN_SIGMA_PX = 2.0
SHARPEN_AMOUNT = 1.0

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class MeanFace:
    """The mean training face and where it came from (shown in the report)."""

    image: np.ndarray  # 256x256x3 uint8
    source: str


def unsharp_mask(
    image_u8: np.ndarray, sigma_px: float = SHARPEN_SIGMA_PX, amount: float = SHARPEN_AMOUNT
) -> np.ndarray:
    """Sharpen an image by an unsharp mask: ``f + amount * (f - gaussian_blur(f, sigma_px))``.

    This is evaluation's trivial second stage (the "stage one sharpened" baseline): it only
    steepens the edges already in stage one's face, so it adds high-frequency contrast, which
    moves the realism statistics towards real photos, without any knowledge of faces. A refiner
    that does not beat it on rank-1 and realism FD is doing no more than sharpening.

    Args:
        image_u8: HxW or HxWxC uint8 image (each channel is sharpened on its own).
        sigma_px: standard deviation of the Gaussian blur, in pixels (> 0); the kernel covers
            +-4 sigma and the border is reflected (OpenCV's default), so a flat image stays flat.
        amount: how much of the detail (image minus blur) is added back (>= 0; 0 = unchanged).

    Returns:
        The sharpened image, same shape, uint8 (rounded to nearest, clipped to 0..255).
    """
    image = np.asarray(image_u8)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"unsharp_mask takes an HxW(xC) uint8 image, got {image.shape} {image.dtype}"
        )
    if not sigma_px > 0:
        raise ValueError(f"sigma_px must be > 0, got {sigma_px}")
    if not amount >= 0:
        raise ValueError(f"amount must be >= 0, got {amount}")
    f = image.astype(np.float32)
    blurred = cv2.GaussianBlur(f, (0, 0), sigmaX=sigma_px, sigmaY=sigma_px)
    if blurred.ndim < f.ndim:  # cv2 drops a trailing single channel
        blurred = blurred.reshape(f.shape)
    return np.clip(np.rint(f + amount * (f - blurred)), 0, 255).astype(np.uint8)


def _mean_of_train_photos(dataset_dir: PathLike) -> tuple[np.ndarray, int]:
    from sketch2face.data.dataset import load_split_u8

    photos = load_split_u8(dataset_dir, "train").photos
    count = len(photos)
    if count == 0:
        raise DatasetError(
            f"{dataset_dir}: the manifest has no 'train' pairs; the mean face is the mean of the "
            "training photos (never the test split)."
        )
    if photos.shape[1:] != (MEAN_FACE_SIZE_PX, MEAN_FACE_SIZE_PX, 3):
        raise DatasetError(
            f"{dataset_dir}: train photos are {photos.shape[1:]}, expected "
            f"{MEAN_FACE_SIZE_PX}x{MEAN_FACE_SIZE_PX}x3"
        )
    total = np.zeros(photos.shape[1:], dtype=np.float64)
    for start in range(0, count, _CHUNK):  # memory-mapped: read a chunk at a time
        total += np.asarray(photos[start : start + _CHUNK], dtype=np.float64).sum(axis=0)
    mean = np.clip(np.rint(total / count), 0, 255).astype(np.uint8)
    return mean, count


def compute_mean_face(dataset_dir: PathLike) -> np.ndarray:
    """Per-pixel mean (rounded) of the ``train`` split photos of a prepared dataset: 256x256x3 uint8.

    Uses :func:`sketch2face.data.dataset.load_split_u8`, which builds the split's uint8 cache in
    ``<dataset>/cache/`` first if it is missing or stale. Raises DatasetError when the split is
    empty.
    """
    return _mean_of_train_photos(dataset_dir)[0]


def mean_face_path(checkpoint: PathLike) -> Path:
    """Where the mean face of a checkpoint is stored: ``<dir>/<stem>.mean_face.png``."""
    path = Path(checkpoint)
    return path.with_name(path.stem + MEAN_FACE_SUFFIX)


def save_mean_face(
    image_u8: np.ndarray, path: PathLike, *, provenance: dict[str, object] | None = None
) -> Path:
    """Write a mean face PNG (atomically), with ``provenance`` as JSON in a PNG text chunk."""
    image = np.asarray(image_u8)
    if image.shape != (MEAN_FACE_SIZE_PX, MEAN_FACE_SIZE_PX, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"a mean face is a {MEAN_FACE_SIZE_PX}x{MEAN_FACE_SIZE_PX}x3 uint8 image, got "
            f"{image.shape} {image.dtype}"
        )
    info = PngImagePlugin.PngInfo()
    info.add_text(MEAN_FACE_PNG_KEY, json.dumps(provenance or {}, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", pnginfo=info)
    return atomic_write_bytes(path, buf.getvalue())


def create_mean_face(dataset_dir: PathLike, path: PathLike) -> tuple[Path, int]:
    """Compute the mean face of ``dataset_dir``'s train split and store it at ``path``.

    Returns (path written, number of train photos averaged).
    """
    from sketch2face.data.manifest import MANIFEST_NAME, file_sha256

    root = Path(dataset_dir)
    image, count = _mean_of_train_photos(root)
    provenance = {
        "dataset": str(root.resolve()),
        "split": "train",
        "photos": count,
        "manifest_sha256": file_sha256(root / MANIFEST_NAME),
    }
    return save_mean_face(image, path, provenance=provenance), count


def read_mean_face_provenance(path: PathLike) -> dict[str, object]:
    """The provenance stored in a mean face PNG ({} when there is none)."""
    try:
        with Image.open(path) as img:
            text = getattr(img, "text", {}).get(MEAN_FACE_PNG_KEY)
    except OSError:
        return {}
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def load_mean_face(path: PathLike) -> MeanFace:
    """Load a stored mean face; raises InvalidImageError when it is unreadable or not 256x256."""
    image = load_image(path)
    if image.shape != (MEAN_FACE_SIZE_PX, MEAN_FACE_SIZE_PX, 3):
        raise InvalidImageError(
            f"{path} is {image.shape[1]}x{image.shape[0]}; a mean face must be "
            f"{MEAN_FACE_SIZE_PX}x{MEAN_FACE_SIZE_PX} (recreate it with "
            "`sketch2face export --mean-face --dataset DIR`)."
        )
    prov = read_mean_face_provenance(path)
    detail = (
        f" (mean of {prov['photos']} train photos of {prov.get('dataset', '?')})"
        if "photos" in prov
        else ""
    )
    return MeanFace(image, f"stored in {path}{detail}")


def resolve_mean_face(
    checkpoint: PathLike | None,
    *,
    explicit: PathLike | None = None,
    dataset_dir: PathLike | None = None,
) -> tuple[MeanFace | None, str]:
    """Find the mean face for the model being evaluated: (MeanFace or None, one-line message).

    Order: ``explicit`` path (must load); else ``<checkpoint stem>.mean_face.png`` beside the
    checkpoint; else computed from ``dataset_dir``'s **train** split (never the test split), which
    the message says; else None with the reason as the message.
    """
    if explicit is not None:
        face = load_mean_face(explicit)
        return face, f"mean face: {face.source}"
    stored = mean_face_path(checkpoint) if checkpoint is not None else None
    if stored is not None and stored.is_file():
        try:
            face = load_mean_face(stored)
        except InvalidImageError as exc:
            stored_problem = f"{stored} is unusable ({exc})"
        else:
            return face, f"mean face: {face.source}"
    else:
        stored_problem = (
            f"no mean face stored beside the checkpoint ({stored})"
            if stored is not None
            else "no checkpoint path to look for a stored mean face beside"
        )
    if dataset_dir is not None:
        try:
            image, count = _mean_of_train_photos(dataset_dir)
        except DatasetError as exc:
            return None, f"mean face unavailable: {stored_problem}, and {exc}"
        source = (
            f"computed now from the train split of {dataset_dir} ({count} photos; the model's own "
            f"training set only if it was trained on this dataset) because {stored_problem}"
        )
        return MeanFace(image, source), f"mean face: {source}"
    return None, (
        f"mean face unavailable: {stored_problem}; create it with `sketch2face export --mean-face "
        "--dataset DATASET_DIR --checkpoint CKPT`, or evaluate with --manifest to compute it from "
        "that dataset's train split"
    )
