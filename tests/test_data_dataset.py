"""The uint8 split cache of ``sketch2face.data.dataset`` (``load_split_u8``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sketch2face.data.dataset import load_split_u8
from sketch2face.data.manifest import ManifestRow, file_sha256, write_manifest
from sketch2face.errors import DatasetError
from sketch2face.imaging import save_png

FS2K_ATTRS = {
    "style": 1,
    "hair": 1,
    "hair_color": 3,
    "gender": 0,
    "earring": 1,
    "smile": 0,
    "frontal_face": 1,
    "skin_color": [10, 20],
    "lip_color": [255.0, 127.5, 0.0],
    "eye_color": [51.0, 102.0, 204.0],
}


def _noise_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    return image


def _write_dataset(root, n_train=4, n_val=2):
    rows = []
    for i in range(n_train + n_val):
        split = "train" if i < n_train else "val"
        item_id = f"toy-{i:02d}"
        save_png(_noise_image(i), root / "sketches" / f"{item_id}.png")
        save_png(_noise_image(100 + i), root / "photos" / f"{item_id}.png")
        rows.append(
            ManifestRow(
                item_id,
                "toy",
                "pencil",
                split,
                f"sketches/{item_id}.png",
                f"photos/{item_id}.png",
                FS2K_ATTRS if i == 0 else {},
                True,
            )
        )
    write_manifest(root / "manifest.jsonl", rows)
    return rows


def test_load_split_u8_decodes_and_caches(tmp_path):
    _write_dataset(tmp_path)
    arrays = load_split_u8(tmp_path, "train")
    assert arrays.sketches.shape == arrays.photos.shape == (4, 256, 256, 3)
    assert arrays.sketches.dtype == arrays.photos.dtype == np.uint8
    assert arrays.ids == ["toy-00", "toy-01", "toy-02", "toy-03"]
    assert arrays.attributes[0] == FS2K_ATTRS and arrays.attributes[1] == {}
    assert np.array_equal(arrays.sketches[2], _noise_image(2))
    assert np.array_equal(arrays.photos[2], _noise_image(102))
    cache = tmp_path / "cache"
    assert (cache / "train_sketches.npy").is_file() and (cache / "train_photos.npy").is_file()
    meta = json.loads((cache / "train_meta.json").read_text())
    assert meta["manifest_sha256"] == file_sha256(tmp_path / "manifest.jsonl")

    # A second load reads the cache, not the PNGs.
    (tmp_path / "sketches" / "toy-02.png").write_bytes(b"")
    again = load_split_u8(tmp_path, "train")
    assert np.array_equal(again.sketches[2], _noise_image(2))
    assert len(load_split_u8(tmp_path, "val")) == 2
    assert len(load_split_u8(tmp_path, "test")) == 0


def test_cache_is_rebuilt_when_manifest_changes(tmp_path):
    rows = _write_dataset(tmp_path)
    assert len(load_split_u8(tmp_path, "train")) == 4
    write_manifest(tmp_path / "manifest.jsonl", [r for r in rows if r.id != "toy-01"])
    arrays = load_split_u8(tmp_path, "train")
    assert arrays.ids == ["toy-00", "toy-02", "toy-03"]
    assert np.array_equal(arrays.photos[1], _noise_image(102))
    assert not list((tmp_path / "cache").glob("*.tmp-*"))


def test_damaged_dataset_and_bad_split_give_dataset_errors(tmp_path):
    _write_dataset(tmp_path)
    with pytest.raises(DatasetError, match="unknown split"):
        load_split_u8(tmp_path, "training")
    (tmp_path / "photos" / "toy-00.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="--force"):
        load_split_u8(tmp_path, "train")
    with pytest.raises(DatasetError, match="no manifest"):
        load_split_u8(tmp_path / "missing", "train")
