"""evaluate_pairs plumbing with stand-in pipelines, stem pairing, manifest input and the CLI."""

from __future__ import annotations

import json
import shutil
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from sketch2face.errors import DatasetError
from sketch2face.evaluation.evaluate import (
    REFINE_OFF_REASON,
    REFINED_LABEL,
    SHEET_HEADER_PX,
    EvalReport,
    evaluate_pairs,
)
from sketch2face.evaluation.metrics import PSNR_MAX_DB, FaceEmbedder, default_embedder, ssim
from sketch2face.evaluation.pairs import pair_by_stem, pairs_from_manifest, styles_from_manifest
from sketch2face.imaging import load_image, save_png

CELEBA_STEMS = ("10000_028381", "10001_191146", "10000_151065")
Pairs = tuple[list[Path], list[Path]]


@dataclass(frozen=True)
class FakeResult:
    """Same fields as sketch2face.pipeline.GenerationResult."""

    inputs: list[np.ndarray]
    faces: list[np.ndarray]
    refined: list[np.ndarray | None]
    timings_ms: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


class UpscaleRefiner:
    """A stand-in second stage shaped like GFPGAN's: a 2x bicubic upscale (512x512 out)."""

    name = "bicubic-2x@test"

    def refine(self, face_u8: np.ndarray) -> np.ndarray:
        return cv2.resize(face_u8, (512, 512), interpolation=cv2.INTER_CUBIC)


NO_REFINER_NOTICE = "refinement skipped: no refiner file (test)"
SHEET_3_COLUMNS = 3 * 256 + 4 * 4  # sketch | stage one | photo, 4 px padding
SHEET_4_COLUMNS = 4 * 256 + 5 * 4  # sketch | stage one | refined | photo


def _table_cells(table: str, label: str) -> str:
    """The summary table row of the system ``label``, without the label."""
    row = next(line for line in table.splitlines() if line.startswith(label + "  "))
    return row.removeprefix(label).strip()


def _sheet_height(rows: int) -> int:
    return SHEET_HEADER_PX + rows * 256 + (rows + 1) * 4


class StandInPipeline:
    """Follows the Sketch2Face call contract; 'generates' a transformed copy of its 256 input and,
    with a ``refiner``, refines it when asked (like Sketch2Face: a notice when it has none)."""

    model_version = "stand-in@test"

    def __init__(
        self,
        transform: Callable[[np.ndarray], np.ndarray] = lambda x: x,
        *,
        order: Sequence[int] | None = None,
        refiner: UpscaleRefiner | None = None,
    ) -> None:
        self.transform = transform
        self.order = order
        self.refiner = refiner
        self.refiner_notice = None if refiner is not None else NO_REFINER_NOTICE
        self.calls: list[dict[str, object]] = []
        self.seen_shapes: list[tuple[int, ...]] = []

    def __call__(
        self,
        sketches: Sequence[np.ndarray],
        *,
        refine: bool = False,
        seed: int | None = None,
        batch_size: int = 8,
        prepared: bool = False,
    ) -> FakeResult:
        self.calls.append(
            {"n": len(sketches), "refine": refine, "seed": seed, "prepared": prepared}
        )
        inputs = [np.asarray(s) for s in sketches]
        self.seen_shapes += [x.shape for x in inputs]
        faces = [self.transform(x) for x in inputs]
        if self.order is not None:
            faces = [faces[i] for i in self.order]
        refined: list[np.ndarray | None] = [None] * len(faces)
        notices = []
        if refine and self.refiner is not None:
            refined = [self.refiner.refine(f) for f in faces]
        elif refine:
            notices.append(NO_REFINER_NOTICE)
        return FakeResult(inputs, faces, refined, {"generate": 5.0 * len(inputs)}, notices)


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return default_embedder()


@pytest.fixture
def prepared_pairs(shared_dir: Path, tmp_path: Path) -> Pairs:
    """Three 256x256 CelebA faces used as both 'sketch' and 'photo' (a pipeline stand-in copies)."""
    sketches, photos = [], []
    for stem in CELEBA_STEMS:
        face = load_image(shared_dir / f"data/fixtures/celeba/{stem}.jpg")
        face = cv2.resize(face[20:198], (256, 256), interpolation=cv2.INTER_CUBIC)  # 178x178 square
        sketches.append(save_png(face, tmp_path / "sketches" / f"{stem}.png"))
        photos.append(save_png(face, tmp_path / "photos" / f"{stem}.png"))
    return sketches, photos


