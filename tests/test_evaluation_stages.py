"""Evaluate scores both stages: stage one, refined, stage one sharpened (a trivial second stage),
the sketch itself and the mean face in one table; refined vs stage one (issue 22's go/no-go) and
vs stage one sharpened; the sheet's columns and header."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_evaluation_baselines import _faces, _pencil_sketch

from sketch2face.evaluation.baselines import MeanFace, unsharp_mask
from sketch2face.evaluation.evaluate import (
    BASELINE_LABELS,
    NO_REFINER_REASON,
    REFINE_OFF_REASON,
    REFINED_LABEL,
    SHARPENED_LABEL,
    SHEET_CELL_PX,
    SHEET_HEADER_PX,
    SHEET_PAD_PX,
    STAGE_ONE_LABEL,
    TABLE_COLUMNS,
    comparison_sheet,
    evaluate_pairs,
)
from sketch2face.evaluation.metrics import FaceEmbedder, default_embedder, psnr, ssim
from sketch2face.evaluation.realism import realism_distance
from sketch2face.evaluation.stages import (
    BEATS_SHARPENED,
    BEATS_SHARPENED_TITLE,
    DONE,
    GO_NO_GO,
    compare_stages,
    describe_comparison,
)
from sketch2face.imaging import load_image, save_png


@dataclass(frozen=True)
class _Result:
    inputs: list[np.ndarray]
    faces: list[np.ndarray]
    refined: list[np.ndarray | None]
    timings_ms: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def _stage_one(photo_u8: np.ndarray) -> np.ndarray:
    """What the stand-in's stage one makes of a pair: its photo, blurred (sigma 2 px)."""
    return cv2.GaussianBlur(photo_u8, (0, 0), 2.0)


