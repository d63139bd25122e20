"""uint8 split cache, PairedSketchDataset tensors, and the paired transform."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sketch2face.data.attributes import encode_request_attributes
from sketch2face.data.dataset import (
    ATTRIBUTE_DIM,
    ATTRIBUTE_NAMES,
    PairedSketchDataset,
    encode_attributes,
    load_split_u8,
)
from sketch2face.data.manifest import ManifestRow, file_sha256, write_manifest
from sketch2face.data.transforms import PairedTransform, TransformParams
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


def _asymmetric_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    image[:, :64] = 0  # dark left band: a flip is visible
    return image


def _write_dataset(root, n_train=4, n_val=2):
    rows = []
    for i in range(n_train + n_val):
        split = "train" if i < n_train else "val"
        item_id = f"toy-{i:02d}"
        save_png(_asymmetric_image(i), root / "sketches" / f"{item_id}.png")
        save_png(_asymmetric_image(100 + i), root / "photos" / f"{item_id}.png")
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
    assert np.array_equal(arrays.sketches[2], _asymmetric_image(2))
    assert np.array_equal(arrays.photos[2], _asymmetric_image(102))
    cache = tmp_path / "cache"
    assert (cache / "train_sketches.npy").is_file() and (cache / "train_photos.npy").is_file()
    meta = json.loads((cache / "train_meta.json").read_text())
    assert meta["manifest_sha256"] == file_sha256(tmp_path / "manifest.jsonl")

    # A second load reads the cache, not the PNGs.
    (tmp_path / "sketches" / "toy-02.png").write_bytes(b"")
    again = load_split_u8(tmp_path, "train")
    assert np.array_equal(again.sketches[2], _asymmetric_image(2))
    assert len(load_split_u8(tmp_path, "val")) == 2
    assert len(load_split_u8(tmp_path, "test")) == 0


def test_cache_is_rebuilt_when_manifest_changes(tmp_path):
    rows = _write_dataset(tmp_path)
    assert len(load_split_u8(tmp_path, "train")) == 4
    write_manifest(tmp_path / "manifest.jsonl", [r for r in rows if r.id != "toy-01"])
    arrays = load_split_u8(tmp_path, "train")
    assert arrays.ids == ["toy-00", "toy-02", "toy-03"]
    assert np.array_equal(arrays.photos[1], _asymmetric_image(102))
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


def test_dataset_yields_tensors_in_range_with_attributes(tmp_path):
    _write_dataset(tmp_path)
    dataset = PairedSketchDataset(tmp_path, "train")
    assert len(dataset) == 4
    sketch_t, photo_t, attributes_t = dataset[0]
    for t in (sketch_t, photo_t):
        assert t.shape == (3, 256, 256) and t.dtype == torch.float32
        assert t.min() >= -1.0 and t.max() <= 1.0
        assert t.min() == -1.0  # the black band maps to -1
    assert attributes_t.shape == (ATTRIBUTE_DIM,) and attributes_t.dtype == torch.float32
    assert torch.equal(dataset[1][2], torch.full((ATTRIBUTE_DIM,), -1.0))  # unknown -> -1
    loader = torch.utils.data.DataLoader(dataset, batch_size=2)
    sketches, photos, attrs = next(iter(loader))
    assert sketches.shape == (2, 3, 256, 256) and attrs.shape == (2, ATTRIBUTE_DIM)
    with pytest.raises(DatasetError, match="empty"):
        PairedSketchDataset(tmp_path, "test")


def test_encode_attributes_layout():
    vec = dict(zip(ATTRIBUTE_NAMES, encode_attributes(FS2K_ATTRS).tolist(), strict=True))
    assert vec["hair"] == 1 and vec["gender"] == 0 and vec["earring"] == 1 and vec["smile"] == 0
    assert [vec[f"hair_color_{i}"] for i in range(5)] == [0, 0, 0, 1, 0]
    assert vec["lip_r"] == 1.0 and vec["lip_g"] == pytest.approx(0.5) and vec["lip_b"] == 0.0
    assert vec["eye_b"] == pytest.approx(0.8)
    assert (encode_attributes({}) == -1).all()
    assert encode_attributes({"identity": "42"}).tolist() == [-1.0] * ATTRIBUTE_DIM


def test_encode_request_attributes_validates_user_values():
    vec = encode_request_attributes({"gender": "1", "smile": True, "hair_color": 4, "earring": ""})
    named = dict(zip(ATTRIBUTE_NAMES, vec.tolist(), strict=True))
    assert named["gender"] == 1 and named["smile"] == 1 and named["earring"] == -1
    assert named["hair_color_4"] == 1 and named["hair_color_0"] == 0 and named["hair"] == -1
    assert np.array_equal(encode_request_attributes({}), np.full(ATTRIBUTE_DIM, -1, np.float32))
    with pytest.raises(ValueError, match="unknown attribute"):
        encode_request_attributes({"age": 30})
    with pytest.raises(ValueError, match="hair_color"):
        encode_request_attributes({"hair_color": 9})
    with pytest.raises(ValueError, match="lip_color"):
        encode_request_attributes({"lip_color": [1, 2]})
    with pytest.raises(ValueError, match="gender"):
        encode_request_attributes({"gender": "maybe"})


def test_paired_transform_applies_identical_crop_and_flip():
    transform = PairedTransform()
    rng = np.random.default_rng(0)
    image = _asymmetric_image(7)
    flips = set()
    for _ in range(12):
        params = transform.get_params(rng)
        flips.add(params.flip)
        a, b = transform.apply(image, params), transform.apply(image.copy(), params)
        assert a.shape == (256, 256, 3) and np.array_equal(a, b)
    assert flips == {True, False}
    sketch, photo = transform(image, image.copy(), np.random.default_rng(3))
    assert np.array_equal(sketch, photo)  # one draw for both images of the pair

    mirror = PairedTransform(load_size_px=256).apply(image, TransformParams(256, 0, 0, True))
    assert np.array_equal(mirror, image[:, ::-1])
    with pytest.raises(ValueError):
        PairedTransform(load_size_px=200)


def test_augmented_dataset_keeps_pairs_aligned(tmp_path):
    _write_dataset(tmp_path)
    # Make the photo of toy-00 equal to its sketch: after augmentation they must still be equal.
    (tmp_path / "photos" / "toy-00.png").write_bytes(
        (tmp_path / "sketches" / "toy-00.png").read_bytes()
    )
    dataset = PairedSketchDataset(tmp_path, "train", augment=True, seed=1)
    seen_flip = seen_plain = False
    for _ in range(8):
        sketch_t, photo_t, _ = dataset[0]
        assert torch.equal(sketch_t, photo_t)
        left_dark = bool(sketch_t[:, :, :20].max() < -0.99)
        seen_plain |= left_dark
        seen_flip |= bool(sketch_t[:, :, -20:].max() < -0.99)
    assert seen_flip and seen_plain
