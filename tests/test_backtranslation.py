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
from sketch2face.data.artist_styles import ARTIST_STYLES, style_index, style_vectors
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


def _checkpoint(path: Path, *, direction: str, attribute_dim: int = 3, seed: int = 0) -> Path:
    cfg = GeneratorConfig(ngf=8, depth=5, attribute_dim=attribute_dim, upsample="resize")
    torch.manual_seed(seed)
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
    # finished like every prepared sketch: full-range ink on pure-white paper
    assert first.min() == 0 and (first == 255).mean() > 0.05
    assert np.array_equal(first, sketcher.sketch(photos, "fs2k_style0"))  # deterministic
    assert not np.array_equal(first, sketcher.sketch(photos, "fs2k_style2"))
    assert sketcher.model_id.startswith("p2s.safetensors@step7:")


def test_photo_sketcher_refuses_the_wrong_model(tmp_path: Path) -> None:
    product = _checkpoint(tmp_path / "s2p.safetensors", direction="sketch2photo", attribute_dim=10)
    with pytest.raises(CheckpointError, match="not a photo -> sketch model"):
        PhotoSketcher(product)
    with pytest.raises(CheckpointError, match="not found; train one"):
        PhotoSketcher(tmp_path / "missing.safetensors")


def _prepared(root: Path, faces: Path) -> list[ManifestRow]:
    """A prepared-looking dataset: FS2K train (style 1) and val rows, CelebA train and test rows;
    the photos are real faces from ``faces``, the sketches noise."""
    rows = [
        ManifestRow("celeba-1_1", "celeba", "pencil", "train", "sketches/c1.png", "photos/c1.png"),
        ManifestRow("celeba-2_2", "celeba", "line", "test", "sketches/c2.png", "photos/c2.png"),
        ManifestRow(
            "fs2k-a",
            "fs2k",
            "fs2k_style1",
            "train",
            "sketches/a.png",
            "photos/a.png",
            {"gender": 0},
        ),
        ManifestRow("fs2k-b", "fs2k", "fs2k_style0", "val", "sketches/b.png", "photos/b.png"),
    ]
    rng = np.random.default_rng(1)
    for folder in ("sketches", "photos"):
        (root / folder).mkdir(parents=True)
    for row, face in zip(rows, sorted(faces.glob("*.jpg"))):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(root / row.sketch)
        Image.open(face).convert("RGB").resize((256, 256), Image.BICUBIC).save(root / row.photo)
    write_manifest(root / "manifest.jsonl", rows)
    return rows


def test_artist_rows_are_planned_for_training_photos_only() -> None:
    from sketch2face.data.artist_sketches import plan_artist_rows, styles_for

    rows = [
        ManifestRow("celeba-1_1", "celeba", "pencil", "train", "s/1.png", "p/1.png"),
        ManifestRow("celeba-2_2", "celeba", "line", "val", "s/2.png", "p/2.png"),
        ManifestRow("fs2k-a", "fs2k", "fs2k_style1", "train", "s/a.png", "p/a.png", {"gender": 1}),
    ]
    planned = plan_artist_rows(rows, "p2s@step7:abc", per_photo=2)
    by_origin = {r.attributes["from"]: [] for r in planned}
    for r in planned:
        by_origin[r.attributes["from"]].append(r.style)
    assert by_origin["fs2k-a"] == ["fs2k_style0", "fs2k_style2"]  # the styles not drawn
    assert len(by_origin["celeba-1_1"]) == 2 and "celeba-2_2" not in by_origin  # val: real only
    fs2k_row = next(r for r in planned if r.attributes["from"] == "fs2k-a")
    assert fs2k_row.source == "fs2k_artist" and fs2k_row.photo == "p/a.png"
    assert fs2k_row.attributes == {
        "gender": 1,
        "synthetic": True,
        "sketcher": "p2s@step7:abc",
        "from": "fs2k-a",
    }
    assert styles_for(rows[0], 1) == styles_for(rows[0], 1)  # hashed, stable
    assert plan_artist_rows(planned, "again") == []  # synthetic rows are never drawn again