class BlurRefiner:
    """A stand-in second stage that blurs once more (256x256 in and out, like the own refiner)."""

    name = "blur@test"

    def refine(self, face_u8: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(face_u8, (0, 0), 1.5)


class TwoStages:
    """Follows the Sketch2Face contract: stage one looks each sketch's photo up and blurs it; the
    refiner (if any) runs when ``refine`` is asked for, else a notice as Sketch2Face gives."""

    model_version = "two-stages@test"

    def __init__(
        self,
        sketches: Sequence[np.ndarray],
        photos: Sequence[np.ndarray],
        refiner: BlurRefiner | None,
        refiner_notice: str | None = None,
        *,
        fails_first: int = 0,
    ) -> None:
        self.lookup = {_key(s): p for s, p in zip(sketches, photos, strict=True)}
        self.refiner = refiner
        self.refiner_notice = refiner_notice
        self.fails_first = fails_first  # the refiner falls back on the first faces of each call
        self.refine_calls: list[bool] = []

    def __call__(self, sketches, *, refine=False, seed=None, batch_size=8, prepared=False):  # type: ignore[no-untyped-def]
        self.refine_calls.append(refine)
        inputs = [np.asarray(s) for s in sketches]
        faces = [_stage_one(self.lookup[_key(x)]) for x in inputs]
        refined: list[np.ndarray | None] = [None] * len(faces)
        notices = []
        if refine and self.refiner is not None:
            refined = [
                None if i < self.fails_first else self.refiner.refine(f)
                for i, f in enumerate(faces)
            ]
        elif refine:
            notices.append(self.refiner_notice or "refinement skipped (test)")
        return _Result(inputs, faces, refined, notices=notices)


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def _row(table: str, label: str) -> list[str]:
    """The cells of the summary table row of ``label``."""
    line = next(line for line in table.splitlines() if line.startswith(label + "  "))
    return line.removeprefix(label).split()


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return default_embedder()


@pytest.fixture(scope="module")
def faces(shared_dir: Path) -> list[np.ndarray]:
    return _faces(shared_dir)


# --- refined vs stage one: figures only --------------------------------------------------------

STAGE_ONE = {
    "realism_distance": 100.0,
    "realism_accuracy": 1.0,
    "rank1": 0.2,
    "rank5": 0.4,
    "identity_similarity": 0.90,
    "ssim": 0.50,
    "psnr": 15.0,
    "grid_artifact_ratio": 1.3,
    "drawn_lines": 1.2,
}


def test_compare_stages_ratios_differences_and_verdicts() -> None:
    refined = {**STAGE_ONE, "realism_distance": 45.0, "realism_accuracy": 0.85, "rank1": 0.25}
    refined |= {"grid_artifact_ratio": 1.05, "ssim": 0.45, "drawn_lines": 0.9}
    sketch = {"available": True, "rank1": 0.21}
    comparison = compare_stages(STAGE_ONE, refined, sketch)
    assert comparison["realism_distance_ratio"] == pytest.approx(0.45)
    assert comparison["rank1_difference"] == pytest.approx(0.05)
    assert comparison["rank5_difference"] == 0.0 and comparison["ssim_difference"] == pytest.approx(
        -0.05
    )
    assert comparison["realism_accuracy_difference"] == pytest.approx(-0.15)
    assert comparison["drawn_lines_difference"] == pytest.approx(-0.3)  # fewer lines left
    assert "drawn lines -0.30" in describe_comparison(comparison)[0]
    assert comparison["rank1_minus_sketch"] == pytest.approx(0.04)
    go = comparison["go_no_go"]
    assert go["met"] is True and [c["name"] for c in go["criteria"]] == [c.name for c in GO_NO_GO]
    assert comparison["done"]["met"] is True and len(comparison["done"]["criteria"]) == len(DONE)
    json.dumps(comparison, allow_nan=False)  # JSON-ready

    # FD 0.55x at a lower rank-1: the go/no-go fails on rank-1 alone; done fails on the FD too
    worse = compare_stages(STAGE_ONE, {**refined, "realism_distance": 55.0, "rank1": 0.15}, sketch)
    assert [c["met"] for c in worse["go_no_go"]["criteria"]] == [True, False]
    assert worse["go_no_go"]["met"] is False
    done = {c["name"]: c["met"] for c in worse["done"]["criteria"]}
    assert (
        done["realism FD <= 0.5x stage one"] is False and done["rank-1 >= sketch itself"] is False
    )
    assert done["realism acc <= 0.90"] is True and worse["done"]["met"] is False

    # undefined figures leave a verdict undecided rather than passed
    unknown = compare_stages(
        {**STAGE_ONE, "realism_distance": 0.0}, {**refined, "realism_accuracy": math.nan}, None
    )
    assert unknown["realism_distance_ratio"] is None and unknown["rank1_minus_sketch"] is None
    assert unknown["refined_realism_accuracy"] is None
    assert unknown["go_no_go"]["met"] is None and unknown["done"]["met"] is None
    unavailable_sketch = compare_stages(STAGE_ONE, refined, {"available": False, "reason": "x"})
    assert unavailable_sketch["rank1_minus_sketch"] is None

    lines = describe_comparison(comparison)
    assert "realism FD ratio 0.450" in lines[0] and "rank-1 +0.050" in lines[0]
    assert lines[1].startswith("  issue 22 go/no-go -> met")
    assert "undecided" in describe_comparison(unknown)[1]
    assert "NOT met" in describe_comparison(worse)[1]


def test_refined_against_the_trivial_sharpened_stage_one() -> None:
    refined = {**STAGE_ONE, "realism_distance": 45.0, "realism_accuracy": 0.85, "rank1": 0.25}
    refined |= {"grid_artifact_ratio": 1.05}
    sketch = {"available": True, "rank1": 0.21}
    # stage one + unsharp mask: FD 50 (already 0.5x stage one's), rank-1 0.22
    sharpened = {**STAGE_ONE, "available": True, "realism_distance": 50.0, "rank1": 0.22}
    comparison = compare_stages(STAGE_ONE, refined, sketch, sharpened)
    assert comparison["realism_distance_ratio_vs_sharpened"] == pytest.approx(0.9)
    assert comparison["rank1_minus_sharpened"] == pytest.approx(0.03)
    beats = comparison["beats_sharpened"]
    assert [c["name"] for c in beats["criteria"]] == [c.name for c in BEATS_SHARPENED]
    assert [c["met"] for c in beats["criteria"]] == [True, True] and beats["met"] is True
    json.dumps(comparison, allow_nan=False)
    # the verdicts are the same with or without the sharpened baseline
    alone = compare_stages(STAGE_ONE, refined, sketch)
    for key in ("go_no_go", "done", "realism_distance_ratio", "rank1_difference"):
        assert comparison[key] == alone[key], key
    assert alone["beats_sharpened"]["met"] is None  # not scored: undecided, not passed
    assert alone["realism_distance_ratio_vs_sharpened"] is None

    # meets the go/no-go (FD 0.45x, rank-1 up) yet does no better than sharpening
    worse_fd = compare_stages(STAGE_ONE, refined, sketch, {**sharpened, "realism_distance": 40.0})
    assert worse_fd["go_no_go"]["met"] is True
    assert [c["met"] for c in worse_fd["beats_sharpened"]["criteria"]] == [False, True]
    assert worse_fd["beats_sharpened"]["met"] is False
    # "beats" is strict: the same rank-1 as the sharpened faces is not beating them
    tie = compare_stages(STAGE_ONE, refined, sketch, {**sharpened, "rank1": 0.25})
    assert [c["met"] for c in tie["beats_sharpened"]["criteria"]] == [True, False]
    assert tie["beats_sharpened"]["met"] is False
    same_fd = compare_stages(STAGE_ONE, refined, sketch, {**sharpened, "realism_distance": 45.0})
    assert same_fd["beats_sharpened"]["criteria"][0]["met"] is False
    # an unavailable baseline (--no-baselines) leaves it undecided
    off = compare_stages(STAGE_ONE, refined, sketch, {"available": False, "reason": "x"})
    assert off["rank1_minus_sharpened"] is None and off["beats_sharpened"]["met"] is None

    lines = describe_comparison(comparison)
    assert len(lines) == 5 and lines[1].startswith("  issue 22 go/no-go -> met")
    assert "unsharp mask" in lines[3] and "realism FD ratio 0.900" in lines[3]
    assert "rank-1 +0.030" in lines[3]
    assert lines[4].startswith(f"  {BEATS_SHARPENED_TITLE} -> met")
    assert describe_comparison(worse_fd)[4].startswith(f"  {BEATS_SHARPENED_TITLE} -> NOT met")
    assert "-> undecided" in describe_comparison(alone)[4]
    # a report saved before the sharpened baseline existed is still described (3 lines)
    old = {k: v for k, v in alone.items() if "sharpened" not in k}
    assert len(describe_comparison(old)) == 3


# --- the table, the report and the sheet with a stand-in refiner -------------------------------


def test_one_table_scores_stage_one_refined_sketch_and_mean_face(
    faces: list[np.ndarray], embedder: FaceEmbedder, tmp_path: Path
) -> None:
    photos = faces[:8]
    sketches = [_pencil_sketch(p) for p in photos]
    sketch_paths = [save_png(s, tmp_path / "sk" / f"{i}.png") for i, s in enumerate(sketches)]
    photo_paths = [save_png(p, tmp_path / "ph" / f"{i}.png") for i, p in enumerate(photos)]
    mean_u8 = np.rint(np.mean([f.astype(np.float64) for f in faces[8:]], axis=0)).astype(np.uint8)
    pipeline = TwoStages(sketches, photos, BlurRefiner())
    sheet = tmp_path / "sheet.png"
    report = evaluate_pairs(
        pipeline,
        sketch_paths,
        photo_paths,
        prepared=True,
        progress=False,
        embedder=embedder,
        mean_face=MeanFace(mean_u8, "test mean of 4 other photos"),
        batch_size=3,
        sheet_path=sheet,
        sheet_pairs=3,
        groups=["x"] * 4 + ["y"] * 4,
    )
    assert pipeline.refine_calls == [True, True, True]  # on by default: the pipeline has a refiner
    stage_one = [_stage_one(p) for p in photos]
    refined_u8 = [BlurRefiner().refine(f) for f in stage_one]
    sharpened_u8 = [unsharp_mask(f) for f in stage_one]

    # refined figures: the blurred-again faces against the same photos, recomputed here
    refined = report.refined
    assert refined is not None and refined["count"] == 8 and report.refine is True
    assert report.refiner == "blur@test" and report.refined_unavailable is None
    assert refined["ssim"] == pytest.approx(
        np.mean([ssim(r, p) for r, p in zip(refined_u8, photos, strict=True)])
    )
    assert refined["psnr"] == pytest.approx(
        np.mean([psnr(r, p) for r, p in zip(refined_u8, photos, strict=True)])
    )
    assert refined["realism_distance"] == pytest.approx(realism_distance(refined_u8, photos))
    assert report.realism_distance == pytest.approx(realism_distance(stage_one, photos))
    assert report.ssim == pytest.approx(
        np.mean([ssim(f, p) for f, p in zip(stage_one, photos, strict=True)])
    )
    assert refined["ssim"] < report.ssim  # more blur, further from the photos
    assert report.items[0]["refined"]["ssim"] == pytest.approx(ssim(refined_u8[0], photos[0]))

    # refined vs stage one: the figures the go/no-go reads
    comparison = report.stage_comparison
    assert comparison is not None
    ratio = refined["realism_distance"] / report.realism_distance
    assert comparison["realism_distance_ratio"] == pytest.approx(ratio) and ratio > 1.0
    assert comparison["rank1_difference"] == pytest.approx(refined["rank1"] - report.rank1)
    sketch_b = report.baselines["sketch"]
    assert comparison["rank1_minus_sketch"] == pytest.approx(refined["rank1"] - sketch_b["rank1"])
    assert comparison["go_no_go"]["criteria"][0]["met"] is False  # blurring is no refinement
    assert comparison["go_no_go"]["met"] is False

    # stage one sharpened: its figures from the sharpened stage-one faces, recomputed here
    sharp = report.baselines["sharpened"]
    assert sharp["available"] and sharp["count"] == 8
    assert sharp["ssim"] == pytest.approx(
        np.mean([ssim(s, p) for s, p in zip(sharpened_u8, photos, strict=True)])
    )
    assert sharp["psnr"] == pytest.approx(
        np.mean([psnr(s, p) for s, p in zip(sharpened_u8, photos, strict=True)])
    )
    assert sharp["realism_distance"] == pytest.approx(realism_distance(sharpened_u8, photos))
    # sharpening a blurred face brings its statistics closer to the photos'
    assert sharp["realism_distance"] < report.realism_distance
    assert report.items[0]["baselines"]["sharpened"]["ssim"] == pytest.approx(
        ssim(sharpened_u8[0], photos[0])
    )
    # refined vs the sharpened stage one: blurring again does not beat it
    ratio_sharp = refined["realism_distance"] / sharp["realism_distance"]
    assert comparison["realism_distance_ratio_vs_sharpened"] == pytest.approx(ratio_sharp)
    assert ratio_sharp > 1.0
    assert comparison["rank1_minus_sharpened"] == pytest.approx(refined["rank1"] - sharp["rank1"])
    assert comparison["beats_sharpened"]["criteria"][0]["met"] is False
    assert comparison["beats_sharpened"]["met"] is False

    # one table: the five systems in order, each with every column
    table = report.summary_table()
    lines = table.splitlines()
    header = lines[1]
    rows = lines[2:7]
    labels = [
        STAGE_ONE_LABEL,
        REFINED_LABEL,
        SHARPENED_LABEL,
        BASELINE_LABELS["sketch"],
        BASELINE_LABELS["mean_face"],
    ]
    assert [next(lab for lab in labels if row.startswith(lab)) for row in rows] == labels
    n_columns = len(_row(table, STAGE_ONE_LABEL))
    assert n_columns == len(TABLE_COLUMNS) == 14 and all(
        len(_row(table, lab)) == n_columns for lab in labels
    )
    for column in ("SSIM (RGB)", "PSNR dB", "identity cos", "rank-1", "rank-5", "realism FD"):
        assert column in header
    assert "realism acc" in header and "grid ratio" in header
    cells = _row(table, REFINED_LABEL)
    assert cells[0] == f"{refined['ssim']:.4f}" and f"{refined['psnr']:.2f}" in cells
    assert f"{refined['realism_distance']:.2f}" == cells[-2]
    assert f"{refined['drawn_lines']:.2f}" == cells[-1]
    assert f"{refined['rank1']:.3f}" in cells and f"{refined['grid_artifact_ratio']:.2f}" in cells
    assert _row(table, STAGE_ONE_LABEL)[0] == f"{report.ssim:.4f}"
    assert _row(table, "mean face")[0] == f"{report.baselines['mean_face']['ssim']:.4f}"
    assert f"{REFINED_LABEL}: blur@test on the stage-one faces" in table
    assert f"realism FD ratio {ratio:.3f}" in table and "issue 22 go/no-go -> NOT met" in table
    assert _row(table, SHARPENED_LABEL)[0] == f"{sharp['ssim']:.4f}"
    assert f"realism FD ratio {ratio_sharp:.3f}" in table
    assert f"{BEATS_SHARPENED_TITLE} -> NOT met" in table
    assert "x (4 pairs): stage one " in table
    assert "; refined " in table  # the refined system in the by-group lines
    assert "; stage one sharpened " in table

    # the JSON report: the old keys as they were, the refined figures under their own keys
    data = json.loads(report.to_json())
    assert data["ssim"] == pytest.approx(report.ssim) and data["rank1"] == report.rank1
    assert set(data["baselines"]) == {"sharpened", "mean_face", "sketch"}
    assert data["refined"]["rank5"] == refined["rank5"] and data["refiner"] == "blur@test"
    assert data["stage_comparison"]["realism_distance_ratio"] == pytest.approx(ratio)
    assert data["stage_comparison"]["go_no_go"]["met"] is False
    assert data["stage_comparison"]["beats_sharpened"]["met"] is False
    assert data["baselines"]["sharpened"]["rank1"] == sharp["rank1"]
    assert set(data["by_group"]["x"]) == {"model", "refined", "sharpened", "sketch", "mean_face"}
    x_sharp = data["by_group"]["x"]["sharpened"]
    assert x_sharp["count"] == 4.0 and x_sharp["ssim"] == pytest.approx(
        np.mean([ssim(s, p) for s, p in zip(sharpened_u8[:4], photos[:4], strict=True)])
    )
    assert data["by_group"]["y"]["refined"]["count"] == 4.0

    # the sheet: header, then sketch | stage one | refined | photo, 3 rows
    sheet_u8 = load_image(sheet)
    cell, pad = SHEET_CELL_PX, SHEET_PAD_PX
    assert sheet_u8.shape == (SHEET_HEADER_PX + 3 * cell + 4 * pad, 4 * cell + 5 * pad, 3)
    y0 = SHEET_HEADER_PX + pad
    for c, expected in enumerate((sketches[0], stage_one[0], refined_u8[0], photos[0])):
        x0 = pad + c * (cell + pad)
        assert np.array_equal(sheet_u8[y0 : y0 + cell, x0 : x0 + cell], expected), c
        assert (sheet_u8[:SHEET_HEADER_PX, x0 : x0 + cell] < 128).any(), c  # a column name
    assert (sheet_u8[:SHEET_HEADER_PX, : pad - 1] == 255).all()  # nothing outside the columns


def test_refined_row_says_why_it_is_not_available(
    faces: list[np.ndarray], embedder: FaceEmbedder, tmp_path: Path
) -> None:
    photos = faces[:4]
    sketches = [_pencil_sketch(p) for p in photos]
    sketch_paths = [save_png(s, tmp_path / "sk" / f"{i}.png") for i, s in enumerate(sketches)]
    photo_paths = [save_png(p, tmp_path / "ph" / f"{i}.png") for i, p in enumerate(photos)]
    notice = "refinement skipped: no refiner file at assets/refiner (test)"
    kwargs = {"prepared": True, "progress": False, "embedder": embedder, "baselines": False}

    cases = [
        (TwoStages(sketches, photos, None, notice), None, [False], notice),  # no refiner
        (TwoStages(sketches, photos, None, notice), True, [True], notice),  # asked, none there
        (TwoStages(sketches, photos, None), None, [False], NO_REFINER_REASON),  # nothing said
        (TwoStages(sketches, photos, BlurRefiner()), False, [False], REFINE_OFF_REASON),
    ]
    for pipeline, refine, calls, reason in cases:
        sheet = tmp_path / "sheet.png"
        report = evaluate_pairs(
            pipeline, sketch_paths, photo_paths, refine=refine, sheet_path=sheet, **kwargs
        )
        assert pipeline.refine_calls == calls
        assert report.refined is None and report.refine is False and report.refiner is None
        assert report.refined_unavailable == reason and report.stage_comparison is None
        table = report.summary_table()
        assert " ".join(_row(table, REFINED_LABEL)) == f"not available ({reason})"
        assert _row(table, STAGE_ONE_LABEL)[0] == f"{report.ssim:.4f}"
        data = json.loads(report.to_json())
        assert data["refined"] is None and data["refined_unavailable"] == reason
        assert data["stage_comparison"] is None and data["count"] == 4
        # no refined column: sketch | stage one | photo
        assert load_image(sheet).shape == (SHEET_HEADER_PX + 4 * 256 + 5 * 4, 3 * 256 + 4 * 4, 3)


def test_a_pair_the_refiner_fell_back_on_is_scored_with_stage_one_and_counted(
    faces: list[np.ndarray], embedder: FaceEmbedder, tmp_path: Path
) -> None:
    photos = faces[:4]
    sketches = [_pencil_sketch(p) for p in photos]
    sketch_paths = [save_png(s, tmp_path / "sk" / f"{i}.png") for i, s in enumerate(sketches)]
    photo_paths = [save_png(p, tmp_path / "ph" / f"{i}.png") for i, p in enumerate(photos)]
    pipeline = TwoStages(sketches, photos, BlurRefiner(), fails_first=1)
    report = evaluate_pairs(
        pipeline,
        sketch_paths,
        photo_paths,
        prepared=True,
        progress=False,
        embedder=embedder,
        baselines=False,
        batch_size=4,
    )
    stage_one = [_stage_one(p) for p in photos]
    shown = [stage_one[0], *(BlurRefiner().refine(f) for f in stage_one[1:])]
    assert report.refined is not None and report.refined["fell_back"] == 1
    assert report.refined["count"] == 4 and report.refined["rank1"] == 1.0  # ranked: all pairs
    assert report.refined["ssim"] == pytest.approx(
        np.mean([ssim(f, p) for f, p in zip(shown, photos, strict=True)])
    )
    assert (
        report.items[0]["refined_fell_back"] is True and "refined_fell_back" not in report.items[1]
    )
    assert report.items[0]["refined"]["ssim"] == pytest.approx(report.items[0]["ssim"])
    assert "it fell back on 1 of 4 pairs" in report.summary_table()
    # baselines off: no sharpened faces scored, and nothing judged against them
    assert report.baselines["sharpened"] == {
        "available": False,
        "reason": "baselines were not requested",
    }
    assert "baselines" not in report.items[0]
    comparison = report.stage_comparison
    assert comparison is not None and comparison["rank1_minus_sharpened"] is None
    assert comparison["beats_sharpened"]["met"] is None
    assert " ".join(_row(report.summary_table(), SHARPENED_LABEL)) == "unavailable (see below)"
    assert f"{BEATS_SHARPENED_TITLE} -> undecided" in report.summary_table()


def test_comparison_sheet_columns() -> None:
    grey = np.full((256, 256, 3), 128, np.uint8)
    big = np.full((512, 512, 3), 60, np.uint8)  # a GFPGAN-sized refined face: shown in a cell
    with_refined = comparison_sheet(
        [(grey, grey, big, grey), (grey, grey, None, grey)], refined=True
    )
    assert with_refined.shape == (SHEET_HEADER_PX + 2 * 256 + 3 * 4, 4 * 256 + 5 * 4, 3)
    x_refined = 4 + 2 * 260
    y1 = SHEET_HEADER_PX + 4
    assert (with_refined[y1 : y1 + 256, x_refined : x_refined + 256] == 60).all()
    y2 = y1 + 260  # a pair without a refined face: a white cell
    assert (with_refined[y2 : y2 + 256, x_refined : x_refined + 256] == 255).all()
    without = comparison_sheet([(grey, grey, None, grey)], refined=False)
    assert without.shape == (SHEET_HEADER_PX + 256 + 2 * 4, 3 * 256 + 4 * 4, 3)
    with pytest.raises(ValueError, match="at least one pair"):
        comparison_sheet([], refined=True)