def test_identity_pipeline_scores_perfectly(prepared_pairs: Pairs, embedder: FaceEmbedder) -> None:
    sketches, photos = prepared_pairs
    pipeline = StandInPipeline()
    report = evaluate_pairs(
        pipeline, sketches, photos, prepared=True, batch_size=2, progress=False, embedder=embedder
    )
    assert report.count == 3
    assert report.ssim == pytest.approx(1.0) and report.ssim_gray == pytest.approx(1.0)
    assert report.psnr == PSNR_MAX_DB
    assert report.identity_similarity == pytest.approx(1.0, abs=1e-5)
    assert report.identity_match_rate == 1.0 and report.rank1 == 1.0
    assert report.rank1_chance == pytest.approx(1 / 3)
    assert report.refined is None and report.model_version == "stand-in@test"
    assert [c["n"] for c in pipeline.calls] == [2, 1]
    assert [c["seed"] for c in pipeline.calls] == [None, None]  # canonical faces by default
    assert all(c["prepared"] for c in pipeline.calls)  # 256 inputs are not cropped again
    # no refiner: stage two is not asked for, and the report says why there is no refined row
    assert [c["refine"] for c in pipeline.calls] == [False, False] and report.notices == []
    assert report.refine is False and report.refined_unavailable == NO_REFINER_NOTICE
    assert report.refiner is None and report.stage_comparison is None


def test_blurred_and_shuffled_generations_score_lower(
    prepared_pairs: Pairs, embedder: FaceEmbedder, tmp_path: Path
) -> None:
    sketches, photos = prepared_pairs
    blur = StandInPipeline(lambda x: cv2.GaussianBlur(x, (0, 0), 2.0))
    report = evaluate_pairs(
        blur, sketches, photos, prepared=True, progress=False, embedder=embedder
    )
    assert 0.3 < report.ssim < 0.99 and 15 < report.psnr < PSNR_MAX_DB
    assert report.rank1 == 1.0 and report.identity_match_rate == 1.0

    rotated = StandInPipeline(order=[1, 2, 0])  # every face is scored against another photo
    report = evaluate_pairs(
        rotated, sketches, photos, prepared=True, progress=False, embedder=embedder
    )
    assert report.rank1 == 0.0
    # 10000_151065 and 10000_028381 are the same person, so that swapped pair still matches (< 0.6).
    assert report.identity_match_rate == pytest.approx(1 / 3)
    assert report.ssim < 0.9


