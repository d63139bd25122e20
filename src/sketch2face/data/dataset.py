"""A prepared split decoded once into uint8 arrays, cached as .npy beside the manifest.

Training (:func:`sketch2face.training.data.load_pairs`), landmark caching and the evaluation
baselines read splits through :func:`load_split_u8`. Each row's manifest ``attributes`` dict is
passed through as-is; the generator's condition vector is built from the photos by
:func:`sketch2face.attributes.training_vectors`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketch2face.data.align import IMAGE_SIZE_PX
from sketch2face.data.manifest import MANIFEST_NAME, SPLITS, file_sha256, read_manifest
from sketch2face.errors import DatasetError, InvalidImageError
from sketch2face.imaging import load_image

logger = logging.getLogger(__name__)

__all__ = ["CACHE_DIR", "PairArrays", "load_split_u8"]

#: Cache folder inside the dataset folder (also holds the landmarks cache).
CACHE_DIR = "cache"


@dataclass(frozen=True)
class PairArrays:
    """One split as uint8 arrays: ``sketches``/``photos`` (N, 256, 256, 3), ids and attributes."""

    sketches: np.ndarray
    photos: np.ndarray
    ids: list[str]
    attributes: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ids)


def _cache_paths(dataset_dir: Path, split: str) -> tuple[Path, Path, Path]:
    cache = dataset_dir / CACHE_DIR
    return (
        cache / f"{split}_sketches.npy",
        cache / f"{split}_photos.npy",
        cache / f"{split}_meta.json",
    )


def load_split_u8(dataset_dir: str | os.PathLike, split: str, *, mmap: bool = True) -> PairArrays:
    """Load a split as uint8 arrays, decoding the PNGs only when the cache is missing or stale.

    The cache (``<dataset>/cache/<split>_{sketches,photos}.npy``) is tied to the manifest's sha256
    and rebuilt when the manifest changes. With ``mmap`` the arrays are memory-mapped read-only
    (shared by DataLoader workers instead of copied).
    """
    root = Path(dataset_dir)
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    manifest_path = root / MANIFEST_NAME
    rows = [r for r in read_manifest(manifest_path) if r.split == split]
    manifest_sha = file_sha256(manifest_path)
    sketch_path, photo_path, meta_path = _cache_paths(root, split)
    ids = [r.id for r in rows]
    attributes = [dict(r.attributes) for r in rows]
    if _cache_is_fresh(meta_path, sketch_path, photo_path, manifest_sha, ids):
        mode = "r" if mmap else None
        return PairArrays(
            np.load(sketch_path, mmap_mode=mode),
            np.load(photo_path, mmap_mode=mode),
            ids,
            attributes,
        )

    logger.info("decoding %d %s pairs of %s into the uint8 cache", len(rows), split, root)
    sketch_path.parent.mkdir(parents=True, exist_ok=True)
    shape = (len(rows), IMAGE_SIZE_PX, IMAGE_SIZE_PX, 3)
    tag = f".tmp-{os.getpid()}"
    tmp_sketch = sketch_path.with_name(sketch_path.name + tag)
    tmp_photo = photo_path.with_name(photo_path.name + tag)
    try:
        sketches = np.lib.format.open_memmap(tmp_sketch, mode="w+", dtype=np.uint8, shape=shape)
        photos = np.lib.format.open_memmap(tmp_photo, mode="w+", dtype=np.uint8, shape=shape)
        for i, row in enumerate(rows):
            sketches[i] = _load_cell(root / row.sketch)
            photos[i] = _load_cell(root / row.photo)
        sketches.flush()
        photos.flush()
        del sketches, photos
        os.replace(tmp_sketch, sketch_path)
        os.replace(tmp_photo, photo_path)
    finally:
        tmp_sketch.unlink(missing_ok=True)
        tmp_photo.unlink(missing_ok=True)
    meta = {"manifest_sha256": manifest_sha, "split": split, "count": len(rows), "ids": ids}
    tmp_meta = meta_path.with_name(meta_path.name + tag)
    tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp_meta, meta_path)
    mode = "r" if mmap else None
    return PairArrays(
        np.load(sketch_path, mmap_mode=mode), np.load(photo_path, mmap_mode=mode), ids, attributes
    )


def _cache_is_fresh(
    meta_path: Path, sketch_path: Path, photo_path: Path, sha: str, ids: list[str]
) -> bool:
    if not (meta_path.is_file() and sketch_path.is_file() and photo_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("manifest_sha256") == sha and meta.get("ids") == ids


def _load_cell(path: Path) -> np.ndarray:
    try:
        image_u8 = load_image(path)
    except InvalidImageError as exc:
        raise DatasetError(
            f"{exc} The dataset is damaged; rebuild it with `sketch2face prepare --force`."
        ) from exc
    if image_u8.shape != (IMAGE_SIZE_PX, IMAGE_SIZE_PX, 3):
        raise DatasetError(
            f"{path} is {image_u8.shape[1]}x{image_u8.shape[0]}, "
            f"expected {IMAGE_SIZE_PX}x{IMAGE_SIZE_PX}; "
            "rebuild the dataset with `sketch2face prepare --force`."
        )
    return image_u8
