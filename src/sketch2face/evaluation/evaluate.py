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
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from tqdm import tqdm

from sketch2face.errors import DatasetError, InvalidImageError
from sketch2face.evaluation.metrics import (
    DLIB_SAME_PERSON_DISTANCE,
    SSIM_METHOD,
    FaceEmbedder,
    default_embedder,
    fid_unavailable_reason,
    identity_distance,
    identity_similarity,
    lpips_unavailable_reason,
    psnr,
    rank1,
    ssim,
    ssim_gray,
)
from sketch2face.imaging import atomic_write_bytes, load_image, make_grid, save_png

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
EVAL_SIZE_PX = 256
#: Rows in the comparison sheet by default.
SHEET_PAIRS = 8

PathLike = str | os.PathLike[str]


class Pipeline(Protocol):
    """What evaluation needs from ``Sketch2Face`` (docs/ARCHITECTURE.md, pipeline contract)."""

    def __call__(
        self, sketches: Any, *, refine: bool = ..., seed: int | None = ..., batch_size: int = ...
    ) -> Any:
        """Return a GenerationResult (``inputs``, ``faces``, ``refined``, ``timings_ms``, ...)."""
        ...


# --- pairing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StemPairs:
    """(sketch, photo) pairs matched by file stem, plus the unmatched files; iterates as pairs."""

    pairs: list[tuple[Path, Path]]
    unmatched_sketches: list[Path] = field(default_factory=list)
    unmatched_photos: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[tuple[Path, Path]]:
        return iter(self.pairs)

    def __getitem__(self, index: int) -> tuple[Path, Path]:
        return self.pairs[index]


