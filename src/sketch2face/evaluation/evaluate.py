"""Evaluate a sketch->face pipeline on (sketch, real photo) pairs: EvalReport + comparison sheet.

Each real photo is prepared exactly like a training photo before it is compared: raw pairs go
through :func:`sketch2face.data.prepare.build_pair` (the function ``sketch2face prepare`` uses: one
dlib crop box for a same-sized sketch/photo pair, else each cropped on its own, 256x256), so the
sketch fed to the pipeline and the photo it is scored against share the training crop. Manifest
pairs (``prepared=True``) are already 256x256 and aligned, and are used as they are. Either way
the pipeline gets 256x256 model inputs and is called with ``prepared=True`` (when its signature
has that keyword) so it does not crop them a second time. A photo that is still not 256x256
(a manifest built at another size) is centre-square cropped and resized to 256 (area/bicubic).

The generated 256x256 face is scored against the 256x256 photo. A refined 512x512 face is scored
separately (under ``refined``) after an area downscale to 256, so both rows compare like with like.

Every system is also scored against two trivial baselines on the same pairs, so a number can be
read against "no model at all" (``EvalReport.baselines``, see :mod:`.baselines`): the **mean
training face** (one constant image) and the **sketch itself** (the prepared 256x256 network input,
scored exactly like a generated face). For each system the report gives SSIM, PSNR, identity,
rank-1/rank-5 (an image without a detected face counts as a miss), the number of faces the
recogniser found, the grid-artefact ratio and the realism accuracy (:mod:`.realism`).
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
from tqdm import tqdm

from sketch2face.errors import DatasetError, InvalidImageError
from sketch2face.evaluation.baselines import MeanFace
from sketch2face.evaluation.metrics import (
    DLIB_SAME_PERSON_DISTANCE,
    SSIM_METHOD,
    FaceEmbedder,
    FaceEmbedding,
    default_embedder,
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
from sketch2face.imaging import atomic_write_bytes, load_image, make_grid, save_png

logger = logging.getLogger(__name__)

EVAL_SIZE_PX = 256
#: Rows in the comparison sheet by default.
SHEET_PAIRS = 8
#: The k of the rank-k identification rates reported for every system.
RANKS = (1, 5)
#: Baseline keys in ``EvalReport.baselines`` and their labels in the summary table.
BASELINE_LABELS = {"mean_face": "mean face", "sketch": "sketch itself"}
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

    The model's figures stay top-level (``ssim``, ``rank1``, ...); ``baselines`` holds the same
    figures for ``mean_face`` (the mean training photo) and ``sketch`` (the network's input), each
    with ``available`` and a ``source`` or ``reason``.
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
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: figures per group of pairs (e.g. drawing style): {group: {system key: figures}}, ranks
    #: still among *all* evaluated photos, so a group's rank-1 reads like the overall one
    by_group: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    ssim_method: str = SSIM_METHOD
    identity_method: str = IDENTITY_METHOD
    grid_method: str = GRID_METHOD
    realism_method: str = REALISM_METHOD
    unmatched: dict[str, int] = field(default_factory=lambda: {"sketches": 0, "photos": 0})
    skipped: list[dict[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

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
        }

    def systems(self) -> list[tuple[str, dict[str, Any]]]:
        """(label, figures) per system in table order: model, refined, mean face, sketch."""
        rows = [("model", self.model_summary())]
        if self.refined:
            rows.append(("model + refiner", {"available": True, **self.refined}))
        for key, label in BASELINE_LABELS.items():
            if key in self.baselines:
                rows.append((label, self.baselines[key]))
        return rows

    def summary_table(self) -> str:
        """A fixed-width table, one row per system (model, refined, mean face, sketch itself)."""

        def fmt(value: Any, digits: int) -> str:
            if value is None or not math.isfinite(float(value)):
                return "n/a"
            return f"{value:.{digits}f}"

        systems = self.systems()
        header = ["system", *(label for _, label, _ in TABLE_COLUMNS)]
        body: list[list[str]] = []
        for label, figures in systems:
            if not figures.get("available", True):
                body.append([label, "unavailable (see below)"])
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
        ]
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
        """One line per group: the model's SSIM / rank-1 / match rate beside the baselines'."""
        if not self.by_group:
            return []
        lines = ["by group (SSIM | rank-1 | match < 0.6), model vs mean face vs sketch itself:"]
        for group, systems in sorted(self.by_group.items()):
            cells = []
            for key in ("model", "mean_face", "sketch"):
                f = systems.get(key)
                if f is not None:
                    cells.append(
                        f"{key.replace('_', ' ')} {f['ssim']:.3f} | "
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
    refine: bool = False,
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
        refine: also request GFPGAN refinement and score it under ``refined``.
        batch_size: pairs per pipeline call.
        seed: None (default) scores the canonical eval-mode face; an int scores seeded dropout
            variations, passed to the pipeline as ``seed + index of the batch's first pair``.
        prepared: inputs are already 256x256 aligned (manifest pairs); skip cropping.
        embedder: the FaceEmbedder to use (default: the process-wide one).
        sheet_path: write a comparison sheet (sketch | generated | refined | real) of the first
            ``sheet_pairs`` pairs there.
        mean_face: the mean training face of the evaluated model (baseline ``mean_face``);
            None reports that baseline as unavailable with ``mean_face_unavailable`` as the reason.
        baselines: score the baselines (the mean face and the sketch itself) too.
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
    sheet_rows: list[list[np.ndarray]] = []
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
            refine=refine,
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
        refined_list = list(getattr(result, "refined", None) or [None] * len(batch))
        inputs_list = list(getattr(result, "inputs", None) or [b[2] for b in batch])

        faces_u8 = [_to_size(np.asarray(result.faces[i]), EVAL_SIZE_PX) for i in range(len(batch))]
        network_inputs = [
            _to_size(np.asarray(inputs_list[i]) if i < len(inputs_list) else b[2], EVAL_SIZE_PX)
            for i, b in enumerate(batch)
        ]
        # one batched recogniser call for the photos, the faces and the sketches of this batch
        to_embed = [b[3] for b in batch] + faces_u8 + (network_inputs if baselines else [])
        vectors, found = embedder.embed_many(to_embed)
        embedded = [FaceEmbedding(v, f) for v, f in zip(vectors, found)]
        n = len(batch)
        for i, (sketch_name, photo_name, _sketch_u8, photo_u8) in enumerate(batch):
            face_u8 = faces_u8[i]
            real = embedded[i]
            real_embs.append(real.vector)
            real_found.append(real.face_found)
            real_grid.append(grid_energy_score(photo_u8))
            real_features.append(realism_features(photo_u8))
            gen = embedded[n + i]
            scores = model.add(
                face_u8,
                photo_u8,
                real.vector,
                gen,
                grid_energy_score(face_u8),
                realism_features(face_u8),
            )
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
            refined_u8 = refined_list[i] if i < len(refined_list) else None
            if refined_u8 is not None:
                refined_small = cv2.resize(
                    np.asarray(refined_u8),
                    (EVAL_SIZE_PX, EVAL_SIZE_PX),
                    interpolation=cv2.INTER_AREA,
                )
                item["refined"] = refined_scores.add(
                    refined_small,
                    photo_u8,
                    real.vector,
                    embedder.embed(refined_small),
                    grid_energy_score(refined_small),
                    realism_features(refined_small),
                )
            network_input = network_inputs[i]
            if baselines:
                item["baselines"] = {
                    "sketch": sketch_scores.add(
                        network_input,
                        photo_u8,
                        real.vector,
                        embedded[2 * n + i],
                        grid_energy_score(network_input),
                        realism_features(network_input),
                    )
                }
                if mean_stats is not None:
                    item["baselines"]["mean_face"] = mean_scores.add(
                        mean_stats[0], photo_u8, real.vector, *mean_stats[1:]
                    )
            items.append(item)
            if sheet_path is not None and len(sheet_rows) < sheet_pairs:
                row = [network_input, face_u8]
                if refine:
                    row.append(
                        np.asarray(refined_u8)
                        if refined_u8 is not None
                        else np.full_like(face_u8, 255)
                    )
                row.append(photo_u8)
                sheet_rows.append(row)
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
    if refined_scores.rows:
        refined_summary = summarise(refined_scores)
        refined_summary["count"] = float(refined_summary["count"])  # historical type

    baseline_report: dict[str, dict[str, Any]] = {}
    if not baselines:
        reason = "baselines were not requested"
        baseline_report = {
            "mean_face": {"available": False, "reason": reason},
            "sketch": {"available": False, "reason": reason},
        }
    else:
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
        save_png(make_grid(sheet_rows), sheet_path)
    by_group = (
        _group_figures(
            item_groups, {"model": model, "mean_face": mean_scores, "sketch": sketch_scores}
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
        refine=refine,
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
        baselines=baseline_report,
        by_group=by_group,
        skipped=skipped,
        notices=notices,
        items=items,
    )