def test_report_json_has_the_contract_keys(
    prepared_pairs: Pairs, embedder: FaceEmbedder, tmp_path: Path
) -> None:
    sketches, photos = prepared_pairs
    sheet = tmp_path / "sheet.png"
    pipeline = StandInPipeline(refiner=UpscaleRefiner())
    report = evaluate_pairs(
        pipeline,
        sketches,
        photos,
        prepared=True,
        progress=False,
        embedder=embedder,
        sheet_path=sheet,
        sheet_pairs=2,
    )
    assert all(c["refine"] for c in pipeline.calls)  # on by default with a refiner
    data = json.loads(report.to_json())
    for key in (
        "count",
        "ssim",
        "ssim_gray",
        "psnr",
        "identity_similarity",
        "rank1",
        "unavailable",
        "timing",
        "model_version",
        "ssim_method",
        "items",
        "refined",
        "lpips",
        "fid",
    ):
        assert key in data, key
    assert data["lpips"] is None and data["fid"] is None
    refined = data["refined"]  # the stand-in's "refined" face is a 2x bicubic upscale
    assert {"ssim", "psnr", "identity_similarity", "rank1", "identity_match_rate"} <= set(refined)
    # scored at 256: the 512 output area-downscaled, like stage one
    back = [
        cv2.resize(UpscaleRefiner().refine(load_image(p)), (256, 256), interpolation=cv2.INTER_AREA)
        for p in photos
    ]
    assert refined["ssim"] == pytest.approx(
        np.mean([ssim(b, load_image(p)) for b, p in zip(back, photos)])
    )
    assert 0.9 < refined["ssim"] < 1.0 and refined["rank1"] == 1.0
    assert data["refine"] is True and data["refiner"] == "bicubic-2x@test"
    assert data["refined_unavailable"] is None
    assert data["stage_comparison"]["rank1_difference"] == 0.0  # 3 pairs: FD undefined
    assert data["stage_comparison"]["realism_distance_ratio"] is None
    assert data["stage_comparison"]["go_no_go"]["met"] is None  # undecided, not passed
    # the trivial second stage (stage one sharpened) is scored too, and refined judged against it
    assert (
        data["baselines"]["sharpened"]["available"] and data["baselines"]["sharpened"]["count"] == 3
    )
    assert data["stage_comparison"]["rank1_minus_sharpened"] == pytest.approx(
        refined["rank1"] - data["baselines"]["sharpened"]["rank1"]
    )
    assert data["stage_comparison"]["beats_sharpened"]["met"] is None  # FD undefined: undecided
    assert set(data["unavailable"]) == {"lpips", "fid"} and all(data["unavailable"].values())
    assert data["timing"]["total_s"] > 0 and "pipeline_generate_ms_per_image" in data["timing"]
    assert len(data["items"]) == 3 and data["items"][0]["ssim"] == pytest.approx(1.0)
    # drawn lines: none in faces identical to their photos (the stand-in copies), a figure per row
    assert data["items"][0]["drawn_lines"] == pytest.approx(0.0, abs=1e-9)
    assert data["drawn_lines"] == pytest.approx(0.0, abs=1e-9)
    assert all(data["baselines"][key]["drawn_lines"] >= 0 for key in ("sketch", "sharpened"))
    assert "Infinity" not in report.to_json() and "NaN" not in report.to_json()
    saved = report.save(tmp_path / "out" / "report.json")
    assert json.loads(saved.read_text())["count"] == 3
    # sheet: a header, then 2 rows of sketch | stage one | refined | photo, 256 px cells
    sheet_u8 = load_image(sheet)
    assert sheet_u8.shape == (_sheet_height(2), SHEET_4_COLUMNS, 3)
    table = report.summary_table()
    assert "SSIM (RGB)" in table and "rank-1" in table and "lpips: unavailable" in table
    assert "drawn lines" in table
    assert f"{REFINED_LABEL}: bicubic-2x@test on the stage-one faces" in table


def test_raw_pairs_are_cropped_like_training_data(
    shared_dir: Path, tmp_path: Path, embedder: FaceEmbedder
) -> None:
    fixtures = shared_dir / "data/fixtures/fs2k_test"
    for photo_name, sketch_name in (
        ("style0_photo1_image1396.jpg", "style0_sketch1_sketch1396.jpg"),
        ("style1_photo1_image0788.jpg", "style1_sketch1_sketch0788.jpg"),
    ):
        stem = photo_name.rsplit("_", 1)[1].removesuffix(".jpg")
        shutil.copy(fixtures / sketch_name, tmp_path / f"s_{stem}.jpg")
        (tmp_path / "sketches").mkdir(exist_ok=True)
        (tmp_path / "photos").mkdir(exist_ok=True)
        shutil.move(tmp_path / f"s_{stem}.jpg", tmp_path / "sketches" / f"{stem}.jpg")
        shutil.copy(fixtures / photo_name, tmp_path / "photos" / f"{stem}.jpg")
    pairs = pair_by_stem(tmp_path / "sketches", tmp_path / "photos")
    pipeline = StandInPipeline()
    report = evaluate_pairs(
        pipeline,
        [s for s, _ in pairs],
        [p for _, p in pairs],
        progress=False,
        embedder=embedder,
        sheet_path=tmp_path / "sheet.png",
    )
    assert report.count == 2 and not report.skipped
    assert pipeline.seen_shapes == [(256, 256, 3), (256, 256, 3)]  # prepared like training sketches
    assert -1.0 <= report.ssim <= 1.0 and 0 < report.psnr < PSNR_MAX_DB
    assert report.rank1 in (0.0, 0.5, 1.0)
    assert load_image(tmp_path / "sheet.png").shape == (_sheet_height(2), SHEET_3_COLUMNS, 3)


def test_unreadable_pair_is_skipped_and_reported(
    prepared_pairs: Pairs, embedder: FaceEmbedder, tmp_path: Path
) -> None:
    sketches, photos = prepared_pairs
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    report = evaluate_pairs(
        StandInPipeline(),
        [*sketches[:1], broken],
        [*photos[:1], photos[1]],
        prepared=True,
        progress=False,
        embedder=embedder,
    )
    assert (
        report.count == 1
        and len(report.skipped) == 1
        and "broken.png" in report.skipped[0]["sketch"]
    )
    with pytest.raises(DatasetError):
        evaluate_pairs(StandInPipeline(), [], [], progress=False, embedder=embedder)
    with pytest.raises(ValueError, match="pairs"):
        evaluate_pairs(StandInPipeline(), sketches, photos[:1], progress=False, embedder=embedder)


