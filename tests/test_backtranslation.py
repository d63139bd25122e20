"""Back-translation (issue 21): the photo -> sketch direction of the trainer's data, the style
condition, and the PhotoSketcher that draws artist-style sketches from a trained checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketch2face.backtranslation.sketcher import PhotoSketcher
from sketch2face.backtranslation.styles import ARTIST_STYLES, style_index, style_vectors
from sketch2face.data.manifest import ManifestRow, write_manifest
from sketch2face.errors import CheckpointError, ConfigError
from sketch2face.models.checkpoint import save_checkpoint
from sketch2face.models.losses import ssim_map
from sketch2face.models.unet import GeneratorConfig, UNetGenerator
from sketch2face.training.config import DataConfig, load_config
from sketch2face.training.data import load_pairs


def _dataset(root: Path) -> None:
    """Three FS2K train rows (one per style) and a CelebA row; sketch pixels 200+i, photos 20+i."""
    rows = [
        ManifestRow(f"fs2k-{i}", "fs2k", style, "train", f"sketches/{i}.png", f"photos/{i}.png")
        for i, style in enumerate(ARTIST_STYLES)
    ] + [ManifestRow("celeba-9", "celeba", "pencil", "train", "sketches/9.png", "photos/9.png")]
    for folder in ("sketches", "photos"):
        (root / folder).mkdir(parents=True)
    for row in rows:
        i = int(row.id.split("-")[1])
        Image.fromarray(np.full((256, 256, 3), 200 + i, np.uint8)).save(root / row.sketch)
        Image.fromarray(np.full((256, 256, 3), 20 + i, np.uint8)).save(root / row.photo)
    write_manifest(root / "manifest.jsonl", rows)


def test_style_vectors_are_one_hot_and_unknown_styles_are_refused() -> None:
    vectors = style_vectors(["fs2k_style2", "0", "fs2k_style1"])
    assert vectors.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert style_index("1") == 1
    with pytest.raises(ConfigError, match="unknown artist style 'pencil'"):
        style_vectors(["pencil"])


def test_photo2sketch_pairs_are_turned_round_and_conditioned_on_the_style(tmp_path: Path) -> None:
    _dataset(tmp_path)
    cfg = DataConfig(dataset_dir=str(tmp_path), direction="photo2sketch", sources=("fs2k",))
    pairs = load_pairs(cfg, "train")
    rows = pairs.rows(torch.arange(len(pairs)))
    assert len(pairs) == 3  # the CelebA row is left out
    # inputs are the photos (20+i), targets the artist sketches (200+i)
    assert pairs.sketches[rows, 0, 0, 0].tolist() == [20, 21, 22]
    assert pairs.photos[rows, 0, 0, 0].tolist() == [200, 201, 202]
    assert pairs.attributes[rows].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]

    held_out = DataConfig(
        dataset_dir=str(tmp_path),
        direction="photo2sketch",
        sources=("fs2k",),
        exclude_styles=("fs2k_style1",),
    )
    pairs = load_pairs(held_out, "train")
    assert pairs.photos[pairs.rows(torch.arange(len(pairs))), 0, 0, 0].tolist() == [200, 202]


def test_excluded_styles_also_apply_to_the_product_direction(tmp_path: Path) -> None:
    _dataset(tmp_path)
    pairs = load_pairs(
        DataConfig(dataset_dir=str(tmp_path), exclude_styles=("fs2k_style0", "pencil")), "train"
    )
    kept = pairs.rows(torch.arange(len(pairs)))
    assert pairs.sketches[kept, 0, 0, 0].tolist() == [201, 202]
    assert pairs.attributes.shape[1] == 10  # the witness-attribute vector, not a style


def test_direction_is_checked() -> None:
    with pytest.raises(ConfigError, match="data.direction must be one of"):
        DataConfig(direction="sideways")
    cfg = load_config(Path(__file__).parents[1] / "configs" / "photo2sketch_fs2k.toml")
    assert cfg.data.direction == "photo2sketch" and cfg.generator.attribute_dim == 3


def test_ssim_stays_finite_and_exact_under_bf16_autocast() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    y = (x + 0.05 * torch.randn(2, 3, 64, 64, generator=gen)).clamp(-1, 1)
    reference = ssim_map(x, y)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        mixed = ssim_map(x.bfloat16(), y.bfloat16())
    assert torch.isfinite(mixed).all()
    # only the bf16 rounding of the inputs remains: the statistics are float32
    assert float((mixed.float() - reference).abs().mean()) < 0.02


def _checkpoint(path: Path, *, direction: str, attribute_dim: int = 3) -> Path:
    cfg = GeneratorConfig(ngf=8, depth=5, attribute_dim=attribute_dim, upsample="resize")
    torch.manual_seed(0)
    net = UNetGenerator(cfg)
    if net.attribute_proj is not None:  # make the style matter
        torch.nn.init.normal_(net.attribute_proj.weight, 0, 1.0)
    return save_checkpoint(
        path,
        generator=net,
        generator_config=cfg,
        step=7,
        config_json=json.dumps({"data": {"direction": direction}}),
    )


def test_photo_sketcher_draws_grey_sketches_per_style(tmp_path: Path) -> None:
    sketcher = PhotoSketcher(_checkpoint(tmp_path / "p2s.safetensors", direction="photo2sketch"))
    photos = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    first = sketcher.sketch(photos, "fs2k_style0", batch_size=2)
    assert first.shape == photos.shape and first.dtype == np.uint8
    assert (first[..., 0] == first[..., 1]).all() and (first[..., 1] == first[..., 2]).all()
    assert np.array_equal(first, sketcher.sketch(photos, "fs2k_style0"))  # deterministic
    assert not np.array_equal(first, sketcher.sketch(photos, "fs2k_style2"))
    assert sketcher.model_id.startswith("p2s.safetensors@step7:")


def test_photo_sketcher_refuses_the_wrong_model(tmp_path: Path) -> None:
    product = _checkpoint(tmp_path / "s2p.safetensors", direction="sketch2photo", attribute_dim=10)
    with pytest.raises(CheckpointError, match="not a photo -> sketch model"):
        PhotoSketcher(product)
    with pytest.raises(CheckpointError, match="not found; train one"):
        PhotoSketcher(tmp_path / "missing.safetensors")