def test_prepare_adds_artist_sketches_to_an_existing_dataset(
    shared_dir: Path, tmp_path: Path
) -> None:
    from sketch2face.cli.main import main
    from sketch2face.data.manifest import read_manifest

    root = tmp_path / "ds"
    _prepared(root, shared_dir / "data" / "fixtures" / "celeba")
    ckpt = _checkpoint(tmp_path / "p2s.safetensors", direction="photo2sketch")
    args = ["prepare", "--out", str(root), "--artist-sketcher", str(ckpt), "--no-progress"]
    assert main([*args, "--no-landmarks"]) == 0
    rows = {r.id: r for r in read_manifest(root)}
    artist = [r for r in rows.values() if r.source.endswith("_artist")]
    assert sorted(r.id for r in artist if r.source == "fs2k_artist") == [
        "fs2k-a-fs2k_style0",
        "fs2k-a-fs2k_style2",
    ]
    assert len([r for r in artist if r.source == "celeba_artist"]) == 1
    for row in artist:
        drawn = np.asarray(Image.open(root / row.sketch))
        assert drawn.shape == (256, 256, 3) and (drawn[..., 0] == drawn[..., 2]).all()
        assert row.split == "train" and row.attributes["sketcher"].startswith("p2s.safetensors@")
    summary = json.loads((root / "summary.json").read_text())
    assert summary["artist_sketches"]["rows"] == 3

    # a second pass replaces the rows (no duplicates) and reuses the drawings on disk
    first_drawing = artist[0].sketch
    first = (root / first_drawing).stat().st_mtime_ns
    assert main([*args, "--no-landmarks", "--artist-styles-per-photo", "3"]) == 0
    rows = read_manifest(root)
    assert len([r for r in rows if r.source == "celeba_artist"]) == 3
    assert len(rows) == len({r.id for r in rows}) == 4 + 2 + 3
    assert (root / first_drawing).stat().st_mtime_ns == first

    # a drawing shares its photo, so it shares the photo's landmarks (found once per photo)
    from sketch2face.data.dataset import load_split_u8
    from sketch2face.data.landmarks import load_split_landmarks

    points = load_split_landmarks(root, "train", progress=False)
    ids = load_split_u8(root, "train").ids
    by_id = {r.id: r for r in rows}
    assert np.isfinite(points).all()  # real faces
    for k, row_id in enumerate(ids):
        origin = ids.index(by_id[row_id].attributes.get("from", row_id))
        assert np.array_equal(points[k], points[origin])

    # training reads them: style exclusion drops real and synthetic rows of that style alike
    cfg = DataConfig(dataset_dir=str(root), exclude_styles=("fs2k_style0",))
    pairs = load_pairs(cfg, "train")
    kept = {pairs.sources[int(i)] for i in pairs.rows(torch.arange(len(pairs)))}
    assert kept == {"celeba", "celeba_artist", "fs2k", "fs2k_artist"}
    # 2 real rows + 3 CelebA and 2 FS2K drawings, less the two drawn in style 0
    assert len(pairs) == 2 + 3 + 2 - 2

    # another model draws afresh into its own folder; the old drawings go
    other = _checkpoint(tmp_path / "p2s_b.safetensors", direction="photo2sketch", seed=1)
    assert main([*args[:-2], str(other), "--no-progress", "--no-landmarks"]) == 0
    redrawn = [r for r in read_manifest(root) if r.source.endswith("_artist")]
    assert len(redrawn) == 3 and all(r.attributes["sketcher"].startswith("p2s_b") for r in redrawn)
    assert not (root / first_drawing).exists()
    assert all((root / r.sketch).is_file() for r in redrawn)
    assert len(list((root / "sketches" / "artist").iterdir())) == 1


def test_evaluate_sketcher_scores_the_model_beside_opencv_and_the_artist(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real FS2K fixture faces (two per style, each also mirrored: four) as val, and the same
    as the style reference."""
    from sketch2face.cli.main import main

    folder = shared_dir / "data" / "fixtures" / "fs2k_test"
    root = tmp_path / "ds"
    (root / "sketches").mkdir(parents=True)
    (root / "photos").mkdir()
    rows = []
    for sketch_path in sorted(folder.glob("style*_sketch*.jpg")):
        style, sketch_dir, name = sketch_path.stem.split("_")
        photo_name = (
            f"{style}_{sketch_dir.replace('sketch', 'photo')}_{name.replace('sketch', 'image')}"
        )
        for split in ("train", "val"):
            for mirrored in (False, True):
                row_id = f"fs2k-{split}-{sketch_path.stem}-{int(mirrored)}"
                for kind, src in (
                    ("sketches", sketch_path),
                    ("photos", folder / f"{photo_name}.jpg"),
                ):
                    img = Image.open(src).convert("RGB").resize((256, 256), Image.BICUBIC)
                    img = img.transpose(Image.FLIP_LEFT_RIGHT) if mirrored else img
                    img.save(root / kind / f"{row_id}.png")
                rows.append(
                    ManifestRow(
                        row_id,
                        "fs2k",
                        f"fs2k_{style}",
                        split,
                        f"sketches/{row_id}.png",
                        f"photos/{row_id}.png",
                    )
                )
    write_manifest(root / "manifest.jsonl", rows)
    ckpt = _checkpoint(tmp_path / "p2s.safetensors", direction="photo2sketch")
    report_path, sheet = tmp_path / "r.json", tmp_path / "sheet.png"
    args = ["evaluate-sketcher", "--checkpoint", str(ckpt), "--dataset", str(root)]
    assert main([*args, "--report", str(report_path), "--sheet", str(sheet)]) == 0
    report = json.loads(report_path.read_text())
    assert report["pairs_per_style"] == {s: 4 for s in ARTIST_STYLES}
    for systems in report["systems"].values():
        assert set(systems) == {"model", "OpenCV pencil", "OpenCV line", "artist's sketch"}
        artist = systems["artist's sketch"]
        # the reference set holds these very sketches: the artist's row is at distance ~0
        assert artist["ssim"] == 1.0 and artist["realism_fd"] < systems["model"]["realism_fd"]
        for figures in systems.values():
            assert 0.0 <= figures["rank1"] <= figures["rank5"] <= 1.0
    assert "| fs2k_style0 (4) | model |" in capsys.readouterr().out
    grid = np.asarray(Image.open(sheet))
    assert grid.shape[1] > 5 * 192 and grid.shape[0] > 2 * 192  # 6 columns, 3+ rows
