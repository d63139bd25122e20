"""The `prepare` job end to end on tiny FS2K / CelebA / CUHK-style folders built from fixtures."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2face.cli.main import main
from sketch2face.data.manifest import SPLITS, read_manifest
from sketch2face.data.prepare import (
    PAIRS_PER_ROW,
    SHEET_CELL_PX,
    SHEET_ROWS,
    PrepareConfig,
    prepare_dataset,
)
from sketch2face.data.sources import cuhk_items, fs2k_items, photo_folder_items
from sketch2face.errors import DatasetError
from sketch2face.imaging import load_image

FIXTURE_NAME = re.compile(r"style(\d)_(photo|sketch)(\d)_(image|sketch)(\d+)\.jpg")


def _fs2k_tree(shared_dir: Path, root: Path) -> dict[str, dict]:
    """Lay the fixture pairs out as FS2K (photo/photoN/imageX.jpg, sketch/sketchN/sketchX.jpg)."""
    entries: dict[str, dict] = {}
    for path in sorted((shared_dir / "data" / "fixtures" / "fs2k_test").glob("*.jpg")):
        style, kind, group, _, number = FIXTURE_NAME.fullmatch(path.name).groups()
        target = (
            root
            / kind
            / f"{kind}{group}"
            / (f"image{number}.jpg" if kind == "photo" else f"sketch{number}.jpg")
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        name = f"photo{group}/image{number}"
        entries[name] = {
            "image_name": name,
            "style": int(style),
            "hair": 0,
            "hair_color": 2,
            "gender": 1,
            "earring": 0,
            "smile": 1,
            "frontal_face": 1,
            "skin_color": [100, 120],
            "lip_color": [200.0, 100.0, 90.0],
            "eye_color": [60.0, 40.0, 30.0],
        }
    return entries


@pytest.fixture(scope="module")
def sources(shared_dir, tmp_path_factory):
    """FS2K-layout folder (4 train, 2 test + damaged extras) and a CelebA-style photo folder."""
    base = tmp_path_factory.mktemp("sources")
    fs2k = base / "fs2k"
    entries = _fs2k_tree(shared_dir, fs2k)
    names = sorted(entries)
    # One sketch stored as an RGBA PNG under a .jpg name (like FS2K sketch2).
    rgba_name = names[0]
    group, number = re.fullmatch(r"photo(\d)/image(\d+)", rgba_name).groups()
    sketch_path = fs2k / "sketch" / f"sketch{group}" / f"sketch{number}.jpg"
    buf = io.BytesIO()
    Image.open(sketch_path).convert("RGBA").save(buf, format="PNG")
    sketch_path.write_bytes(buf.getvalue())
    # Damaged pairs: zero-byte photo, truncated sketch, missing sketch.
    (fs2k / "photo" / "photo1" / "image9001.jpg").write_bytes(b"")
    shutil.copy(
        fs2k / "sketch" / "sketch1" / f"sketch{number}.jpg",
        fs2k / "sketch" / "sketch1" / "sketch9001.jpg",
    )
    shutil.copy(
        fs2k / "photo" / "photo1" / f"image{number}.jpg",
        fs2k / "photo" / "photo1" / "image9002.jpg",
    )
    good = (fs2k / "sketch" / "sketch1" / f"sketch{number}.jpg").read_bytes()
    (fs2k / "sketch" / "sketch1" / "sketch9002.jpg").write_bytes(good[: len(good) // 3])
    shutil.copy(
        fs2k / "photo" / "photo1" / f"image{number}.jpg",
        fs2k / "photo" / "photo1" / "image9003.jpg",
    )
    extra = {
        n: {"image_name": n, "style": 0}
        for n in ("photo1/image9001", "photo1/image9002", "photo1/image9003")
    }
    train = [entries[n] for n in names[:4]] + list(extra.values())
    test = [entries[n] for n in names[4:]]
    (fs2k / "anno_train.json").write_text(json.dumps(train))
    (fs2k / "anno_test.json").write_text(json.dumps(test))

    celeba = base / "celeba"
    celeba.mkdir()
    for path in sorted((shared_dir / "data" / "fixtures" / "celeba").glob("*.jpg")):
        shutil.copy(path, celeba / path.name)
    # More identities (copies of the fixtures) so every split can get one.
    fixtures = sorted(celeba.glob("*.jpg"))
    for i in range(24):
        shutil.copy(fixtures[i % len(fixtures)], celeba / f"{20000 + i // 2}_{300000 + i}.jpg")
    return {"fs2k": fs2k, "celeba": celeba, "entries": entries}


@pytest.fixture(scope="module")
def dataset(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "ds"
    report = prepare_dataset(
        PrepareConfig(
            out_dir=out,
            fs2k_dir=sources["fs2k"],
            photo_dirs=(sources["celeba"],),
            val_fraction=0.2,
            test_fraction=0.2,
            workers=1,
            progress=False,
        )
    )
    return out, report


def test_files_are_256_rgb_pngs_with_matching_ids(dataset):
    out, report = dataset
    rows = read_manifest(out)
    assert rows and len(rows) == len(report.rows)
    sketch_ids = sorted(p.stem for p in (out / "sketches").glob("*.png"))
    photo_ids = sorted(p.stem for p in (out / "photos").glob("*.png"))
    assert sketch_ids == photo_ids == sorted(r.id for r in rows)
    for row in rows:
        assert row.sketch == f"sketches/{row.id}.png" and row.photo == f"photos/{row.id}.png"
        for rel in (row.sketch, row.photo):
            with Image.open(out / rel) as image:
                assert image.format == "PNG" and image.mode == "RGB" and image.size == (256, 256)
        sketch = load_image(out / row.sketch)
        assert np.array_equal(sketch[:, :, 0], sketch[:, :, 1])  # grey replicated to 3 channels
        assert (sketch == 255).mean() > 0.2 and sketch.min() < 60


def test_manifest_keys_and_fs2k_splits_and_attributes(dataset, sources):
    out, _ = dataset
    lines = (out / "manifest.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert list(first) == [
        "id",
        "source",
        "style",
        "split",
        "sketch",
        "photo",
        "attributes",
        "face_found",
    ]
    rows = {r.id: r for r in read_manifest(out)}
    fs2k = [r for r in rows.values() if r.source == "fs2k"]
    assert len(fs2k) == 6
    test_names = {
        e["image_name"] for e in json.loads((sources["fs2k"] / "anno_test.json").read_text())
    }
    for row in fs2k:
        group, number = re.fullmatch(r"fs2k-p(\d)-(\d+)", row.id).groups()
        official_test = f"photo{group}/image{number}" in test_names
        assert (row.split == "test") == official_test  # val only ever comes out of train
        assert row.style == f"fs2k_style{row.attributes['style']}"
        assert row.attributes["hair_color"] == 2 and "image_name" not in row.attributes
        assert row.face_found


def test_celeba_split_by_identity_and_styles(dataset):
    out, _ = dataset
    celeba = [r for r in read_manifest(out) if r.source == "celeba"]
    assert len(celeba) == 30
    split_of: dict[str, set[str]] = {}
    for row in celeba:
        identity = row.id.split("-", 1)[1].split("_")[0]
        assert row.attributes == {"identity": identity}
        split_of.setdefault(identity, set()).add(row.split)
    assert all(len(s) == 1 for s in split_of.values()), "a person appears in two splits"
    assert {r.style for r in celeba} == {"pencil", "line"}
    assert {next(iter(s)) for s in split_of.values()} == set(SPLITS)


def test_summary_counts_skips_and_faces(dataset):
    out, report = dataset
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(report.summary))
    assert summary["pairs"] == 36
    assert sum(summary["splits"].values()) == 36
    assert sum(summary["sources"]["fs2k"].values()) == 6
    assert summary["faces"]["fs2k"] == {"found": 6, "fallback": 0}
    assert summary["faces"]["celeba"]["found"] + summary["faces"]["celeba"]["fallback"] == 30
    assert summary["faces_found"] + summary["faces_fallback"] == 36
    skipped = summary["skipped"]
    assert skipped["count"] == 3
    assert skipped["by_reason"] == {"missing pair": 1, "unreadable image": 2}
    assert summary["missing_pairs"] == 1
    details = " ".join(i["detail"] for i in skipped["items"])
    assert "empty" in details and "truncated" in details
    paths = sorted(Path(i["path"]).name for i in skipped["items"] if i["reason"] != "missing pair")
    assert paths == ["image9001.jpg", "sketch9002.jpg"]  # the file to look at, not just the pair
    assert summary["elapsed_s"] > 0


def test_contact_sheet_has_expected_size(dataset):
    out, _ = dataset
    with Image.open(out / "contact_sheet.png") as sheet:
        width, height = sheet.size
    rows = SHEET_ROWS  # 36 pairs fill the whole sheet
    assert width == 2 * PAIRS_PER_ROW * SHEET_CELL_PX + (2 * PAIRS_PER_ROW + 1) * 4
    assert height == rows * SHEET_CELL_PX + (rows + 1) * 4


def test_refuses_existing_dataset_and_force_rebuilds_atomically(sources, tmp_path):
    out = tmp_path / "ds"
    cfg = PrepareConfig(
        out_dir=out, photo_dirs=(sources["celeba"],), limit=4, workers=1, progress=False
    )
    prepare_dataset(cfg)
    before = (out / "manifest.jsonl").read_text()
    with pytest.raises(DatasetError, match="--force"):
        prepare_dataset(cfg)
    assert (out / "manifest.jsonl").read_text() == before
    (out / "photos" / "stray.png").write_bytes(b"old file")
    stale = tmp_path / ".ds.building-999999999"  # left by a killed run (no such process)
    (stale / "photos").mkdir(parents=True)
    forced = PrepareConfig(
        out_dir=out, photo_dirs=(sources["celeba"],), limit=9, workers=2, force=True, progress=False
    )  # also exercises the worker pool
    prepare_dataset(forced)
    rows = read_manifest(out)
    assert len(rows) == 9
    assert not (out / "photos" / "stray.png").exists()  # rebuilt fully, not mixed
    assert len(list((out / "photos").iterdir())) == 9
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no build/old folders left behind


def test_nonempty_folder_without_dataset_is_refused(sources, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        prepare_dataset(
            PrepareConfig(out_dir=tmp_path, photo_dirs=(sources["celeba"],), progress=False)
        )


def test_bad_sources_give_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        photo_folder_items(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        photo_folder_items(tmp_path / "empty")
    with pytest.raises(DatasetError, match="anno_train"):
        fs2k_items(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no source"):
        prepare_dataset(PrepareConfig(out_dir=tmp_path / "out", progress=False))


def test_cuhk_builtin_and_custom_pair_rules(sources, tmp_path):
    photos, sketches = tmp_path / "photos", tmp_path / "sketches"
    photos.mkdir()
    sketches.mkdir()
    src = sorted(sources["celeba"].glob("*.jpg"))
    for i, name in enumerate(["f-005-01", "m-012-01", "f1-007-01"]):
        shutil.copy(src[i], photos / f"{name}.jpg")
    for name in ["F2-005-01-sz1", "M2-012-01-sz1", "F2-099-01-sz1", "readme"]:
        shutil.copy(src[0], sketches / f"{name}.jpg")
    listing = cuhk_items(photos, sketches)
    assert sorted(i.id for i in listing.items) == ["cuhk-f-005-01", "cuhk-m-012-01"]
    reasons = sorted(s.reason for s in listing.skipped)
    assert reasons == ["missing pair", "missing pair", "name does not match pair pattern"]
    assert all(i.split in SPLITS for i in listing.items)

    custom = cuhk_items(photos, sketches, pair_pattern=r"-(?P<key>\d{3})-")
    assert sorted(i.id for i in custom.items) == ["cuhk-005", "cuhk-012"]
    with pytest.raises(DatasetError, match="named group"):
        cuhk_items(photos, sketches, pair_pattern=r"\d+")


def test_cli_prepare_end_to_end(sources, tmp_path, capsys):
    out = tmp_path / "cli_ds"
    argv = [
        "prepare",
        "--out",
        str(out),
        "--fs2k",
        str(sources["fs2k"]),
        "--photos",
        str(sources["celeba"]),
        "--limit",
        "4",
        "--workers",
        "1",
        "--sketch-styles",
        "pencil",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    rows = read_manifest(out)
    assert f"pairs: {len(rows)}" in printed and "fallback" in printed and "elapsed" in printed
    assert len([r for r in rows if r.source == "celeba"]) == 4
    assert {r.source for r in rows} == {"fs2k", "celeba"}
    assert {r.style for r in rows if r.source == "celeba"} == {"pencil"}
    assert (out / "contact_sheet.png").is_file() and (out / "summary.json").is_file()
    assert main(argv) == 1  # refuses to overwrite
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
