"""Five facial landmarks of every prepared photo, found once and cached beside the image cache.

The identity loss compares generated and real faces on dlib's 150x150 face chips; the chip of a
pair is defined by the *real photo's* five landmarks (eye corners and nose), which also frame the
generated face because the pair is aligned. Landmarks are in the 256x256 prepared-image pixel
coordinates; a photo without a detectable face gets NaN (the identity loss skips it).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sketch2face.data.dataset import CACHE_DIR, load_split_u8
from sketch2face.data.manifest import MANIFEST_NAME, file_sha256, read_manifest

logger = logging.getLogger(__name__)

#: Number of points of dlib's 5-point shape model: two corners of each eye, then the nose base.
N_LANDMARKS = 5


def _paths(dataset_dir: Path, split: str) -> tuple[Path, Path]:
    cache = dataset_dir / CACHE_DIR
    return cache / f"{split}_landmarks5.npy", cache / f"{split}_landmarks5.json"


def detect_split_landmarks(
    photos_u8: np.ndarray,
    *,
    rows: list[int] | None = None,
    progress: bool = True,
    desc: str = "landmarks",
) -> np.ndarray:
    """(N, 5, 2) float32 landmarks of (N, H, W, 3) uint8 photos (or of the given ``rows`` only,
    in that order); NaN rows where no face is found."""
    from sketch2face.identity.chips import detect_landmarks5  # dlib: only when computing

    picked = list(range(len(photos_u8))) if rows is None else rows
    out = np.full((len(picked), N_LANDMARKS, 2), np.nan, np.float32)
    for k, row in enumerate(tqdm(picked, desc=desc, disable=not progress, dynamic_ncols=True)):
        points = detect_landmarks5(np.asarray(photos_u8[row]))
        if points is not None:
            out[k] = points
    return out


def load_split_landmarks(
    dataset_dir: str | os.PathLike, split: str, *, progress: bool = True
) -> np.ndarray:
    """The split's (N, 5, 2) photo landmarks, computed on first use and cached per manifest.

    ``sketch2face prepare`` calls this for every split, so training normally only reads the cache;
    a dataset prepared before landmarks existed gets them here the first time (about 20 ms a photo).
    """
    root = Path(dataset_dir)
    array_path, meta_path = _paths(root, split)
    manifest_sha = file_sha256(root / MANIFEST_NAME)
    arrays = load_split_u8(root, split)
    if array_path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            meta = {}
        if meta.get("manifest_sha256") == manifest_sha and meta.get("ids") == arrays.ids:
            return np.load(array_path)
    logger.info("finding 5 landmarks on %d %s photos of %s", len(arrays), split, root)
    # rows that share a photo file (artist-style drawings of one photo) share its landmarks
    photo_of = {r.id: r.photo for r in read_manifest(root) if r.split == split}
    first_row: dict[str, int] = {}
    for i, row_id in enumerate(arrays.ids):
        first_row.setdefault(photo_of[row_id], i)
    unique_points = detect_split_landmarks(
        arrays.photos, rows=list(first_row.values()), progress=progress, desc=f"landmarks {split}"
    )
    slot = {photo: k for k, photo in enumerate(first_row)}
    points = unique_points[[slot[photo_of[row_id]] for row_id in arrays.ids]]
    array_path.parent.mkdir(parents=True, exist_ok=True)
    tag = f".tmp-{os.getpid()}"
    tmp_array = array_path.with_name(array_path.name + tag + ".npy")
    np.save(tmp_array, points)
    os.replace(tmp_array, array_path)
    found = int(np.isfinite(points[:, 0, 0]).sum())
    meta = {"manifest_sha256": manifest_sha, "ids": arrays.ids, "found": found}
    tmp_meta = meta_path.with_name(meta_path.name + tag)
    tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp_meta, meta_path)
    logger.info("landmarks: %d of %d %s photos have a face", found, len(points), split)
    return points
