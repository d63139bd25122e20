"""The refiner's training data (issue 22): photos degraded like stage one's faces, and validation on
stage one's own faces of the validation sketches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketch2face.data.manifest import ManifestRow, write_manifest
from sketch2face.models.checkpoint import save_checkpoint
from sketch2face.models.unet import GeneratorConfig, UNetGenerator
from sketch2face.refine.degrade import DegradeConfig, degrade_batch, degrade_like_stage_one
from sketch2face.training.config import DataConfig, load_config
from sketch2face.training.data import load_pairs
from sketch2face.training.trainer import degraded_photos

OFF = DegradeConfig(
    downscale=(1.0, 1.0),
    blur_sigma=(0.01, 0.01),
    p_bilateral=0.0,
    p_lines=0.0,
    p_blotches=0.0,
    p_background=0.0,
    p_frame=0.0,
    p_jpeg=0.0,
    noise_levels=(0.0, 0.0),
)


def _face(size: int = 128, seed: int = 0) -> np.ndarray:
    """A textured stand-in photo: smooth gradient plus fine noise (detail a blur must remove)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, size, dtype=np.float32)
    base = np.stack([ramp[None, :].repeat(size, 0)] * 3, axis=-1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def test_degradation_is_reproducible_and_softens_the_photo() -> None:
    photo, sketch = _face(), np.full((128, 128, 3), 255, np.uint8)
    first = degrade_like_stage_one(photo, sketch, np.random.default_rng(3))
    again = degrade_like_stage_one(photo, sketch, np.random.default_rng(3))
    assert first.shape == photo.shape and first.dtype == np.uint8
    assert np.array_equal(first, again)
    # fine detail is gone: neighbouring pixels differ far less than in the photo
    detail = lambda im: float(np.abs(np.diff(im.astype(np.float32), axis=1)).mean())  # noqa: E731
    assert detail(first) < 0.5 * detail(photo)


def test_the_sketch_strokes_are_left_as_dark_lines() -> None:
    photo = np.full((64, 64, 3), 180, np.uint8)
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[30:33, :] = 0  # one horizontal stroke
    cfg = DegradeConfig(**{**OFF.__dict__, "p_lines": 1.0, "line_alpha": (0.5, 0.5)})
    out = degrade_like_stage_one(photo, sketch, np.random.default_rng(0), cfg)
    on_line, off_line = out[31].mean(), out[5].mean()
    assert off_line == pytest.approx(180, abs=1)
    assert on_line < off_line - 20


def test_strokes_are_as_narrow_as_the_pencil_core_with_a_light_rim() -> None:
    """Stage one's leftover lines (scripts/refiner_degrade_sheet.py): dark at the sketch's black
    core, no darker beside it, a slightly lighter rim a few pixels out, untouched far away."""
    photo = np.full((64, 64, 3), 150, np.uint8)
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[:, 30:32] = 0  # a 2-px vertical stroke
    lines = {"p_lines": 1.0, "line_alpha": (0.6, 0.6), "line_blur": (0.3, 0.3)}
    cfg = DegradeConfig(**{**OFF.__dict__, **lines, "line_keep": 2.0, "line_halo": (0.5, 0.5)})
    row = degrade_like_stage_one(photo, sketch, np.random.default_rng(0), cfg)[32, :, 0]
    row = row.astype(int)
    assert row[30] < 150 - 0.5 * 0.6 * 150  # the core: most of alpha's darkening
    assert row[27] >= 150 and row[34] >= 150  # not widened: lighter beside it, if anything
    assert max(row[26:29].max(), row[33:36].max()) > 150  # the light rim
    assert row[5] == 150 and row[60] == 150


def test_the_pencils_grey_fringe_darkens_far_less_than_its_core() -> None:
    photo = np.full((64, 64, 3), 200, np.uint8)
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[10:20] = 0  # black band
    sketch[40:50] = 128  # half-grey band: the fringe of a pencil stroke
    lines = {"p_lines": 1.0, "line_alpha": (0.8, 0.8), "line_blur": (0.3, 0.3)}
    cfg = DegradeConfig(**{**OFF.__dict__, **lines, "line_keep": 2.0, "line_halo": (0.0, 0.0)})
    out = degrade_like_stage_one(photo, sketch, np.random.default_rng(0), cfg).astype(int)
    core, fringe = 200 - out[15, 32, 0], 200 - out[45, 32, 0]
    assert core > 0.7 * 0.8 * 200 and fringe < 0.4 * core  # ink ** 2: 0.25 of the core's


def test_degradation_depends_only_on_the_seed() -> None:
    photos = np.stack([_face(64, 0), _face(64, 1)])
    sketches = np.full_like(photos, 255)
    sketches[:, 20:22] = 0
    assert np.array_equal(degrade_batch(photos, sketches, 7), degrade_batch(photos, sketches, 7))
    assert not np.array_equal(
        degrade_batch(photos, sketches, 7), degrade_batch(photos, sketches, 8)
    )


def test_the_background_is_smeared_but_the_face_centre_kept() -> None:
    photo = _face(seed=1)
    cfg = DegradeConfig(**{**OFF.__dict__, "p_background": 1.0})
    out = degrade_like_stage_one(photo, None, np.random.default_rng(5), cfg).astype(int)
    corner = np.abs(out[:12, :12] - photo[:12, :12].astype(int)).mean()
    centre = np.abs(out[56:72, 56:72] - photo[56:72, 56:72].astype(int)).mean()
    assert corner > 10 and centre < 2


def test_bad_inputs_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="uint8 photo"):
        degrade_like_stage_one(np.zeros((64, 64), np.uint8), None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="square"):
        degrade_like_stage_one(np.zeros((64, 32, 3), np.uint8), None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="differ in size"):
        degrade_like_stage_one(
            np.zeros((64, 64, 3), np.uint8),
            np.zeros((32, 32, 3), np.uint8),
            np.random.default_rng(0),
        )


