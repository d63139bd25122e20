"""The independent pixel (HOG) gender classifier: features, asset, accuracy on real FS2K photos,
fitting, and its figures in the evaluate-attributes report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2face.errors import CheckpointError, WeightsNotFoundError
from sketch2face.evaluation.gender_pixels import (
    ASSET_PATH,
    HogRecipe,
    PixelGenderHead,
    fit_pixel_gender_head_on,
    hog_features,
    load_pixel_gender_head,
    save_pixel_gender_head,
)

#: The prepared dataset of this checkout (ignored by git: tests using it skip where it is absent).
PREPARED = Path(__file__).resolve().parents[1] / "datasets" / "fs2k_celeba"
SMALL = HogRecipe(size=32, pixels_per_cell=8)  # 216 features: fast fits for synthetic tests


def _prepared_fs2k(split: str) -> list[tuple[Path, int]]:
    """(photo path, FS2K gender) of the prepared dataset's labelled FS2K photos of ``split``."""
    from sketch2face.data.manifest import MANIFEST_NAME, read_manifest

    if not (PREPARED / MANIFEST_NAME).is_file():
        pytest.skip(f"prepared dataset not found at {PREPARED}")
    rows = [
        r
        for r in read_manifest(PREPARED / MANIFEST_NAME)
        if r.split == split and r.source == "fs2k" and r.attributes.get("gender") in (0, 1)
    ]
    if not rows:
        pytest.skip(f"no labelled FS2K {split} photos in {PREPARED}")
    return [(PREPARED / r.photo, int(r.attributes["gender"])) for r in rows]


def _load(paths: list[Path]) -> np.ndarray:
    from sketch2face.imaging import load_image

    return np.stack([load_image(p) for p in paths])


def _balanced(items: list[tuple[Path, int]], per_class: int) -> list[tuple[Path, int]]:
    return [x for x in items if x[1] == 1][:per_class] + [x for x in items if x[1] == 0][:per_class]