def _images_by_stem(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{role} folder {folder} does not exist or is not a folder.")
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if (
            not path.is_file()
            or path.suffix.lower() not in IMAGE_EXTENSIONS
            or path.name.startswith(".")
        ):
            continue
        if path.stem in by_stem:
            raise DatasetError(
                f"{role} folder {folder} has two images with stem {path.stem!r} "
                f"({by_stem[path.stem].name}, {path.name}); keep one so pairs are unambiguous."
            )
        by_stem[path.stem] = path
    return by_stem


def pair_by_stem(sketch_dir: PathLike, photo_dir: PathLike) -> StemPairs:
    """Pair ``sketch_dir/X.*`` with ``photo_dir/X.*`` (same file stem), sorted by stem.

    Raises DatasetError when a folder is missing, a stem is ambiguous, or nothing pairs up.
    """
    sketches = _images_by_stem(Path(sketch_dir), "sketch")
    photos = _images_by_stem(Path(photo_dir), "photo")
    common = sorted(sketches.keys() & photos.keys())
    if not common:
        raise DatasetError(
            f"no sketch in {sketch_dir} ({len(sketches)} images) has a photo with the same file "
            f"stem in {photo_dir} ({len(photos)} images); name each pair alike "
            "(e.g. 0001.png / 0001.jpg)."
        )
    return StemPairs(
        pairs=[(sketches[s], photos[s]) for s in common],
        unmatched_sketches=[sketches[s] for s in sorted(sketches.keys() - photos.keys())],
        unmatched_photos=[photos[s] for s in sorted(photos.keys() - sketches.keys())],
    )


def pairs_from_manifest(
    dataset_dir: PathLike, split: str = "test", source: str | None = None
) -> list[tuple[Path, Path]]:
    """(sketch, photo) absolute paths of one split (optionally one source, e.g. ``fs2k``) of a
    prepared dataset's ``manifest.jsonl``."""
    from sketch2face.data.manifest import read_manifest

    root = Path(dataset_dir)
    rows = read_manifest(root)
    pairs = [
        (root / r.sketch, root / r.photo)
        for r in rows
        if r.split == split and (source is None or r.source == source)
    ]
    if not pairs:
        found = sorted({(r.split, r.source) for r in rows})
        raise DatasetError(
            f"{root}: the manifest has no {split!r} pairs of source {source or 'any'!r} "
            f"(present: {found})."
        )
    return pairs


# --- report ----------------------------------------------------------------------------------


@dataclass
class EvalReport:
    """Mean metrics over the evaluated pairs (JSON via :meth:`to_json`)."""

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
    refined: dict[str, float] | None
    lpips: float | None
    fid: float | None
    unavailable: dict[str, str]
    timing: dict[str, float]
    model_version: str
    refine: bool
    seed: int | None
    ssim_method: str = SSIM_METHOD
    identity_method: str = (
        "dlib ResNet 128-D descriptor; identity_similarity = cosine, identity_match_rate = "
        f"fraction with euclidean distance < {DLIB_SAME_PERSON_DISTANCE}; rank1 = nearest real "
        "photo "
        "in the evaluated set is the pair's own"
    )
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

    def summary_table(self) -> str:
        """A readable fixed-width table of the headline metrics."""
        rows: list[tuple[str, str, str]] = []

        def fmt(value: float | None, digits: int = 4) -> str:
            return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"

        refined = self.refined or {}
        for key, label, digits in (
            ("ssim", "SSIM (RGB)", 4),
            ("ssim_gray", "SSIM (gray)", 4),
            ("psnr", "PSNR dB", 2),
            ("identity_similarity", "identity cosine", 4),
            ("identity_distance", "identity distance", 4),
            ("identity_match_rate", "identity match <0.6", 4),
            ("rank1", "rank-1", 4),
        ):
            rows.append(
                (
                    label,
                    fmt(getattr(self, key), digits),
                    fmt(refined.get(key), digits) if self.refined else "",
                )
            )
        rows.append(("LPIPS", fmt(self.lpips), ""))
        rows.append(("FID", fmt(self.fid, 2), ""))
        header = ("metric", "generated", "refined" if self.refined else "")
        width = max(len(r[0]) for r in [header, *rows])
        lines = [
            f"{self.count} pairs, model {self.model_version}, "
            f"rank-1 chance {fmt(self.rank1_chance)}"
        ]
        lines.append(f"{header[0]:<{width}}  {header[1]:>10}  {header[2]:>10}".rstrip())
        lines += [f"{a:<{width}}  {b:>10}  {c:>10}".rstrip() for a, b, c in rows]
        for metric, reason in self.unavailable.items():
            lines.append(f"{metric}: unavailable ({reason})")
        return "\n".join(lines)


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
) -> EvalReport:
    """Generate a face for every sketch and score it against its real photo.

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
    """
    if len(sketch_paths) != len(photo_paths):
        raise ValueError(f"{len(sketch_paths)} sketches but {len(photo_paths)} photos; pass pairs")
    if not sketch_paths:
        raise DatasetError(
            "no pairs to evaluate; check the sketch/photo folders or the manifest split"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
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
    skipped: list[dict[str, str]] = []
    notices: list[str] = []
    gen_embs: list[np.ndarray] = []
    real_embs: list[np.ndarray] = []
    refined_embs: list[np.ndarray] = []
    sheet_rows: list[list[np.ndarray]] = []
    pipeline_ms: dict[str, float] = {}
    prepare_s = generate_s = metrics_s = 0.0

    starts = range(0, len(sketch_paths), batch_size)
    for start in tqdm(starts, desc="evaluate", unit="batch", disable=not progress):
        t0 = time.perf_counter()
        batch: list[tuple[str, str, np.ndarray, np.ndarray]] = []
        for sketch_path, photo_path in zip(
            sketch_paths[start : start + batch_size],
            photo_paths[start : start + batch_size],
            strict=True,
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

        for i, (sketch_name, photo_name, sketch_u8, photo_u8) in enumerate(batch):
            face_u8 = _to_size(np.asarray(result.faces[i]), EVAL_SIZE_PX)
            gen = embedder.embed(face_u8)
            real = embedder.embed(photo_u8)
            gen_embs.append(gen.vector)
            real_embs.append(real.vector)
            item: dict[str, Any] = {
                "sketch": sketch_name,
                "photo": photo_name,
                "ssim": ssim(face_u8, photo_u8),
                "ssim_gray": ssim_gray(face_u8, photo_u8),
                "psnr": psnr(face_u8, photo_u8),
                "identity_similarity": identity_similarity(gen.vector, real.vector),
                "identity_distance": identity_distance(gen.vector, real.vector),
                "face_found_generated": gen.face_found,
                "face_found_real": real.face_found,
            }
            refined_u8 = refined_list[i] if i < len(refined_list) else None
            if refined_u8 is not None:
                refined_small = cv2.resize(
                    np.asarray(refined_u8),
                    (EVAL_SIZE_PX, EVAL_SIZE_PX),
                    interpolation=cv2.INTER_AREA,
                )
                ref = embedder.embed(refined_small)
                refined_embs.append(ref.vector)
                item["refined"] = {
                    "ssim": ssim(refined_small, photo_u8),
                    "ssim_gray": ssim_gray(refined_small, photo_u8),
                    "psnr": psnr(refined_small, photo_u8),
                    "identity_similarity": identity_similarity(ref.vector, real.vector),
                    "identity_distance": identity_distance(ref.vector, real.vector),
                    "face_found": ref.face_found,
                }
            items.append(item)
            if sheet_path is not None and len(sheet_rows) < sheet_pairs:
                row = [np.asarray(inputs_list[i]) if i < len(inputs_list) else sketch_u8, face_u8]
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

    def mean_of(key: str, rows: list[dict[str, Any]]) -> float:
        return _mean([r[key] for r in rows])

    distances = [r["identity_distance"] for r in items]
    refined_items = [r["refined"] for r in items if "refined" in r]
    refined_summary: dict[str, float] | None = None
    if refined_items:
        ref_dist = [r["identity_distance"] for r in refined_items]
        refined_summary = {
            "count": float(len(refined_items)),
            **{
                k: mean_of(k, refined_items)
                for k in ("ssim", "ssim_gray", "psnr", "identity_similarity", "identity_distance")
            },
            "identity_match_rate": _mean([float(d < DLIB_SAME_PERSON_DISTANCE) for d in ref_dist]),
            "rank1": rank1(np.stack(refined_embs), np.stack(real_embs))
            if len(refined_embs) == len(real_embs)
            else float("nan"),
            "face_found_rate": _mean([float(r["face_found"]) for r in refined_items]),
        }

    if sheet_path is not None and sheet_rows:
        save_png(make_grid(sheet_rows), sheet_path)

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
        ssim=mean_of("ssim", items),
        ssim_gray=mean_of("ssim_gray", items),
        psnr=mean_of("psnr", items),
        identity_similarity=mean_of("identity_similarity", items),
        identity_distance=_mean(distances),
        identity_match_rate=_mean([float(d < DLIB_SAME_PERSON_DISTANCE) for d in distances]),
        rank1=rank1(np.stack(gen_embs), np.stack(real_embs)),
        rank1_chance=1.0 / count,
        face_found_rate={
            "generated": _mean([float(r["face_found_generated"]) for r in items]),
            "real": _mean([float(r["face_found_real"]) for r in items]),
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
        skipped=skipped,
        notices=notices,
        items=items,
    )