def test_pair_by_stem_counts_unmatched(tmp_path: Path) -> None:
    tiny = np.zeros((8, 8, 3), np.uint8)
    for name in ("a.png", "b.jpg", "c.png", "notes.txt"):
        save_png(tiny, tmp_path / "sk" / name)
    for name in ("a.jpg", "b.png", "d.png", "e.webp"):
        save_png(tiny, tmp_path / "ph" / name)
    pairs = pair_by_stem(tmp_path / "sk", tmp_path / "ph")
    assert [(s.name, p.name) for s, p in pairs] == [("a.png", "a.jpg"), ("b.jpg", "b.png")]
    assert len(pairs) == 2 and pairs[1][0].name == "b.jpg"
    assert [p.name for p in pairs.unmatched_sketches] == ["c.png"]
    assert [p.name for p in pairs.unmatched_photos] == ["d.png", "e.webp"]

    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="same file stem"):
        pair_by_stem(tmp_path / "sk", tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        pair_by_stem(tmp_path / "missing", tmp_path / "ph")
    save_png(tiny, tmp_path / "sk" / "a.jpg")
    with pytest.raises(DatasetError, match="two images with stem 'a'"):
        pair_by_stem(tmp_path / "sk", tmp_path / "ph")


def _write_manifest(root: Path, prepared_pairs: Pairs) -> None:
    from sketch2face.data.manifest import ManifestRow, write_manifest

    sketches, photos = prepared_pairs
    rows = []
    for i, (s, p) in enumerate(zip(sketches, photos, strict=True)):
        for kind, src in (("sketches", s), ("photos", p)):
            (root / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / kind / src.name)
        rows.append(
            ManifestRow(
                id=f"id{i}",
                source="celeba",
                style="pencil",
                split="test" if i < 2 else "train",
                sketch=f"sketches/{s.name}",
                photo=f"photos/{p.name}",
            )
        )
    write_manifest(root / "manifest.jsonl", rows)


def test_manifest_split_pairs(prepared_pairs: Pairs, tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    _write_manifest(root, prepared_pairs)
    pairs = pairs_from_manifest(root, "test")
    assert len(pairs) == 2 and all(s.is_file() and p.is_file() for s, p in pairs)
    with pytest.raises(DatasetError, match="no 'val' pairs"):
        pairs_from_manifest(root, "val")


def test_figures_by_group_rank_among_all_photos(
    prepared_pairs: Pairs, embedder: FaceEmbedder, tmp_path: Path
) -> None:
    sketches, photos = prepared_pairs
    root = tmp_path / "dataset"
    _write_manifest(root, prepared_pairs)
    assert styles_from_manifest(root, "test") == ["pencil", "pencil"]
    rotated = StandInPipeline(order=[1, 0, 2])  # pairs 0 and 1 swapped, pair 2 right
    report = evaluate_pairs(
        rotated,
        sketches,
        photos,
        prepared=True,
        progress=False,
        embedder=embedder,
        groups=["a", "a", "b"],
    )
    assert sorted(report.by_group) == ["a", "b"]
    a, b = report.by_group["a"]["model"], report.by_group["b"]["model"]
    assert (a["count"], b["count"]) == (2.0, 1.0)
    assert (a["rank1"], b["rank1"]) == (0.0, 1.0)  # ranked among all three photos
    assert b["ssim"] == pytest.approx(1.0) and a["ssim"] < 0.9
    assert (2 * a["rank1"] + b["rank1"]) / 3 == pytest.approx(report.rank1)
    assert report.by_group["b"]["sketch"]["rank1"] == 1.0  # the baselines are grouped too
    assert [item["group"] for item in report.items] == ["a", "a", "b"]
    table = report.summary_table()
    assert "a (2 pairs): stage one " in table and "b (1 pairs)" in table
    assert json.loads(report.to_json())["by_group"]["a"]["model"]["rank1"] == 0.0
    with pytest.raises(ValueError, match="2 group labels for 3 pairs"):
        evaluate_pairs(
            rotated, sketches, photos, prepared=True, embedder=embedder, groups=["a", "b"]
        )


def _install_fake_pipeline(
    monkeypatch: pytest.MonkeyPatch,
    created: list[dict[str, object]],
    default_refiner: UpscaleRefiner | None = None,
) -> None:
    """Sketch2Face.from_pretrained gives a StandInPipeline whose refiner is the one asked for (a
    path stands for a refiner loaded from it), else ``default_refiner`` (the packaged second
    stage, or None: no refiner file)."""

    class FakeSketch2Face:
        @classmethod
        def from_pretrained(  # type: ignore[no-untyped-def]
            cls, checkpoint=None, *, device=None, refiner=None, gfpgan_weights=None, backend="torch"
        ):
            created.append({"checkpoint": checkpoint, "refiner": refiner})
            if isinstance(refiner, str):  # a refiner checkpoint path: "loaded"
                refiner = UpscaleRefiner()
            return StandInPipeline(refiner=refiner if refiner is not None else default_refiner)

    try:
        import sketch2face.pipeline as real_module
    except ModuleNotFoundError:
        module = types.ModuleType("sketch2face.pipeline")
        module.Sketch2Face = FakeSketch2Face  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "sketch2face.pipeline", module)
    else:
        monkeypatch.setattr(real_module, "Sketch2Face", FakeSketch2Face)


def test_cli_evaluate_folders_and_argument_errors(
    prepared_pairs: Pairs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sketch2face.cli.main import main

    _install_fake_pipeline(monkeypatch, [])
    sketches, photos = prepared_pairs
    save_png(np.zeros((8, 8, 3), np.uint8), sketches[0].parent / "lonely.png")
    report_path = tmp_path / "r.json"
    code = main(
        [
            "evaluate",
            "--sketches",
            str(sketches[0].parent),
            "--photos",
            str(photos[0].parent),
            "--report",
            str(report_path),
            "--limit",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    data = json.loads(report_path.read_text())
    assert data["count"] == 2 and data["unmatched"] == {"sketches": 1, "photos": 0}
    assert "1 sketches, 0 photos without a pair" in capsys.readouterr().out

    assert main(["evaluate", "--report", str(report_path)]) == 1
    assert "--manifest" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--sketches",
                str(tmp_path),
                "--photos",
                str(tmp_path / "nope"),
                "--report",
                str(report_path),
            ]
        )
        == 1
    )


def test_cli_refines_by_default_and_no_refine_turns_it_off(
    prepared_pairs: Pairs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sketch2face.cli.main import main
    from sketch2face.refine.base import NoRefiner

    root = tmp_path / "dataset"
    _write_manifest(root, prepared_pairs)
    report_path, sheet = tmp_path / "r.json", tmp_path / "sheet.png"
    args = ["evaluate", "--manifest", str(root), "--report", str(report_path), "--no-progress"]
    args += ["--no-baselines", "--sheet", str(sheet)]

    # the pipeline has a second stage: scored by default (and with --refine, still accepted)
    created: list[dict[str, object]] = []
    _install_fake_pipeline(monkeypatch, created, default_refiner=UpscaleRefiner())
    for extra in ([], ["--refine"]):
        assert main([*args, *extra]) == 0
        out = capsys.readouterr().out
        data = json.loads(report_path.read_text())
        assert created[-1]["refiner"] is None  # the pipeline chose its own second stage
        assert data["refine"] is True and data["refiner"] == "bicubic-2x@test"
        assert data["refined"]["count"] == 2 and data["refined"]["rank1"] == 1.0
        assert data["stage_comparison"]["rank1_difference"] == 0.0
        # --no-baselines: no sharpened stage one either, so nothing is judged against it
        assert data["baselines"]["sharpened"]["available"] is False
        assert data["stage_comparison"]["rank1_minus_sharpened"] is None
        assert data["stage_comparison"]["beats_sharpened"]["met"] is None
        assert f"{REFINED_LABEL}: bicubic-2x@test" in out
        row = next(line for line in out.splitlines() if line.startswith(REFINED_LABEL + " "))
        assert f"{data['refined']['ssim']:.4f}" in row and "not available" not in row
        assert load_image(sheet).shape == (_sheet_height(2), SHEET_4_COLUMNS, 3)

    # --no-refine: stage one alone, nothing loaded for stage two, and the row says so
    assert main([*args, "--no-refine"]) == 0
    out = capsys.readouterr().out
    data = json.loads(report_path.read_text())
    assert isinstance(created[-1]["refiner"], NoRefiner)
    assert data["refine"] is False and data["refined"] is None and data["refiner"] is None
    assert data["refined_unavailable"] == REFINE_OFF_REASON and data["stage_comparison"] is None
    assert _table_cells(out, REFINED_LABEL) == f"not available ({REFINE_OFF_REASON})"
    assert load_image(sheet).shape == (_sheet_height(2), SHEET_3_COLUMNS, 3)

    # no refiner file: evaluate still runs, the refined row gives the pipeline's reason
    _install_fake_pipeline(monkeypatch, created, default_refiner=None)
    assert main(args) == 0
    out = capsys.readouterr().out
    data = json.loads(report_path.read_text())
    assert data["refined"] is None and data["refined_unavailable"] == NO_REFINER_NOTICE
    assert f"{REFINED_LABEL}: not available ({NO_REFINER_NOTICE})" in out  # said up front
    assert _table_cells(out, REFINED_LABEL) == f"not available ({NO_REFINER_NOTICE})"  # table
    assert load_image(sheet).shape == (_sheet_height(2), SHEET_3_COLUMNS, 3)

    # --refiner PATH (e.g. a refiner being trained) goes to the pipeline to load
    assert main([*args, "--refiner", str(tmp_path / "candidate.safetensors")]) == 0
    assert created[-1]["refiner"] == str(tmp_path / "candidate.safetensors")
    capsys.readouterr()

    # naming a second stage and --no-refine contradict each other
    for flag in ("--gfpgan-weights", "--refiner"):
        assert main([*args, "--no-refine", flag, str(tmp_path / "x")]) == 1
        assert "--no-refine" in capsys.readouterr().err


def test_eval_report_is_a_dataclass_with_json_round_trip() -> None:
    report = EvalReport(
        count=1,
        ssim=float("nan"),
        ssim_gray=0.5,
        psnr=20.0,
        identity_similarity=0.9,
        identity_distance=0.3,
        identity_match_rate=1.0,
        rank1=1.0,
        rank1_chance=1.0,
        face_found_rate={"generated": 1.0, "real": 1.0},
        refined=None,
        lpips=None,
        fid=None,
        unavailable={},
        timing={},
        model_version="m",
        refine=False,
        seed=0,
    )
    data = json.loads(report.to_json(include_items=False))
    assert data["ssim"] is None and "items" not in data


def test_cli_evaluate_with_the_real_pipeline(
    prepared_pairs: Pairs,
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("sketch2face.pipeline", reason="the pipeline module is not built yet")
    from sketch2face.cli.main import main

    monkeypatch.delenv("SKETCH2FACE_GFPGAN_WEIGHTS", raising=False)
    root = tmp_path / "dataset"
    _write_manifest(root, prepared_pairs)
    report_path = tmp_path / "report.json"
    args = ["evaluate", "--manifest", str(root), "--report", str(report_path), "--no-progress"]
    sheet = tmp_path / "sheet.png"
    args += ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--sheet", str(sheet)]
    code = main(args)  # refinement on by default
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(report_path.read_text())
    assert data["count"] == 2 and data["model_version"].startswith("pix2pix")
    assert -1.0 <= data["ssim"] < 0.9 and 0.0 < data["psnr"] < PSNR_MAX_DB  # untrained generator
    assert 0.0 <= data["rank1"] <= 1.0 and "SSIM (RGB)" in out
    if data["refined"] is None:  # no second stage shipped or configured: said, no crash
        assert data["refine"] is False and data["refined_unavailable"]
        assert _table_cells(out, REFINED_LABEL) == f"not available ({data['refined_unavailable']})"
        assert load_image(sheet).shape == (_sheet_height(2), SHEET_3_COLUMNS, 3)
    else:  # the packaged refiner: scored beside stage one
        assert data["refine"] is True and data["refiner"] and data["refined"]["count"] == 2
        assert 0.0 <= data["refined"]["rank1"] <= 1.0 and -1.0 <= data["refined"]["ssim"] <= 1.0
        assert data["stage_comparison"]["rank1_difference"] == pytest.approx(
            data["refined"]["rank1"] - data["rank1"]
        )
        assert load_image(sheet).shape == (_sheet_height(2), SHEET_4_COLUMNS, 3)

    assert main([*args, "--no-refine"]) == 0
    capsys.readouterr()
    data = json.loads(report_path.read_text())
    assert data["refined"] is None and data["refined_unavailable"] == REFINE_OFF_REASON
    assert load_image(sheet).shape == (_sheet_height(2), SHEET_3_COLUMNS, 3)