def test_trainer_inputs_are_the_degraded_photos_in_model_range() -> None:
    photos = np.stack([_face(64, 0), _face(64, 1)])
    sketches = np.full_like(photos, 255)
    as_input = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    x = degraded_photos(as_input(photos), as_input(sketches), seed=11)
    assert x.shape == (2, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    expected = degrade_batch(photos, sketches, 11)
    assert np.allclose(((x.permute(0, 2, 3, 1) + 1) * 127.5).round().numpy(), expected, atol=1)


def _dataset(root: Path) -> None:
    """Two FS2K rows, one train and one val; sketches 230, photos 60."""
    rows = [
        ManifestRow("fs2k-0", "fs2k", "fs2k_style0", "train", "sketches/0.png", "photos/0.png"),
        ManifestRow("fs2k-1", "fs2k", "fs2k_style1", "val", "sketches/1.png", "photos/1.png"),
    ]
    for folder in ("sketches", "photos"):
        (root / folder).mkdir(parents=True)
    for row in rows:
        Image.fromarray(np.full((256, 256, 3), 230, np.uint8)).save(root / row.sketch)
        Image.fromarray(np.full((256, 256, 3), 60, np.uint8)).save(root / row.photo)
    write_manifest(root / "manifest.jsonl", rows)


def _stage_one(path: Path) -> Path:
    cfg = GeneratorConfig(ngf=8, depth=5, upsample="resize")
    torch.manual_seed(0)
    return save_checkpoint(
        path,
        generator=UNetGenerator(cfg),
        generator_config=cfg,
        step=3,
        config_json=json.dumps({"data": {"direction": "sketch2photo"}}),
    )


def test_refiner_validation_inputs_are_stage_one_faces_cached_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _dataset(root)
    model = _stage_one(tmp_path / "stage1.safetensors")
    cfg = DataConfig(dataset_dir=str(root), direction="refine", stage_one_checkpoint=str(model))
    train = load_pairs(cfg, "train")
    assert train.sketches[0, 0, 0, 0] == 230  # training keeps the sketch, for its lines
    val = load_pairs(cfg, "val")
    faces = val.sketches.numpy()
    assert faces.shape == (1, 256, 256, 3) and not (faces == 230).all()  # stage one's face
    assert val.photos[0, 0, 0, 0] == 60
    cached = list((root / "cache" / "stage_one").glob("val_*.npy"))
    assert len(cached) == 1 and np.array_equal(np.load(cached[0]), faces)


def test_the_shipped_refiner_config_loads() -> None:
    cfg = load_config(Path(__file__).parents[1] / "configs" / "refiner.toml")
    assert cfg.data.direction == "refine" and cfg.generator.attribute_dim == 0
    assert cfg.data.sketch_augment == 0
    # pairs (b) from sketches the shipped stage one never trained on; FS2K val still validates
    assert cfg.data.stage_one_sources == ("celeba_artist",) and cfg.data.stage_one_pairs > 0
    assert "fs2k" in cfg.data.sources and cfg.run.keep_validated


def _trainer(tmp_path: Path, stage_one_pairs: float):
    from sketch2face.models.patchgan import DiscriminatorConfig
    from sketch2face.training.config import RunConfig, RuntimeConfig, TrainConfig
    from sketch2face.training.trainer import PairTensors, Pix2PixTrainer

    photos = np.stack([_face(32, i) for i in range(4)])
    sketches = np.full_like(photos, 255)
    faces = np.full_like(photos, 17)  # "stage one's faces": a flat level no degradation gives
    data = PairTensors.from_arrays(sketches, photos)
    data = PairTensors(data.sketches, data.photos, stage_one=torch.from_numpy(faces))
    cfg = TrainConfig(
        data=DataConfig(
            batch_size=4, augment=False, direction="refine", stage_one_pairs=stage_one_pairs
        ),
        generator=GeneratorConfig(ngf=8, depth=5),
        discriminator=DiscriminatorConfig(ndf=8, n_layers=2),
        runtime=RuntimeConfig(device="cpu", precision="fp32", seed=1, threads=1),
        run=RunConfig(out_dir=str(tmp_path)),
    )
    return Pix2PixTrainer(cfg, data, show_progress=False)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_refiner_batches_mix_stage_one_faces_and_degraded_photos(
    tmp_path: Path, share: float
) -> None:
    batch = _trainer(tmp_path, share)._batch(0)
    level = (17 / 127.5) - 1.0
    own_face = (batch.sketch - level).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert own_face.all() if share == 1.0 else not own_face.any()
    # the target is always the clean photo
    assert batch.photo.shape == batch.sketch.shape == (4, 3, 32, 32)


# ---------------------------------------------------------------- pairs (b) from chosen sources only
#: (id, source, split, sketch level): every sketch a distinct flat level, so a fake stage one can
#: tell which rows it was run on
_MIXED = [
    ("fs2k-0", "fs2k", "train", 10),
    ("fs2k-1", "fs2k", "train", 20),
    ("celeba-0", "celeba", "train", 30),
    ("celeba-0-a", "celeba_artist", "train", 40),
    ("celeba-1-a", "celeba_artist", "train", 50),
    ("fs2k-0-a", "fs2k_artist", "train", 60),  # outside data.sources below: never loaded
    ("fs2k-2", "fs2k", "val", 70),
    ("celeba-2", "celeba", "val", 80),
]


def _mixed_dataset(root: Path) -> None:
    rows = []
    for folder in ("sketches", "photos"):
        (root / folder).mkdir(parents=True)
    for k, (row_id, source, split, level) in enumerate(_MIXED):
        row = ManifestRow(row_id, source, "s", split, f"sketches/{k}.png", f"photos/{k}.png")
        Image.fromarray(np.full((256, 256, 3), level, np.uint8)).save(root / row.sketch)
        Image.fromarray(_face(256, k)).save(root / row.photo)
        rows.append(row)
    write_manifest(root / "manifest.jsonl", rows)


class _FakeStageOne:
    """Stands in for stage one: the face of a flat sketch at level L is flat at 255 - L; records
    every sketch level it is asked for and how often it was loaded."""

    loads = 0
    seen: list[int] = []

    def __call__(self, sketches, *, prepared, refine, batch_size):  # noqa: ANN001, ANN204
        assert prepared and not refine
        levels = [int(s[0, 0, 0]) for s in sketches]
        _FakeStageOne.seen += levels
        faces = [np.full((256, 256, 3), 255 - level, np.uint8) for level in levels]
        return type("Result", (), {"faces": faces})()


@pytest.fixture
def fake_stage_one(monkeypatch: pytest.MonkeyPatch) -> type[_FakeStageOne]:
    from sketch2face.pipeline import Sketch2Face

    _FakeStageOne.loads, _FakeStageOne.seen = 0, []

    def load(cls, model, *, refiner):  # noqa: ANN001, ANN202
        _FakeStageOne.loads += 1
        return _FakeStageOne()

    monkeypatch.setattr(Sketch2Face, "from_pretrained", classmethod(load))
    return _FakeStageOne


def _mixed_cfg(tmp_path: Path, **changes) -> DataConfig:  # noqa: ANN003
    root = tmp_path / "data"
    if not root.exists():
        _mixed_dataset(root)
    model = tmp_path / "stage1.safetensors"
    if not model.exists():
        _stage_one(model)
    base = {
        "dataset_dir": str(root),
        "direction": "refine",
        "stage_one_checkpoint": str(model),
        "sources": ("fs2k", "celeba", "celeba_artist"),
        "stage_one_sources": ("celeba_artist",),
        "stage_one_pairs": 0.5,
    }
    return DataConfig(**{**base, **changes})


def test_stage_one_runs_only_on_the_rows_of_the_chosen_sources(
    tmp_path: Path, fake_stage_one: type[_FakeStageOne]
) -> None:
    train = load_pairs(_mixed_cfg(tmp_path), "train")
    assert sorted(fake_stage_one.seen) == [40, 50]  # the celeba_artist sketches, nothing else
    assert train.stage_one is not None and train.stage_one_rows is not None
    assert train.stage_one.shape == (2, 256, 256, 3)  # faces of those rows only
    for stored in train.rows(torch.arange(len(train))).tolist():
        source, level = train.sources[stored], int(train.sketches[stored, 0, 0, 0])
        face_row = int(train.stage_one_rows[stored])
        if source == "celeba_artist":
            assert int(train.stage_one[face_row, 0, 0, 0]) == 255 - level  # its own sketch's face
        else:
            assert face_row == -1, source


def test_without_stage_one_sources_every_loaded_row_can_be_a_pair_b(
    tmp_path: Path, fake_stage_one: type[_FakeStageOne]
) -> None:
    load_pairs(_mixed_cfg(tmp_path, stage_one_sources=()), "train")
    assert sorted(fake_stage_one.seen) == [10, 20, 30, 40, 50]  # never fs2k_artist (not loaded)


def test_stage_one_max_rows_caps_the_rows_stage_one_draws(
    tmp_path: Path, fake_stage_one: type[_FakeStageOne]
) -> None:
    cfg = _mixed_cfg(tmp_path, stage_one_sources=(), stage_one_max_rows=3)
    train = load_pairs(cfg, "train")
    drawn = sorted(fake_stage_one.seen)
    # three distinct rows of the five loaded ones (first, middle and last in split order)
    assert len(set(drawn)) == 3 and set(drawn) <= {10, 20, 30, 40, 50}
    load_pairs(cfg, "train")
    assert sorted(fake_stage_one.seen) == drawn  # the same rows again: the cache is reused
    assert train.stage_one is not None and train.stage_one_rows is not None
    assert train.stage_one.shape[0] == 3 and int((train.stage_one_rows >= 0).sum()) == 3


def test_stage_one_faces_are_cached_per_row_list(
    tmp_path: Path, fake_stage_one: type[_FakeStageOne]
) -> None:
    first = load_pairs(_mixed_cfg(tmp_path), "train")
    again = load_pairs(_mixed_cfg(tmp_path), "train")
    assert fake_stage_one.loads == 1 and sorted(fake_stage_one.seen) == [40, 50]  # reused
    assert torch.equal(first.stage_one, again.stage_one)
    cache = tmp_path / "data" / "cache" / "stage_one"
    assert [p.name for p in cache.iterdir() if "partial" in p.name] == []
    load_pairs(_mixed_cfg(tmp_path, stage_one_sources=("fs2k",)), "train")
    assert fake_stage_one.loads == 2 and sorted(fake_stage_one.seen) == [10, 20, 40, 50]
    assert len(list(cache.glob("train_*.npy"))) == 2  # one file per row list


def test_refiner_validation_runs_stage_one_on_the_loaded_val_rows_only(
    tmp_path: Path, fake_stage_one: type[_FakeStageOne]
) -> None:
    val = load_pairs(_mixed_cfg(tmp_path, sources=("fs2k", "celeba_artist")), "val")
    assert fake_stage_one.seen == [70]  # the FS2K val sketch; the CelebA one is not loaded
    assert val.sources == ("fs2k",) and int(val.sketches[0, 0, 0, 0]) == 255 - 70
    assert np.array_equal(val.photos[0].numpy(), _face(256, 6))


def test_refiner_batches_take_stage_one_faces_only_where_computed(
    tmp_path: Path, fake_stage_one: type[_FakeStageOne]
) -> None:
    from sketch2face.models.patchgan import DiscriminatorConfig
    from sketch2face.training.config import RunConfig, RuntimeConfig, TrainConfig
    from sketch2face.training.trainer import Pix2PixTrainer

    data_cfg = _mixed_cfg(tmp_path, stage_one_pairs=1.0, batch_size=5, augment=False)
    cfg = TrainConfig(
        data=data_cfg,
        generator=GeneratorConfig(ngf=8, depth=5),
        discriminator=DiscriminatorConfig(ndf=8, n_layers=2),
        runtime=RuntimeConfig(device="cpu", precision="fp32", seed=1, threads=1),
        run=RunConfig(out_dir=str(tmp_path / "run")),
    )
    trainer = Pix2PixTrainer(cfg, load_pairs(data_cfg, "train"), show_progress=False)
    for step in range(3):
        x = trainer._batch(step).sketch  # all 5 training rows, a new order each epoch
        flat = (x - x[:, :1, :1, :1]).abs().amax(dim=(1, 2, 3)) < 1e-6
        levels = sorted(round(float((x[i, 0, 0, 0] + 1) * 127.5)) for i in flat.nonzero().flatten())
        assert levels == [255 - 50, 255 - 40]  # the celeba_artist rows; the rest degraded photos


def test_stage_one_sources_must_be_loaded_sources() -> None:
    from sketch2face.errors import ConfigError

    with pytest.raises(ConfigError, match="stage_one_sources"):
        DataConfig(direction="refine", sources=("fs2k",), stage_one_sources=("celeba_artist",))
    with pytest.raises(ConfigError, match="stage_one_pairs"):
        DataConfig(direction="refine", stage_one_pairs=1.5)
    with pytest.raises(ConfigError, match="stage_one_max_rows"):
        DataConfig(direction="refine", stage_one_max_rows=-1)


def test_no_rows_of_the_stage_one_sources_is_an_error(
    tmp_path: Path, fake_stage_one: type[_FakeStageOne]
) -> None:
    from sketch2face.errors import DatasetError

    cfg = _mixed_cfg(
        tmp_path, sources=("fs2k", "fs2k_missing"), stage_one_sources=("fs2k_missing",)
    )
    with pytest.raises(DatasetError, match="stage_one_sources"):
        load_pairs(cfg, "train")
    assert fake_stage_one.seen == []


def test_the_refiners_curve_names_stage_ones_face_as_the_baseline(tmp_path: Path) -> None:
    from sketch2face.training.curve import panels_for, plot_validation_curves

    def baseline(direction: str) -> str:
        series = [s for _, group in panels_for(direction) for s in group]
        return next(label for column, label, _ in series if column == "val_rank1_sketch_fs2k")

    assert "stage one" in baseline("refine") and "sketch" not in baseline("refine")
    assert "sketch itself" in baseline("sketch2photo")
    log = tmp_path / "metrics.csv"
    log.write_text("step,val_ssim,val_rank1_fs2k,val_rank1_sketch_fs2k\n5,0.4,0.5,0.45\n")
    assert plot_validation_curves(log, tmp_path / "c.png", batch_size=4, direction="refine")