def _stripes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label 1: vertical stripes, label 0: horizontal stripes (random period, phase and noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    grid = np.arange(256)
    out = np.empty((n, 256, 256, 3), np.uint8)
    for i in range(n):
        wave = 128 + 80 * np.sin(2 * np.pi * (grid / rng.uniform(40, 80) + rng.random()))
        image = np.tile(wave, (256, 1)) if y[i] == 1 else np.tile(wave[:, None], (1, 256))
        image = image + rng.normal(0, 20, (256, 256))
        out[i] = np.clip(image, 0, 255)[..., None].astype(np.uint8)
    return out, y


# ---------------------------------------------------------------- features


def test_features_are_mirror_invariant_and_size_independent() -> None:
    from scipy.ndimage import gaussian_filter

    # smooth structure at several scales, like a photo (no exactly flat areas or straight edges,
    # where float rounding alone can move a gradient between the 0 and 180 degree bins)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (256, 256, 3))
    smooth = sum(gaussian_filter(noise, (s, s, 0)) * s for s in (3, 8, 24))
    crop = np.clip(128 + 40 * smooth / smooth.std(), 0, 255).astype(np.uint8)
    recipe = HogRecipe()
    x = hog_features([crop], recipe)
    assert x.shape == (1, recipe.feature_dim) and recipe.feature_dim <= 5000
    # a face looking the other way is the same face for gender
    assert np.allclose(hog_features([crop[:, ::-1]], recipe), x)
    # a 512 px crop of the same geometry gives nearly the same features as the 256 px one
    big = np.asarray(Image.fromarray(crop).resize((512, 512), Image.BICUBIC))
    assert np.corrcoef(hog_features([big], recipe)[0], x[0])[0, 1] > 0.9
    with pytest.raises(ValueError, match="HxWx3"):
        hog_features([np.zeros((256, 256), np.uint8)], recipe)
    with pytest.raises(ValueError):
        HogRecipe(crop_fraction=1.5)


def test_fit_on_synthetic_classes_separates_them() -> None:
    images, y = _stripes(60, seed=0)
    head = fit_pixel_gender_head_on(images, y, recipe=SMALL, grid=(1.0, 100.0))
    assert set(head.meta["cross_validation"]) == {"1.0", "100.0"}
    new_images, new_y = _stripes(40, seed=1)
    assert set(new_y) == {0, 1}
    assert np.array_equal(head.labels(new_images), new_y)
    flipped = PixelGenderHead(SMALL, -head.weights, -head.bias)
    assert ((flipped.p_female(new_images) >= 0.5) == (new_y == 1)).mean() == 0.0
    assert head.p_female(np.zeros((0, 256, 256, 3), np.uint8)).shape == (0,)


# ---------------------------------------------------------------- asset


def test_asset_round_trip_and_clear_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    head = PixelGenderHead(
        SMALL, rng.normal(size=SMALL.feature_dim), 0.3, {"val": {"accuracy": 0.8}}
    )
    path = save_pixel_gender_head(head, tmp_path / "head.json")
    back = load_pixel_gender_head(path)
    assert back.recipe == SMALL and back.bias == head.bias and back.meta["val"]["accuracy"] == 0.8
    assert np.array_equal(back.weights, head.weights)
    images, _ = _stripes(3, seed=2)
    assert np.allclose(back.p_female(images), head.p_female(images))

    with pytest.raises(WeightsNotFoundError, match="gender fit --features hog"):
        load_pixel_gender_head(tmp_path / "missing.json")
    path.write_text(path.read_text()[:300])  # truncated
    with pytest.raises(CheckpointError, match="corrupt"):
        load_pixel_gender_head(path)
    data = head.to_json()
    path.write_text(json.dumps(data | {"weights": data["weights"][:100]}))
    with pytest.raises(CheckpointError, match=r"\(100,\) weights"):
        load_pixel_gender_head(path)
    path.write_text(json.dumps(data | {"recipe": {**data["recipe"], "size": "big"}}))
    with pytest.raises(CheckpointError, match="recipe"):
        load_pixel_gender_head(path)
    path.write_text(json.dumps(data | {"bias": float("nan")}))
    with pytest.raises(CheckpointError, match="non-finite"):
        load_pixel_gender_head(path)
    # the dlib head's asset is not a pixel head
    from sketch2face.evaluation.gender import ASSET_PATH as DLIB_ASSET

    with pytest.raises(CheckpointError, match="format"):
        load_pixel_gender_head(DLIB_ASSET)


def test_shipped_asset_documents_its_fit() -> None:
    head = load_pixel_gender_head()
    assert ASSET_PATH.name == "gender_head_hog.json"
    assert head.weights.shape == (head.recipe.feature_dim,) and head.recipe.feature_dim <= 5000
    meta = head.meta
    assert meta["fitted_on"]["split"] == "train" and meta["fitted_on"]["source"] == "fs2k"
    assert meta["val"]["accuracy"] > 0.85 and meta["val"]["count"] > 100
    assert meta["test_for_information"]["accuracy"] > 0.85
    assert "1 female, 0 male" in head.to_json()["labels"]


# ---------------------------------------------------------------- real FS2K photos


def test_shipped_head_classifies_prepared_fs2k_test_photos() -> None:
    labelled = _balanced(_prepared_fs2k("test"), 60)
    truth = np.array([g for _, g in labelled])
    p = load_pixel_gender_head().p_female(_load([p for p, _ in labelled]))
    accuracy = ((p >= 0.5) == (truth == 1)).mean()
    assert accuracy > 0.8, accuracy  # chance is 0.5 on this balanced set; val accuracy is ~0.9


def _aligned_fs2k(
    shared_dir: Path, split: str, per_class: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Balanced FS2K photos of ``split`` from ../shared, aligned as `prepare` does (dlib only to
    crop, never to classify), with their FS2K genders."""
    from sketch2face.data.align import crop_square, default_cropper
    from sketch2face.imaging import load_image

    anno = json.loads((shared_dir / "data" / "fs2k" / f"anno_{split}.json").read_text())
    items = [
        (shared_dir / "data" / "fs2k" / "photo" / f"{a['image_name']}.jpg", int(a["gender"]))
        for a in anno
    ]
    crops, truth = [], []
    for path, gender in _balanced([x for x in items if x[0].is_file()], per_class):
        image = load_image(path)
        box = default_cropper().detect(image)
        if box is not None:
            crops.append(crop_square(image, box))
            truth.append(gender)
    assert len(crops) >= 1.6 * per_class and set(truth) == {0, 1}
    return crops, np.array(truth)


def test_shipped_head_classifies_raw_fs2k_photos_once_aligned(shared_dir: Path) -> None:
    crops, truth = _aligned_fs2k(shared_dir, "test", 25)
    accuracy = (load_pixel_gender_head().labels(crops) == truth).mean()
    assert accuracy > 0.75, accuracy


def test_fit_on_a_small_labelled_subset_separates_real_photos(shared_dir: Path) -> None:
    train, train_truth = _aligned_fs2k(shared_dir, "train", 30)
    test, test_truth = _aligned_fs2k(shared_dir, "test", 25)
    head = fit_pixel_gender_head_on(train, train_truth, grid=(100.0,))
    accuracy = (head.labels(test) == test_truth).mean()
    assert accuracy > 0.7, accuracy  # 60 training photos; the shipped head (927) scores ~0.9


# ---------------------------------------------------------------- evaluate-attributes


def _fixture_pairs(shared_dir: Path, tmp_path: Path) -> tuple[list[tuple[Path, Path]], list[int]]:
    anno = json.loads((shared_dir / "data" / "fs2k" / "anno_test.json").read_text())
    gender = {a["image_name"]: int(a["gender"]) for a in anno}
    pairs, genders = [], []
    folder = shared_dir / "data" / "fixtures" / "fs2k_test"
    for photo in sorted(folder.glob("*_photo*_image*.jpg"))[:2]:
        style, kind, name = photo.stem.split("_")
        sketch = photo.with_name(
            f"{style}_{kind.replace('photo', 'sketch')}_{name.replace('image', 'sketch')}.jpg"
        )
        for src in (sketch, photo):  # manifest pairs are 256x256
            Image.open(src).convert("RGB").resize((256, 256)).save(tmp_path / f"{src.stem}.png")
        pairs.append((tmp_path / f"{sketch.stem}.png", tmp_path / f"{photo.stem}.png"))
        genders.append(gender[f"{kind}/{name}"])
    return pairs, genders


def test_attribute_report_gives_the_pixel_verdict_beside_dlib(
    tmp_path: Path, shared_dir: Path
) -> None:
    from conftest import make_tiny_checkpoint

    from sketch2face.attributes import ATTRIBUTE_DIM
    from sketch2face.evaluation.attribute_control import measure_attribute_control
    from sketch2face.pipeline import Sketch2Face

    pairs, genders = _fixture_pairs(shared_dir, tmp_path)
    pipe = Sketch2Face.from_pretrained(
        make_tiny_checkpoint(tmp_path / "c.safetensors", attribute_dim=ATTRIBUTE_DIM)
    )
    report = measure_attribute_control(pipe, pairs, progress=False, genders=genders)
    base = report.gender_baseline
    assert base is not None
    for key in (
        "pixel_classifier_val_accuracy",
        "real_accuracy_pixels",
        "real_seen_as_female_pixels",
        "real_agreement_pixels",
        "unconditioned_seen_as_male_pixels",
        "unconditioned_seen_as_female_pixels",
        "unconditioned_agreement_pixels",
    ):
        assert 0.0 <= base[key] <= 1.0, key
    # the same photos through the shipped head directly
    photos = np.stack([np.asarray(Image.open(p)) for _, p in pairs])
    expected = (load_pixel_gender_head().labels(photos) == np.array(genders)).mean()
    assert base["real_accuracy_pixels"] == pytest.approx(expected)
    assert base["unconditioned_seen_as_male_pixels"] + base[
        "unconditioned_seen_as_female_pixels"
    ] == pytest.approx(1.0)
    assert "real_accuracy" in base and "unconditioned_seen_as_male" in base  # old keys kept
    for r in report.gender_requests:
        for key in (
            "seen_as_requested_pixels",
            "seen_as_requested_unconditioned_pixels",
            "mean_p_female_pixels",
            "agreement_pixels",
        ):
            assert 0.0 <= r[key] <= 1.0, key
        other = r["seen_as_requested_real_other_pixels"]
        assert (other is None) == (r["real_other"] == 0) and "seen_as_requested" in r
    table = report.table()
    assert "dlib | pixels" in table and "gender=male" in table and "gender=female" in table
    json.dumps(report.__dict__)


def test_attribute_report_fails_before_generating_without_the_pixel_head(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sketch2face.evaluation import gender_pixels
    from sketch2face.evaluation.attribute_control import measure_attribute_control

    def missing() -> PixelGenderHead:
        return load_pixel_gender_head(tmp_path / "none.json")

    def pipeline(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("generated before checking the gender heads")

    monkeypatch.setattr(gender_pixels, "load_pixel_gender_head", missing)
    pairs = [(tmp_path / "s.png", tmp_path / "p.png")]
    with pytest.raises(WeightsNotFoundError, match="gender fit --features hog"):
        measure_attribute_control(pipeline, pairs, progress=False)


def test_cli_fits_either_head() -> None:
    from sketch2face.cli.main import build_parser

    args = build_parser(["gender"]).parse_args(
        ["gender", "fit", "--dataset", "d", "--features", "hog"]
    )
    assert args.func.__name__ == "run_fit" and args.features == "hog"
    args = build_parser(["gender"]).parse_args(["gender", "fit", "--dataset", "d"])
    assert args.features == "dlib128"  # the default is unchanged
