"""Offline gender classifier: the logistic head, its asset, predictions on real faces, the
evaluate-attributes gender rows and the pseudo labels that training picks up."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2face.data.manifest import ManifestRow, write_manifest
from sketch2face.data.pseudo_gender import (
    PSEUDO_GENDER_FORMAT,
    load_pseudo_genders,
    pseudo_gender_path,
)
from sketch2face.errors import CheckpointError, DatasetError, WeightsNotFoundError
from sketch2face.evaluation.gender import (
    ASSET_PATH,
    GenderHead,
    choose_l2,
    fit_logistic,
    load_gender_head,
    predict_gender,
    save_gender_head,
)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """128-D 'descriptors' whose class sits along one random direction (dlib-like scale)."""
    rng = np.random.default_rng(seed)
    direction = np.random.default_rng(123).normal(size=128)
    direction /= np.linalg.norm(direction)
    y = rng.integers(0, 2, n).astype(float)
    x = rng.normal(0, 0.1, (n, 128)) + np.outer(np.where(y == 1, 0.3, -0.3), direction) + 0.05
    return x, y


def test_logistic_head_fits_and_predicts_separable_descriptors() -> None:
    x, y = _synthetic(400, seed=0)
    l2, scores = choose_l2(x, y, grid=(0.1, 10.0))
    assert set(scores) == {0.1, 10.0} and all(0 <= s["accuracy"] <= 1 for s in scores.values())
    weights, bias = fit_logistic(x, y, l2=l2)
    head = GenderHead(weights, bias)
    x_new, y_new = _synthetic(300, seed=1)
    p = head.p_female(x_new)
    assert ((p >= 0.5) == (y_new == 1)).mean() > 0.97
    # confident on clear cases, and a NaN descriptor (no face) stays NaN
    assert np.isnan(head.p_female(np.full((1, 128), np.nan)))[0]
    flipped = GenderHead(-weights, -bias).p_female(x_new)
    assert ((flipped >= 0.5) == (y_new == 1)).mean() < 0.03


def test_logistic_rejects_one_class_labels() -> None:
    x, _ = _synthetic(20, seed=0)
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic(x, np.ones(20))


def test_head_asset_round_trip_and_clear_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    head = GenderHead(rng.normal(size=128), 0.25, {"val": {"accuracy": 0.9}, "fitted_at": "x"})
    path = save_gender_head(head, tmp_path / "head.json")
    back = load_gender_head(path)
    assert np.array_equal(back.weights, head.weights) and back.bias == head.bias
    assert back.meta["val"] == {"accuracy": 0.9}
    x = rng.normal(size=(5, 128))
    assert np.allclose(back.p_female(x), head.p_female(x))

    with pytest.raises(WeightsNotFoundError, match="gender fit"):
        load_gender_head(tmp_path / "missing.json")
    path.write_text(path.read_text()[:200])  # truncated
    with pytest.raises(CheckpointError, match="corrupt"):
        load_gender_head(path)
    data = head.to_json()
    data["weights"] = data["weights"][:100]
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"\(100,\) weights"):
        load_gender_head(path)
    data = head.to_json() | {"format": "something-else"}
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="format"):
        load_gender_head(path)


def test_shipped_asset_is_valid_and_documents_its_accuracy() -> None:
    head = load_gender_head()
    assert head.weights.shape == (128,)
    assert head.meta["fitted_on"]["split"] == "train" and head.meta["val"]["accuracy"] > 0.9
    assert "1 female, 0 male" in head.to_json()["labels"]


def _fixture_photo_labels(shared_dir: Path) -> list[tuple[Path, int]]:
    anno = json.loads((shared_dir / "data" / "fs2k" / "anno_test.json").read_text())
    gender = {a["image_name"]: int(a["gender"]) for a in anno}
    out = []
    for path in sorted(
        (shared_dir / "data" / "fixtures" / "fs2k_test").glob("*_photo*_image*.jpg")
    ):
        _, photo, image = path.stem.split("_")
        out.append((path, gender[f"{photo}/{image}"]))
    return out


def test_shipped_head_gets_the_fixture_faces_right(shared_dir: Path) -> None:
    labelled = _fixture_photo_labels(shared_dir)
    assert {g for _, g in labelled} == {0, 1}  # both genders present, else the test is weak
    images = [np.asarray(Image.open(p).convert("RGB")) for p, _ in labelled]  # raw FS2K sizes
    pred = predict_gender(images)
    truth = np.array([g for _, g in labelled])
    assert pred.face_found.all()
    assert np.array_equal(pred.labels, truth), (pred.p_female, truth)
    assert np.array_equal(pred.seen_as("female"), truth == 1)
    # no face in a flat grey image: no verdict unless asked to use the whole image
    blank = predict_gender([np.full((256, 256, 3), 128, np.uint8)])
    assert not blank.face_found[0] and blank.labels[0] == -1
    forced = predict_gender([np.full((256, 256, 3), 128, np.uint8)], whole_image_fallback=True)
    assert not forced.face_found[0] and forced.labels[0] in (0, 1)


def test_evaluate_attributes_reports_gender_rows(tmp_path: Path, shared_dir: Path) -> None:
    from conftest import make_tiny_checkpoint

    from sketch2face.attributes import ATTRIBUTE_DIM
    from sketch2face.evaluation.attribute_control import measure_attribute_control
    from sketch2face.pipeline import Sketch2Face

    labelled = _fixture_photo_labels(shared_dir)[:2]
    pairs = []
    for photo, _ in labelled:
        style, kind, name = photo.stem.split("_")
        sketch = photo.with_name(
            f"{style}_{kind.replace('photo', 'sketch')}_{name.replace('image', 'sketch')}.jpg"
        )
        for src in (sketch, photo):  # manifest pairs are 256x256
            Image.open(src).convert("RGB").resize((256, 256)).save(tmp_path / f"{src.stem}.png")
        pairs.append((tmp_path / f"{sketch.stem}.png", tmp_path / f"{photo.stem}.png"))
    pipe = Sketch2Face.from_pretrained(
        make_tiny_checkpoint(tmp_path / "c.safetensors", attribute_dim=ATTRIBUTE_DIM)
    )
    genders = [g for _, g in labelled]
    report = measure_attribute_control(pipe, pairs, progress=False, genders=genders)
    base = report.gender_baseline
    assert base is not None and base["real_labelled"] == 2
    shares = [v for k, v in base.items() if k not in ("real_labelled", "classifier_val_accuracy")]
    assert all(0.0 <= v <= 1.0 for v in shares)
    assert base["unconditioned_seen_as_male"] + base[
        "unconditioned_seen_as_female"
    ] == pytest.approx(1.0)
    assert [r["value"] for r in report.gender_requests] == ["male", "female"]
    for r in report.gender_requests:
        assert 0.0 <= r["seen_as_requested"] <= 1.0 and 0.0 <= r["faces_found"] <= 1.0
    # per labelled gender: the two shares of that gender's sketches shown as that gender
    by_label = report.gender_by_label
    assert sum(f["n"] for f in by_label.values()) == 2
    assert {f["n"] for f in by_label.values()} == {genders.count(0), genders.count(1)}
    male = [r for r in report.gender_requests if r["value"] == "male"][0]
    if by_label["male"]["n"] == 0:
        assert by_label["male"]["unconditioned"] is None
    else:  # the male sketches are the "other-gender" rows of the female request
        assert 0.0 <= by_label["male"]["requested_pixels"] <= 1.0
        assert male["real_other"] == by_label["female"]["n"]
    table = report.table()
    assert "gender=male" in table and "gender=female" in table and "skin=dark" in table
    assert f"male sketches ({by_label['male']['n']} labelled)" in table
    json.dumps(report.__dict__)  # the CLI writes asdict(report) as JSON
    without = measure_attribute_control(pipe, pairs[:1], progress=False, measure_gender=False)
    assert without.gender_baseline is None and "gender=" not in without.table()


def _tiny_dataset(root: Path) -> list[ManifestRow]:
    """A prepared dataset of 3 train pairs: one FS2K row with a gender, two CelebA rows without."""
    rows = [
        ManifestRow(
            "fs2k-p1-0001",
            "fs2k",
            "fs2k_style0",
            "train",
            "sketches/a.png",
            "photos/a.png",
            {"gender": 0},
        ),
        ManifestRow(
            "celeba-1_1",
            "celeba",
            "pencil",
            "train",
            "sketches/b.png",
            "photos/b.png",
            {"identity": "1"},
        ),
        ManifestRow(
            "celeba-2_2",
            "celeba",
            "line",
            "train",
            "sketches/c.png",
            "photos/c.png",
            {"identity": "2"},
        ),
    ]
    for folder in ("sketches", "photos"):
        (root / folder).mkdir(parents=True)
    for i, row in enumerate(rows):
        for rel in (row.sketch, row.photo):
            Image.fromarray(np.full((256, 256, 3), 40 * i + 20, np.uint8)).save(root / rel)
    write_manifest(root / "manifest.jsonl", rows)
    return rows


def _write_pseudo(root: Path, labels: dict[str, dict[str, float]]) -> None:
    path = pseudo_gender_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": PSEUDO_GENDER_FORMAT, "labels": labels}))


def test_training_data_uses_pseudo_genders_where_the_manifest_has_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sketch2face.training.config import DataConfig
    from sketch2face.training.data import load_pairs

    root = tmp_path / "ds"
    _tiny_dataset(root)
    cfg = DataConfig(dataset_dir=str(root))
    before = load_pairs(cfg, "train").attributes.numpy()
    # manifest ids are sorted: celeba-1_1, celeba-2_2, fs2k-p1-0001
    assert before[:, 8].tolist() == [0, 0, 1] and before[2, 9] == -1  # FS2K 0 = male

    _write_pseudo(
        root,
        {
            "celeba-1_1": {"gender": 1, "p": 0.97},
            "fs2k-p1-0001": {"gender": 1, "p": 0.99},  # a manifest label is never overridden
        },
    )
    assert load_pseudo_genders(root) == {"celeba-1_1": 1, "fs2k-p1-0001": 1}
    with caplog.at_level(logging.INFO, logger="sketch2face.training.data"):
        after = load_pairs(cfg, "train").attributes.numpy()
    assert after[:, 8].tolist() == [1, 0, 1] and after[0, 9] == 1 and after[2, 9] == -1
    assert np.array_equal(after[:, :8], before[:, :8])
    assert "1 of 2 rows without a gender label got a pseudo label (1 female, 0 male)" in caplog.text

    pseudo_gender_path(root).write_text("{not json")
    with pytest.raises(DatasetError, match="damaged"):
        load_pairs(cfg, "train")


def test_pseudo_labelling_keeps_only_confident_photos(tmp_path: Path) -> None:
    from sketch2face.data.pseudo_gender import label_missing_genders

    root = tmp_path / "ds"
    _tiny_dataset(root)
    # landmarks as cached by `prepare`: one CelebA photo has a "face", the other none
    points = np.full((3, 5, 2), np.nan, np.float32)
    points[0] = [[170, 100], [150, 100], [86, 100], [106, 100], [128, 150]]
    cache = root / "cache"
    cache.mkdir(exist_ok=True)
    from sketch2face.data.dataset import load_split_u8
    from sketch2face.data.manifest import file_sha256

    ids = load_split_u8(root, "train").ids
    np.save(cache / "train_landmarks5.npy", points)
    (cache / "train_landmarks5.json").write_text(
        json.dumps(
            {"manifest_sha256": file_sha256(root / "manifest.jsonl"), "ids": ids, "found": 1}
        )
    )
    # a head that is sure of 'female' whatever the descriptor (bias only)
    sure = save_gender_head(GenderHead(np.zeros(128), 5.0, {"fitted_at": "t"}), tmp_path / "h.json")
    report = label_missing_genders(root, splits=["train"], head_path=sure, progress=False)
    assert (report.unlabelled, report.no_face, report.female, report.male) == (2, 1, 1, 0)
    assert load_pseudo_genders(root) == {"celeba-1_1": 1}
    document = json.loads(pseudo_gender_path(root).read_text())
    assert document["labels"]["celeba-1_1"]["p"] > 0.99
    unsure = save_gender_head(GenderHead(np.zeros(128), 0.0, {}), tmp_path / "u.json")
    report = label_missing_genders(root, splits=["train"], head_path=unsure, progress=False)
    assert report.kept == 0 and report.uncertain == 1 and load_pseudo_genders(root) == {}
    with pytest.raises(DatasetError, match="test split"):
        label_missing_genders(root, splits=["test"], head_path=sure, progress=False)


def test_cli_registers_gender_fit_and_label() -> None:
    from sketch2face.cli.main import build_parser

    args = build_parser(["gender"]).parse_args(
        ["gender", "label", "--dataset", "d", "--confidence", "0.95"]
    )
    assert args.func.__name__ == "run_label" and args.confidence == 0.95
    args = build_parser(["gender"]).parse_args(["gender", "fit", "--dataset", "d"])
    assert args.func.__name__ == "run_fit" and ASSET_PATH.name.endswith(".json")
