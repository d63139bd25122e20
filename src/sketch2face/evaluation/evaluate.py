"""Evaluate a sketch->face pipeline on (sketch, real photo) pairs: EvalReport + comparison sheet.

Each real photo is prepared exactly like a training photo before it is compared: raw pairs go
through :func:`sketch2face.data.prepare.build_pair` (the function ``sketch2face prepare`` uses: one
dlib crop box for a same-sized sketch/photo pair, else each cropped on its own, 256x256), so the
sketch fed to the pipeline and the photo it is scored against share the training crop. Manifest
pairs (``prepared=True``) are already 256x256 and aligned, and are used as they are. Either way
the pipeline gets 256x256 model inputs and is called with ``prepared=True`` (when its signature
has that keyword) so it does not crop them a second time. A photo that is still not 256x256
(a manifest built at another size) is centre-square cropped and resized to 256 (area/bicubic).

Five systems are scored on the same pairs, one row each in the summary table:

* **stage one (pix2pix)**: the generated 256x256 face (``GenerationResult.faces``); its figures
  stay top-level in the report (``ssim``, ``rank1``, ...).
* **refined (stage two)**: the second stage's face (``GenerationResult.refined``), on by default
  when the pipeline has a refiner; a larger output (GFPGAN's 512x512) is area-downscaled to 256 so
  both stages compare like with like. A pair the refiner fell back on (``refined`` None while it
  ran) is scored with stage one's face, what the pipeline shows there, and counted
  (``refined["fell_back"]``). Under ``refined`` in the report, with the refiner's name in
  ``refiner``; when there is none, ``refined`` is None and ``refined_unavailable`` says why.
  ``stage_comparison`` holds refined against stage one (:mod:`.stages`: realism FD ratio, rank-1
  difference, issue 22's go/no-go and done criteria) and against stage one sharpened (FD ratio,
  rank-1 difference and whether it beats that trivial second stage on both).
* **stage one + unsharp mask (trivial 2nd stage)**: stage one's own face sharpened
  (:func:`.baselines.unsharp_mask`, sigma 2 px, amount 1.0), a second stage that knows nothing
  about faces; a refiner must beat it, since sharpening alone can cut the realism FD far below
  stage one's (``EvalReport.baselines["sharpened"]``).
* the **sketch itself** (the prepared 256x256 network input, scored exactly like a generated face)
  and the **mean training face** (one constant image), trivial baselines (``EvalReport.baselines``,
  see :mod:`.baselines`) so a number can be read against "no model at all".

For each system the report gives SSIM, PSNR, identity, rank-1/rank-5 (an image without a detected
face counts as a miss), the number of faces the recogniser found, the grid-artefact ratio and the
realism accuracy and FD (:mod:`.realism`). The comparison sheet has the columns sketch | stage one |
refined | photo (the refined column only when there are refined faces) under a header row.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from sketch2face.errors import DatasetError, InvalidImageError
from sketch2face.evaluation.baselines import (
    SHARPEN_AMOUNT,
    SHARPEN_SIGMA_PX,
    MeanFace,
    unsharp_mask,
)
from sketch2face.evaluation.metrics import (
    DLIB_SAME_PERSON_DISTANCE,
    DRAWN_LINES_METHOD,
    LINE_WIDTH_PX,
    SSIM_METHOD,
    FaceEmbedder,
    FaceEmbedding,
    default_embedder,
    drawn_lines,
    fid_unavailable_reason,
    identity_distance,
    identity_similarity,
    lpips_unavailable_reason,
    psnr,
    rank_hits,
    ssim_gray,
    ssim_regions,
)

# the pairing lives in evaluation/pairs.py; its names stay importable from here
from sketch2face.evaluation.pairs import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from sketch2face.evaluation.pairs import PathLike as PathLike
from sketch2face.evaluation.pairs import StemPairs as StemPairs
from sketch2face.evaluation.pairs import pair_by_stem as pair_by_stem
from sketch2face.evaluation.pairs import pairs_from_manifest as pairs_from_manifest
from sketch2face.evaluation.pairs import styles_from_manifest as styles_from_manifest
from sketch2face.evaluation.realism import (
    GRID_METHOD,
    REALISM_METHOD,
    REALISM_MIN_PER_CLASS,
    grid_energy_score,
    grid_ratio_from_scores,
    realism_accuracy_from_features,
    realism_distance_from_features,
    realism_features,
)
from sketch2face.evaluation.stages import compare_stages, describe_comparison
from sketch2face.imaging import atomic_write_bytes, load_image, make_grid, save_png

logger = logging.getLogger(__name__)

EVAL_SIZE_PX = 256
#: Rows in the comparison sheet by default.
SHEET_PAIRS = 8
#: The k of the rank-k identification rates reported for every system.
RANKS = (1, 5)
#: Row labels of the two stages in the summary table (and column names in the sheet).
STAGE_ONE_LABEL = "stage one (pix2pix)"
REFINED_LABEL = "refined (stage two)"
#: Row label of the trivial second stage (baseline ``sharpened``: stage one + unsharp mask).
SHARPENED_LABEL = "stage one + unsharp mask (trivial 2nd stage)"
#: Baseline keys in ``EvalReport.baselines`` and their labels in the summary table, in table order.
BASELINE_LABELS = {
    "sharpened": SHARPENED_LABEL,
    "sketch": "sketch itself",
    "mean_face": "mean face",
}
#: Where the sharpened baseline's faces come from (its ``source`` in the report).
SHARPENED_SOURCE = (
    f"stage one's own faces through an unsharp mask (Gaussian sigma {SHARPEN_SIGMA_PX:g} px, "
    f"amount {SHARPEN_AMOUNT:g}: f + {SHARPEN_AMOUNT:g}*(f - blur(f)), clipped), a second stage "
    "that restores nothing from outside the face; a refiner should beat it on rank-1 and realism "
    "FD, or it may be doing no more than sharpening"
)
#: Keys of the systems in ``EvalReport.by_group`` and their (short) labels, in table order.
GROUP_LABELS = {
    "model": "stage one",
    "refined": "refined",
    "sharpened": "stage one sharpened",
    "sketch": "sketch itself",
    "mean_face": "mean face",
}
#: Why there is no refined row when refinement was turned off.
REFINE_OFF_REASON = "refinement turned off (--no-refine / refine=False)"
#: Why there is no refined row when the pipeline has no refiner and says nothing more.
NO_REFINER_REASON = "the pipeline has no second stage (no refiner configured)"
#: Column names of the comparison sheet, left to right; the refined column only with a refiner.
SHEET_COLUMNS = ("sketch", STAGE_ONE_LABEL, REFINED_LABEL, "photo")
#: Height of the sheet's header row naming the columns, and its text size.
SHEET_HEADER_PX = 28
SHEET_HEADER_FONT_PX = 18
#: Cell size and padding of the comparison sheet (as :func:`sketch2face.imaging.make_grid`).
SHEET_CELL_PX = EVAL_SIZE_PX
SHEET_PAD_PX = 4
#: (figure key, column header, decimals) of the summary table; one row per system.
TABLE_COLUMNS = (
    ("ssim", "SSIM (RGB)", 4),
    ("ssim_gray", "SSIM gray", 4),
    ("ssim_face", "SSIM face", 4),
    ("ssim_rest", "SSIM rest", 4),
    ("psnr", "PSNR dB", 2),
    ("identity_similarity", "identity cos", 4),
    ("identity_match_rate", "match <0.6", 3),
    ("faces_found", "faces found", 0),
    ("rank1", "rank-1", 3),
    ("rank5", "rank-5", 3),
    ("grid_artifact_ratio", "grid ratio", 2),
    ("realism_accuracy", "realism acc", 3),
    ("realism_distance", "realism FD", 2),
    ("drawn_lines", "drawn lines", 2),
)
IDENTITY_METHOD = (
    "dlib ResNet 128-D descriptor; identity_similarity = cosine, identity_match_rate = fraction "
    f"with euclidean distance < {DLIB_SAME_PERSON_DISTANCE}; rank1 / rank5 = the pair's own real "
    "photo is the nearest / among the 5 nearest of all evaluated real photos (euclidean, ties by "
    "index), an image in which dlib's detector finds no face counting as a miss; rank1_fallback / "
    "rank5_fallback = the same with such images embedded from the whole frame instead"
)


class Pipeline(Protocol):
    """What evaluation needs from ``Sketch2Face`` (docs/ARCHITECTURE.md, pipeline contract)."""

    def __call__(
        self, sketches: Any, *, refine: bool = ..., seed: int | None = ..., batch_size: int = ...
    ) -> Any:
        """Return a GenerationResult (``inputs``, ``faces``, ``refined``, ``timings_ms``, ...)."""
        ...


# --- report ----------------------------------------------------------------------------------


@dataclass
class EvalReport:
    """Mean metrics over the evaluated pairs, beside trivial baselines (JSON via :meth:`to_json`).

    Stage one's figures (the model's) stay top-level (``ssim``, ``rank1``, ...); ``refined`` holds
    the same figures for the second stage (None when it did not run, ``refined_unavailable`` then
    says why; ``refiner`` names it), ``stage_comparison`` refined against stage one
    (:func:`.stages.compare_stages`), and ``baselines`` the same figures for ``sharpened`` (stage
    one's face through an unsharp mask, a trivial second stage), ``mean_face`` (the mean training
    photo) and ``sketch`` (the network's input), each with ``available`` and a ``source`` or
    ``reason``. ``refine`` is True when refined figures are present.
    """

    count: int
    ssim: float
    ssim_gray: float
    psnr: float
    identity_similarity: float
    identity_distance: float
    identity_match_rate: float
    rank1: float
    rank1_chance: float
    face_found_rate: dict[str, float]
    refined: dict[str, Any] | None
    lpips: float | None
    fid: float | None
    unavailable: dict[str, str]
    timing: dict[str, float]
    model_version: str
    refine: bool
    seed: int | None
    rank5: float | None = None
    rank5_chance: float | None = None
    #: rank-k with undetected faces embedded from the whole frame (how rank1 used to be counted)
    rank1_fallback: float | None = None
    rank5_fallback: float | None = None
    faces_found: dict[str, int] = field(default_factory=dict)
    grid_artifact_ratio: float | None = None
    realism_accuracy: float | None = None
    realism_distance: float | None = None
    #: RGB SSIM inside the face ellipse / over the rest of the frame (metrics.ssim_regions)
    ssim_face: float | None = None
    ssim_rest: float | None = None
    #: mean strength of thin dark lines the faces have beyond their photos' (metrics.drawn_lines)
    drawn_lines: float | None = None
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: figures per group of pairs (e.g. drawing style): {group: {system key: figures}}, ranks
    #: still among *all* evaluated photos, so a group's rank-1 reads like the overall one
    by_group: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    ssim_method: str = SSIM_METHOD
    identity_method: str = IDENTITY_METHOD
    grid_method: str = GRID_METHOD
    realism_method: str = REALISM_METHOD
    drawn_lines_method: str = DRAWN_LINES_METHOD
    unmatched: dict[str, int] = field(default_factory=lambda: {"sketches": 0, "photos": 0})
    skipped: list[dict[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    #: the second stage's name (``Refiner.name``) when refined faces were scored
    refiner: str | None = None
    #: why there are no refined figures (``refined`` is None), else None
    refined_unavailable: str | None = None
    #: refined vs stage one on the same pairs (realism_distance_ratio, rank1_difference, ...,
    #: go_no_go, done); None without refined figures
    stage_comparison: dict[str, Any] | None = None

    def to_dict(self, *, include_items: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (no NaN/inf: undefined means are None)."""
        data = asdict(self)
        if not include_items:
            data.pop("items")
        return _json_safe(data)

    def to_json(self, *, include_items: bool = True, indent: int = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(include_items=include_items), indent=indent, allow_nan=False)

    def save(self, path: PathLike) -> Path:
        """Write the JSON report atomically."""
        return atomic_write_bytes(path, (self.to_json() + "\n").encode("utf-8"))

    def model_summary(self) -> dict[str, Any]:
        """The model's figures in the same shape as a baseline's."""
        return {
            "available": True,
            "count": self.count,
            "ssim": self.ssim,
            "ssim_gray": self.ssim_gray,
            "ssim_face": self.ssim_face,
            "ssim_rest": self.ssim_rest,
            "psnr": self.psnr,
            "identity_similarity": self.identity_similarity,
            "identity_distance": self.identity_distance,
            "identity_match_rate": self.identity_match_rate,
            "faces_found": self.faces_found.get("generated"),
            "rank1": self.rank1,
            "rank5": self.rank5,
            "rank1_fallback": self.rank1_fallback,
            "rank5_fallback": self.rank5_fallback,
            "grid_artifact_ratio": self.grid_artifact_ratio,
            "realism_accuracy": self.realism_accuracy,
            "realism_distance": self.realism_distance,
            "drawn_lines": self.drawn_lines,
        }

    def systems(self) -> list[tuple[str, dict[str, Any]]]:
        """(label, figures) per system in table order: stage one, refined, stage one sharpened,
        sketch itself, mean face.

        The refined row is always there: its figures, or ``available`` False with the ``reason``.
        """
        rows = [(STAGE_ONE_LABEL, self.model_summary())]
        if self.refined:
            rows.append((REFINED_LABEL, {"available": True, **self.refined}))
        else:
            reason = self.refined_unavailable or "no refined faces were scored"
            rows.append((REFINED_LABEL, {"available": False, "reason": reason}))
        for key, label in BASELINE_LABELS.items():
            if key in self.baselines:
                rows.append((label, self.baselines[key]))
        return rows

    def summary_table(self) -> str:
        """A fixed-width table, one row per system (stage one, refined, stage one sharpened, sketch
        itself, mean face), the notes that explain the columns, and refined against stage one
        (and against stage one sharpened)."""

        def fmt(value: Any, digits: int) -> str:
            if value is None or not math.isfinite(float(value)):
                return "n/a"
            return f"{value:.{digits}f}"

        systems = self.systems()
        header = ["system", *(label for _, label, _ in TABLE_COLUMNS)]
        body: list[list[str]] = []
        for label, figures in systems:
            if not figures.get("available", True):
                note = (
                    f"not available ({figures.get('reason')})"
                    if label == REFINED_LABEL
                    else "unavailable (see below)"
                )
                body.append([label, note])
                continue
            cells = [label]
            for key, _, digits in TABLE_COLUMNS:
                if key == "faces_found":
                    found, count = figures.get("faces_found"), figures.get("count")
                    cells.append(
                        "n/a" if found is None or count is None else f"{int(found)}/{int(count)}"
                    )
                else:
                    cells.append(fmt(figures.get(key), digits))
            body.append(cells)
        widths = [
            max(len(row[c]) for row in [header, *body] if c < len(row) and len(row) > 2)
            for c in range(len(header))
        ]

        def line(row: list[str]) -> str:
            if len(row) == 2 and len(header) > 2:  # an unavailable system
                return f"{row[0]:<{widths[0]}}  {row[1]}"
            return "  ".join(
                f"{cell:<{widths[c]}}" if c == 0 else f"{cell:>{widths[c]}}"
                for c, cell in enumerate(row)
            ).rstrip()

        real_found = self.faces_found.get("real")
        lines = [
            f"{self.count} pairs, model {self.model_version}; chance level: rank-1 "
            f"{fmt(self.rank1_chance, 4)}, rank-5 {fmt(self.rank5_chance, 4)}",
            line(header),
            *(line(row) for row in body),
        ]
        if real_found is not None:
            lines.append(
                f"real photos: the face recogniser found a face in {real_found}/{self.count}"
            )
        fallbacks = ", ".join(
            f"{label} {fmt(f.get('rank1_fallback'), 3)}/{fmt(f.get('rank5_fallback'), 3)}"
            for label, f in systems
            if f.get("available", True) and "rank1_fallback" in f
        )
        lines += [
            "rank-k: the pair's own real photo is among the k nearest of all evaluated real photos "
            "(dlib descriptor, euclidean); an image in which the recogniser finds no face counts "
            "as a miss (see faces found)"
            + (
                f"; embedding the whole frame instead, rank-1/rank-5: {fallbacks}"
                if fallbacks
                else ""
            ),
            "SSIM face / rest: the same SSIM map inside the face ellipse (forehead to chin) / over "
            "the rest of the frame (hair, background, shoulders, which a sketch barely constrains)",
            "grid ratio: spectral energy at the period-2/4/8 grid frequencies over its spectral "
            "neighbourhood, relative to the same for the real photos (1.0 = as real photos)",
            "realism FD: Fréchet distance between the same statistics of these images and of the "
            "real photos (0 = the same; still ranks systems when every realism acc is 1.0)",
            "realism acc: cross-validated accuracy of a logistic regression telling these images "
            "from the real photos on simple statistics (0.5 = indistinguishable to it, 1.0 = "
            f"trivially separable; n/a below {REALISM_MIN_PER_CLASS} pairs)",
            "drawn lines: mean strength (grey levels) of dark lines narrower than "
            f"{2 * LINE_WIDTH_PX + 1} px that the image has and its real photo lacks at the same "
            "pixel: a sketch's strokes or outlines left in the face (0 = none)",
        ]
        if self.refined:
            fell_back = int(self.refined.get("fell_back") or 0)
            lines.append(
                f"{REFINED_LABEL}: {self.refiner or 'unnamed refiner'} on the stage-one faces, "
                f"scored at {EVAL_SIZE_PX}x{EVAL_SIZE_PX} like stage one (larger outputs "
                "area-downscaled)"
                + (
                    f"; it fell back on {fell_back} of {self.count} pairs, scored there with "
                    "stage one's face (what the pipeline shows)"
                    if fell_back
                    else ""
                )
            )
        if self.stage_comparison:
            lines += describe_comparison(self.stage_comparison)
        lines += self._group_lines()
        for key, label in BASELINE_LABELS.items():
            figures = self.baselines.get(key)
            if figures is None:
                continue
            if figures.get("available"):
                lines.append(f"{label}: {figures.get('source', '')}")
            else:
                lines.append(f"{label}: unavailable ({figures.get('reason', 'unknown reason')})")
        if self.lpips is not None or self.fid is not None:
            lines.append(f"LPIPS {fmt(self.lpips, 4)}, FID {fmt(self.fid, 2)}")
        for metric, reason in self.unavailable.items():
            lines.append(f"{metric}: unavailable ({reason})")
        return "\n".join(lines)

    def _group_lines(self) -> list[str]:
        """One line per group: each system's SSIM / rank-1 / match rate, in table order."""
        if not self.by_group:
            return []
        lines = [
            "by group (SSIM | rank-1 | match < 0.6): "
            + " vs ".join(GROUP_LABELS.values())
            + " (those scored):"
        ]
        for group, systems in sorted(self.by_group.items()):
            cells = []
            for key, label in GROUP_LABELS.items():
                f = systems.get(key)
                if f is not None:
                    cells.append(
                        f"{label} {f['ssim']:.3f} | "
                        f"{f.get('rank1', math.nan):.3f} | {f['identity_match_rate']:.3f}"
                    )
            count = int(systems["model"]["count"])
            lines.append(f"  {group} ({count} pairs): " + "; ".join(cells))
        return lines


def _group_figures(
    groups: Sequence[str], systems: dict[str, _SystemScores]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per-group means of SSIM, identity match and rank-k hits (ranked among all photos)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    labels = np.asarray(groups)
    for group in sorted(set(groups)):
        mask = labels == group
        out[group] = {}
        for key, system in systems.items():
            if len(system.rows) != len(groups):
                continue
            rows = [r for r, m in zip(system.rows, mask) if m]
            figures = {
                "count": float(len(rows)),
                "ssim": _mean([r["ssim"] for r in rows]),
                "identity_match_rate": _mean(
                    [float(r["identity_distance"] < DLIB_SAME_PERSON_DISTANCE) for r in rows]
                ),
            }
            for k, hits in system.hits.items():
                figures[f"rank{k}"] = float(np.mean(hits[mask]))
            out[group][key] = figures
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


# --- evaluation ------------------------------------------------------------------------------


def _prepare_pair(
    sketch_path: PathLike, photo_path: PathLike, prepared: bool, cropper: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(sketch_u8 for the pipeline, photo_u8 256x256 to score against)."""
    if prepared:
        sketch_u8 = load_image(sketch_path)
        photo_u8 = load_image(photo_path)
    else:
        from sketch2face.data.prepare import build_pair
        from sketch2face.data.sources import WorkItem

        item = WorkItem(
            id=Path(sketch_path).stem,
            source="evaluate",
            style="drawn",
            split="test",
            photo_path=Path(photo_path),
            sketch_path=Path(sketch_path),
        )
        sketch_u8, photo_u8, _ = build_pair(item, cropper)
    if photo_u8.shape[:2] != (EVAL_SIZE_PX, EVAL_SIZE_PX):
        photo_u8 = _center_square_resize(photo_u8, EVAL_SIZE_PX)
    return sketch_u8, photo_u8


def _accepts_keyword(function: Any, name: str) -> bool:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in params and params[name].kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def _center_square_resize(image_u8: np.ndarray, size_px: int) -> np.ndarray:
    height, width = image_u8.shape[:2]
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    square = image_u8[y0 : y0 + side, x0 : x0 + side]
    interp = cv2.INTER_AREA if side > size_px else cv2.INTER_CUBIC
    return cv2.resize(square, (size_px, size_px), interpolation=interp)


def _to_size(image_u8: np.ndarray, size_px: int) -> np.ndarray:
    if image_u8.shape[:2] == (size_px, size_px):
        return image_u8
    return _center_square_resize(image_u8, size_px)


class _SystemScores:
    """Per-image scores of one system (the model, the refined model, or a baseline)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.embs: list[np.ndarray] = []
        self.found: list[bool] = []
        self.grid: list[float] = []
        self.features: list[np.ndarray] = []
        #: k -> per-pair rank-k hits, set by :meth:`summary`
        self.hits: dict[int, np.ndarray] = {}

    def add(
        self,
        image_u8: np.ndarray,
        photo_u8: np.ndarray,
        real_vector: np.ndarray,
        emb: FaceEmbedding,
        grid: float,
        features: np.ndarray,
    ) -> dict[str, Any]:
        """Score one image against its real photo; returns the per-pair metrics."""
        whole, face, rest = ssim_regions(image_u8, photo_u8)
        row = {
            "ssim": whole,
            "ssim_face": face,
            "ssim_rest": rest,
            "ssim_gray": ssim_gray(image_u8, photo_u8),
            "psnr": psnr(image_u8, photo_u8),
            "identity_similarity": identity_similarity(emb.vector, real_vector),
            "identity_distance": identity_distance(emb.vector, real_vector),
            "face_found": emb.face_found,
            "drawn_lines": drawn_lines(image_u8, photo_u8),
        }
        self.rows.append(row)
        self.embs.append(emb.vector)
        self.found.append(emb.face_found)
        self.grid.append(grid)
        self.features.append(features)
        return row

    def summary(
        self, real_embs: np.ndarray, real_grid: list[float], real_features: np.ndarray
    ) -> dict[str, Any]:
        """Means over the pairs, ranks against all real photos, grid ratio and realism accuracy."""
        n = len(self.rows)
        distances = [r["identity_distance"] for r in self.rows]
        summary: dict[str, Any] = {
            "count": n,
            **{
                k: _mean([r[k] for r in self.rows])
                for k in (
                    "ssim",
                    "ssim_gray",
                    "ssim_face",
                    "ssim_rest",
                    "psnr",
                    "identity_similarity",
                    "identity_distance",
                    "drawn_lines",
                )
            },
            "identity_match_rate": _mean([float(d < DLIB_SAME_PERSON_DISTANCE) for d in distances]),
            "faces_found": int(sum(self.found)),
            "face_found_rate": _mean([float(f) for f in self.found]),
        }
        if n == len(real_embs) and n > 0:  # ranks need one image per real photo
            gen = np.stack(self.embs)
            for k in RANKS:
                self.hits[k] = rank_hits(gen, real_embs, k, face_found=self.found)
                summary[f"rank{k}"] = float(np.mean(self.hits[k]))
            for k in RANKS:
                summary[f"rank{k}_fallback"] = float(np.mean(rank_hits(gen, real_embs, k)))
        else:
            for k in RANKS:
                summary[f"rank{k}"] = summary[f"rank{k}_fallback"] = float("nan")
        summary["grid_artifact_ratio"] = (
            grid_ratio_from_scores(self.grid, real_grid) if n else float("nan")
        )
        summary["realism_accuracy"] = summary["realism_distance"] = float("nan")
        if n:
            features = np.stack(self.features)
            summary["realism_accuracy"] = realism_accuracy_from_features(features, real_features)
            summary["realism_distance"] = realism_distance_from_features(features, real_features)
        return summary


def evaluate_pairs(
    pipeline: Pipeline,
    sketch_paths: Sequence[PathLike],
    photo_paths: Sequence[PathLike],
    *,
    refine: bool | None = None,
    batch_size: int = 8,
    seed: int | None = None,
    progress: bool = True,
    prepared: bool = False,
    embedder: FaceEmbedder | None = None,
    sheet_path: PathLike | None = None,
    sheet_pairs: int = SHEET_PAIRS,
    lpips_weights: str | None = None,
    inception_weights: str | None = None,
    mean_face: MeanFace | None = None,
    mean_face_unavailable: str | None = None,
    baselines: bool = True,
    groups: Sequence[str] | None = None,
) -> EvalReport:
    """Generate a face for every sketch and score it against its real photo, beside baselines.

    Args:
        pipeline: a ``Sketch2Face`` (or anything with its ``__call__`` contract).
        sketch_paths, photo_paths: equally long lists; item i of each form a pair.
        refine: run the second stage too and score it under ``refined``. None (default): when
            the pipeline has a refiner (its ``refiner`` attribute is not None). True without a
            refiner, or False, leave ``refined`` None with the reason in ``refined_unavailable``.
        batch_size: pairs per pipeline call.
        seed: None (default) scores the canonical eval-mode face; an int scores seeded dropout
            variations, passed to the pipeline as ``seed + index of the batch's first pair``.
        prepared: inputs are already 256x256 aligned (manifest pairs); skip cropping.
        embedder: the FaceEmbedder to use (default: the process-wide one).
        sheet_path: write a comparison sheet (:func:`comparison_sheet`: sketch | stage one |
            refined | photo, the refined column only when faces were refined) of the first
            ``sheet_pairs`` pairs there.
        mean_face: the mean training face of the evaluated model (baseline ``mean_face``);
            None reports that baseline as unavailable with ``mean_face_unavailable`` as the reason.
        baselines: score the baselines too: stage one sharpened (:func:`.baselines.unsharp_mask`
            on each stage-one face, the trivial second stage), the sketch itself and the mean
            face.
        groups: one label per pair (e.g. its drawing style, :func:`styles_from_manifest`); the
            report then also gives every system's figures per group (``by_group``).
    """
    if len(sketch_paths) != len(photo_paths):
        raise ValueError(f"{len(sketch_paths)} sketches but {len(photo_paths)} photos; pass pairs")
    if groups is not None and len(groups) != len(sketch_paths):
        raise ValueError(f"{len(groups)} group labels for {len(sketch_paths)} pairs; pass one each")
    if not sketch_paths:
        raise DatasetError(
            "no pairs to evaluate; check the sketch/photo folders or the manifest split"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if mean_face is not None and mean_face.image.shape != (EVAL_SIZE_PX, EVAL_SIZE_PX, 3):
        raise ValueError(
            f"the mean face must be {EVAL_SIZE_PX}x{EVAL_SIZE_PX}x3, got {mean_face.image.shape}"
        )
    started = time.perf_counter()
    embedder = embedder or default_embedder()
    cropper = None
    if not prepared:
        from sketch2face.data.align import default_cropper

        cropper = default_cropper()

    refiner = getattr(pipeline, "refiner", None)
    run_refiner = refiner is not None if refine is None else refine
    # The sketches are already the 256x256 model inputs: ask the pipeline not to crop them again.
    call_kwargs: dict[str, Any] = (
        {"prepared": True} if _accepts_keyword(pipeline, "prepared") else {}
    )
    items: list[dict[str, Any]] = []
    item_groups: list[str] = []
    skipped: list[dict[str, str]] = []
    notices: list[str] = []
    real_embs: list[np.ndarray] = []
    real_found: list[bool] = []
    real_grid: list[float] = []
    real_features: list[np.ndarray] = []
    model = _SystemScores()
    refined_scores = _SystemScores()
    refined_fallbacks = 0
    sharpened_scores = _SystemScores()
    sketch_scores = _SystemScores()
    mean_scores = _SystemScores()
    mean_stats: tuple[np.ndarray, FaceEmbedding, float, np.ndarray] | None = None
    if baselines and mean_face is not None:
        mean_u8 = np.ascontiguousarray(mean_face.image, dtype=np.uint8)
        mean_stats = (
            mean_u8,
            embedder.embed(mean_u8),
            grid_energy_score(mean_u8),
            realism_features(mean_u8),
        )
    sheet_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]] = []
    pipeline_ms: dict[str, float] = {}
    prepare_s = generate_s = metrics_s = 0.0

    starts = range(0, len(sketch_paths), batch_size)
    for start in tqdm(starts, desc="evaluate", unit="batch", disable=not progress):
        t0 = time.perf_counter()
        batch: list[tuple[str, str, np.ndarray, np.ndarray]] = []
        batch_groups: list[str] = []
        for index, (sketch_path, photo_path) in enumerate(
            zip(
                sketch_paths[start : start + batch_size],
                photo_paths[start : start + batch_size],
                strict=True,
            ),
            start=start,
        ):
            try:
                sketch_u8, photo_u8 = _prepare_pair(sketch_path, photo_path, prepared, cropper)
            except InvalidImageError as exc:
                logger.warning("skipping pair %s / %s: %s", sketch_path, photo_path, exc)
                skipped.append(
                    {"sketch": str(sketch_path), "photo": str(photo_path), "reason": str(exc)}
                )
                continue
            batch.append((str(sketch_path), str(photo_path), sketch_u8, photo_u8))
            batch_groups.append(groups[index] if groups is not None else "")
        t1 = time.perf_counter()
        prepare_s += t1 - t0
        if not batch:
            continue
        result = pipeline(
            [b[2] for b in batch],
            refine=run_refiner,
            seed=None if seed is None else seed + start,
            batch_size=batch_size,
            **call_kwargs,
        )
        t2 = time.perf_counter()
        generate_s += t2 - t1
        for key, value in (getattr(result, "timings_ms", None) or {}).items():
            pipeline_ms[key] = pipeline_ms.get(key, 0.0) + float(value)
        for notice in getattr(result, "notices", None) or []:
            if notice not in notices:
                notices.append(notice)
        n = len(batch)
        refined_list = list(getattr(result, "refined", None) or [])
        inputs_list = list(getattr(result, "inputs", None) or [b[2] for b in batch])

        faces_u8 = [_to_size(np.asarray(result.faces[i]), EVAL_SIZE_PX) for i in range(n)]
        network_inputs = [
            _to_size(np.asarray(inputs_list[i]) if i < len(inputs_list) else b[2], EVAL_SIZE_PX)
            for i, b in enumerate(batch)
        ]
        # the second stage's faces at the evaluation size (GFPGAN's 512 area-downscaled)
        refined_u8: list[np.ndarray | None] = [
            _to_size(np.asarray(refined_list[i]), EVAL_SIZE_PX)
            if i < len(refined_list) and refined_list[i] is not None
            else None
            for i in range(n)
        ]
        refined_at = [i for i, r in enumerate(refined_u8) if r is not None]
        # the trivial second stage: stage one's own faces, sharpened (a baseline)
        sharpened_u8 = [unsharp_mask(f) for f in faces_u8] if baselines else []
        # where the second stage ran but fell back (None), the pair's refined row scores stage
        # one's face, the face the two-stage pipeline shows there, and counts it
        stage_two_ran = run_refiner and (refiner is not None or bool(refined_at))
        # one batched recogniser call for the photos, both stages' faces, the sharpened faces and
        # the sketches
        to_embed = (
            [b[3] for b in batch]
            + faces_u8
            + [refined_u8[i] for i in refined_at]
            + sharpened_u8
            + (network_inputs if baselines else [])
        )
        vectors, found = embedder.embed_many(to_embed)
        embedded = [FaceEmbedding(v, f) for v, f in zip(vectors, found, strict=True)]
        real_of, face_of = embedded[:n], embedded[n : 2 * n]
        after_refined = 2 * n + len(refined_at)
        refined_of = dict(zip(refined_at, embedded[2 * n : after_refined], strict=True))
        sharpened_of = embedded[after_refined : after_refined + len(sharpened_u8)]
        sketch_of = embedded[after_refined + len(sharpened_u8) :]
        for i, (sketch_name, photo_name, _sketch_u8, photo_u8) in enumerate(batch):
            face_u8 = faces_u8[i]
            real = real_of[i]
            real_embs.append(real.vector)
            real_found.append(real.face_found)
            real_grid.append(grid_energy_score(photo_u8))
            real_features.append(realism_features(photo_u8))
            gen = face_of[i]
            face_grid, face_features = grid_energy_score(face_u8), realism_features(face_u8)
            scores = model.add(face_u8, photo_u8, real.vector, gen, face_grid, face_features)
            item: dict[str, Any] = {
                "sketch": sketch_name,
                "photo": photo_name,
                **{k: v for k, v in scores.items() if k != "face_found"},
                "face_found_generated": gen.face_found,
                "face_found_real": real.face_found,
            }
            if groups is not None:
                item["group"] = batch_groups[i]
                item_groups.append(batch_groups[i])
            refined_face = refined_u8[i]
            if refined_face is not None:
                item["refined"] = refined_scores.add(
                    refined_face,
                    photo_u8,
                    real.vector,
                    refined_of[i],
                    grid_energy_score(refined_face),
                    realism_features(refined_face),
                )
            elif stage_two_ran:
                refined_face = face_u8
                item["refined"] = refined_scores.add(
                    face_u8, photo_u8, real.vector, gen, face_grid, face_features
                )
                item["refined_fell_back"] = True
                refined_fallbacks += 1
            network_input = network_inputs[i]
            if baselines:
                sharpened_face = sharpened_u8[i]
                item["baselines"] = {
                    "sharpened": sharpened_scores.add(
                        sharpened_face,
                        photo_u8,
                        real.vector,
                        sharpened_of[i],
                        grid_energy_score(sharpened_face),
                        realism_features(sharpened_face),
                    ),
                    "sketch": sketch_scores.add(
                        network_input,
                        photo_u8,
                        real.vector,
                        sketch_of[i],
                        grid_energy_score(network_input),
                        realism_features(network_input),
                    ),
                }
                if mean_stats is not None:
                    item["baselines"]["mean_face"] = mean_scores.add(
                        mean_stats[0], photo_u8, real.vector, *mean_stats[1:]
                    )
            items.append(item)
            if sheet_path is not None and len(sheet_rows) < sheet_pairs:
                sheet_rows.append((network_input, face_u8, refined_face, photo_u8))
        metrics_s += time.perf_counter() - t2

    if not items:
        raise DatasetError(
            f"none of the {len(sketch_paths)} pairs could be read; see the skipped list in the log"
        )

    real_embs_a = np.stack(real_embs)
    real_features_a = np.stack(real_features)

    def summarise(system: _SystemScores) -> dict[str, Any]:
        return system.summary(real_embs_a, real_grid, real_features_a)

    model_summary = summarise(model)
    refined_summary: dict[str, Any] | None = None
    refined_unavailable: str | None = None
    if refined_scores.rows:
        refined_summary = summarise(refined_scores)
        refined_summary["count"] = float(refined_summary["count"])  # historical type
        refined_summary["fell_back"] = refined_fallbacks
    else:
        refined_unavailable = refined_unavailable_reason(pipeline, refine, notices)

    baseline_report: dict[str, dict[str, Any]] = {}
    if not baselines:
        reason = "baselines were not requested"
        baseline_report = {
            "sharpened": {"available": False, "reason": reason},
            "mean_face": {"available": False, "reason": reason},
            "sketch": {"available": False, "reason": reason},
        }
    else:
        baseline_report["sharpened"] = {
            "available": True,
            "source": SHARPENED_SOURCE,
            "sigma_px": SHARPEN_SIGMA_PX,
            "amount": SHARPEN_AMOUNT,
            **summarise(sharpened_scores),
        }
        if mean_face is not None:
            baseline_report["mean_face"] = {
                "available": True,
                "source": mean_face.source,
                **summarise(mean_scores),
            }
        else:
            baseline_report["mean_face"] = {
                "available": False,
                "reason": mean_face_unavailable
                or "no mean training face was given to evaluate_pairs (mean_face=None)",
            }
        baseline_report["sketch"] = {
            "available": True,
            "source": "the prepared 256x256 sketch the network saw, scored like a generated face",
            **summarise(sketch_scores),
        }

    if sheet_path is not None and sheet_rows:
        save_png(comparison_sheet(sheet_rows, refined=refined_summary is not None), sheet_path)
    by_group = (
        _group_figures(
            item_groups,
            {
                "model": model,
                "refined": refined_scores,
                "sharpened": sharpened_scores,
                "sketch": sketch_scores,
                "mean_face": mean_scores,
            },
        )
        if groups is not None
        else {}
    )

    count = len(items)
    total_s = time.perf_counter() - started
    timing = {
        "total_s": total_s,
        "prepare_s": prepare_s,
        "generate_s": generate_s,
        "metrics_s": metrics_s,
        "generate_ms_per_image": 1000 * generate_s / count,
        **{f"pipeline_{k}_ms_per_image": v / count for k, v in pipeline_ms.items()},
    }
    return EvalReport(
        count=count,
        ssim=model_summary["ssim"],
        ssim_gray=model_summary["ssim_gray"],
        psnr=model_summary["psnr"],
        identity_similarity=model_summary["identity_similarity"],
        identity_distance=model_summary["identity_distance"],
        identity_match_rate=model_summary["identity_match_rate"],
        rank1=model_summary["rank1"],
        rank1_chance=1.0 / count,
        face_found_rate={
            "generated": model_summary["face_found_rate"],
            "real": _mean([float(f) for f in real_found]),
        },
        refined=refined_summary,
        lpips=None,
        fid=None,
        unavailable={
            "lpips": lpips_unavailable_reason(lpips_weights),
            "fid": fid_unavailable_reason(inception_weights),
        },
        timing=timing,
        model_version=str(getattr(pipeline, "model_version", "unknown")),
        refine=refined_summary is not None,
        seed=seed,
        rank5=model_summary["rank5"],
        rank5_chance=min(1.0, 5.0 / count),
        rank1_fallback=model_summary["rank1_fallback"],
        rank5_fallback=model_summary["rank5_fallback"],
        faces_found={"generated": model_summary["faces_found"], "real": int(sum(real_found))},
        grid_artifact_ratio=model_summary["grid_artifact_ratio"],
        realism_accuracy=model_summary["realism_accuracy"],
        realism_distance=model_summary["realism_distance"],
        ssim_face=model_summary["ssim_face"],
        ssim_rest=model_summary["ssim_rest"],
        drawn_lines=model_summary["drawn_lines"],
        baselines=baseline_report,
        by_group=by_group,
        skipped=skipped,
        notices=notices,
        items=items,
        refiner=(
            refiner_name(refiner) if refined_summary is not None and refiner is not None else None
        ),
        refined_unavailable=refined_unavailable,
        stage_comparison=(
            compare_stages(
                model_summary,
                refined_summary,
                baseline_report.get("sketch"),
                baseline_report.get("sharpened"),
            )
            if refined_summary is not None
            else None
        ),
    )


def refiner_name(refiner: Any) -> str:
    """A refiner's name for the report and the CLI: its ``version`` (a trained refiner's model
    version), else its ``name``, else its class name."""
    return str(
        getattr(refiner, "version", None)
        or getattr(refiner, "name", None)
        or type(refiner).__name__
    )


def refined_unavailable_reason(
    pipeline: Pipeline, refine: bool | None = None, notices: Sequence[str] = ()
) -> str:
    """Why no refined face was (or will be) scored, as the refined row shows it.

    ``refine`` False: turned off (:data:`REFINE_OFF_REASON`). Otherwise the first of the
    pipeline's ``notices`` that mentions refinement, else its ``refiner_notice`` (why it has no
    refiner), else :data:`NO_REFINER_REASON`.
    """
    if refine is False:
        return REFINE_OFF_REASON
    said = [notice for notice in notices if "refine" in notice.lower()]
    return said[0] if said else getattr(pipeline, "refiner_notice", None) or NO_REFINER_REASON


def comparison_sheet(
    rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]],
    *,
    refined: bool,
) -> np.ndarray:
    """The comparison sheet: a header row naming the columns over one row of images per pair.

    Args:
        rows: (sketch, stage-one face, refined face or None, photo) per pair, uint8 RGB; each is
            shown in a :data:`SHEET_CELL_PX` cell (resized when it is not that size).
        refined: include the refined column (:data:`SHEET_COLUMNS`); a pair without a refined
            face gets a white cell there.

    Returns:
        A uint8 RGB image: :data:`SHEET_HEADER_PX` of column names over a
        :func:`sketch2face.imaging.make_grid` grid.
    """
    if not rows:
        raise ValueError("a comparison sheet needs at least one pair")
    columns = [name for name in SHEET_COLUMNS if refined or name != REFINED_LABEL]
    cells: list[list[np.ndarray]] = []
    for sketch_u8, face_u8, refined_u8, photo_u8 in rows:
        row = [sketch_u8, face_u8]
        if refined:
            row.append(refined_u8 if refined_u8 is not None else np.full_like(face_u8, 255))
        cells.append([*row, photo_u8])
    grid = make_grid(cells, cell_px=SHEET_CELL_PX, pad_px=SHEET_PAD_PX)
    header = Image.new("RGB", (grid.shape[1], SHEET_HEADER_PX), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for c, name in enumerate(columns):
        centre_x = SHEET_PAD_PX + c * (SHEET_CELL_PX + SHEET_PAD_PX) + SHEET_CELL_PX / 2
        draw.text(
            (centre_x, SHEET_HEADER_PX / 2 + SHEET_PAD_PX / 2),
            name,
            fill=(20, 20, 20),
            anchor="mm",
            font_size=SHEET_HEADER_FONT_PX,
        )
    return np.vstack([np.asarray(header), grid])
