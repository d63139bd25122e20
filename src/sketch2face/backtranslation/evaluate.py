"""How artist-like and how faithful a photo -> sketch model's drawings are (issue 21).

On held-out FS2K pairs (photo, artist sketch, style), each system draws every photo:

- **artist-likeness**: realism FD and two-sample accuracy
  (:mod:`sketch2face.evaluation.realism`) of the drawings in style *s* against real FS2K sketches
  of style *s* drawn for *other* people (the reference split), so a system is not rewarded for
  matching the held-out sketch pixel by pixel; lower is more artist-like;
- **faithfulness**: dlib rank-1 / rank-5 of each drawing among the held-out photos (the drawing
  is the query, the photos the gallery; a drawing without a detected face is a miss);
- **SSIM** against the artist's own sketch where the style is the one the artist used.

Baselines beside the model: the OpenCV pencil and line sketches of the same photos, and the
artist's real sketch (its own style only: the ceiling for artist-likeness).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sketch2face.backtranslation.sketcher import PhotoSketcher
from sketch2face.data.artist_styles import ARTIST_STYLES
from sketch2face.data.dataset import load_split_u8
from sketch2face.data.manifest import read_manifest
from sketch2face.data.sketchify import synthesize_sketch
from sketch2face.errors import DatasetError
from sketch2face.evaluation.metrics import default_embedder, rank_k, ssim_gray
from sketch2face.evaluation.realism import realism_accuracy, realism_distance
from sketch2face.imaging import make_grid, save_png

log = logging.getLogger(__name__)

#: the OpenCV sketch styles scored as baselines
OPENCV_BASELINES = ("pencil", "line")


@dataclass
class SketcherReport:
    """Per style, per system: ``realism_fd``, ``realism_accuracy``, ``rank1``, ``rank5``, ``ssim``."""

    checkpoint: str
    split: str
    pairs_per_style: dict[str, int]
    rows: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "checkpoint": self.checkpoint,
            "split": self.split,
            "pairs_per_style": self.pairs_per_style,
            "systems": self.rows,
        }

    def table(self) -> str:
        """A Markdown table: one row per (style, system)."""
        lines = [
            "| style | system | realism FD (lower = more artist-like) | realism acc | "
            "rank-1 | rank-5 | SSIM to the artist's |",
            "|---|---|---|---|---|---|---|",
        ]
        for style, systems in self.rows.items():
            for name, f in systems.items():
                lines.append(
                    f"| {style} ({self.pairs_per_style[style]}) | {name} | "
                    + " | ".join(
                        _fmt(f.get(k))
                        for k in ("realism_fd", "realism_accuracy", "rank1", "rank5", "ssim")
                    )
                    + " |"
                )
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _fs2k_rows(dataset_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Photos, sketches and styles of the real FS2K pairs of ``split``."""
    arrays = load_split_u8(dataset_dir, split)
    by_id = {r.id: r for r in read_manifest(dataset_dir) if r.split == split}
    keep = [i for i, row_id in enumerate(arrays.ids) if by_id[row_id].source == "fs2k"]
    if not keep:
        raise DatasetError(f"{dataset_dir} has no FS2K pairs in its {split!r} split.")
    styles = [by_id[arrays.ids[i]].style for i in keep]
    return np.asarray(arrays.photos[keep]), np.asarray(arrays.sketches[keep]), styles


def evaluate_sketcher(
    sketcher: PhotoSketcher,
    dataset_dir: str | Path,
    *,
    split: str = "val",
    reference_split: str = "train",
    sheet_path: str | Path | None = None,
    sheet_rows: int = 6,
) -> SketcherReport:
    """Score the sketcher and the baselines on ``split``'s FS2K pairs (see the module text)."""
    root = Path(dataset_dir)
    photos, sketches, styles = _fs2k_rows(root, split)
    _, reference_sketches, reference_styles = _fs2k_rows(root, reference_split)
    embedder = default_embedder()
    photo_vectors, found = embedder.embed_many(list(photos))
    photo_found = np.array(found)
    drawn = {style: sketcher.sketch(photos, style) for style in ARTIST_STYLES}
    opencv = {s: np.stack([synthesize_sketch(p, s) for p in photos]) for s in OPENCV_BASELINES}
    embedded: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def faithfulness(name: str, images: np.ndarray, own: np.ndarray) -> dict[str, float]:
        """rank-1 / rank-5 of the drawings of this style's photos among those photos."""
        if name not in embedded:
            vectors, found = embedder.embed_many(list(images))
            embedded[name] = (vectors, np.array(found))
        vectors, found = embedded[name]
        if len(vectors) != len(photos):  # the artist's sketches exist for their own style only
            vectors, found = _expand(vectors, found, own)
        hits = list(found[own] & photo_found[own])
        return {
            "rank1": rank_k(vectors[own], photo_vectors[own], 1, face_found=hits),
            "rank5": rank_k(vectors[own], photo_vectors[own], 5, face_found=hits),
        }

    report = SketcherReport(
        str(sketcher.path), split, {s: styles.count(s) for s in ARTIST_STYLES if s in styles}
    )
    for style in report.pairs_per_style:
        own = np.array([s == style for s in styles])
        reference = [img for img, s in zip(reference_sketches, reference_styles) if s == style]
        systems: dict[str, np.ndarray] = {
            "model": drawn[style],
            **{f"OpenCV {s}": opencv[s] for s in OPENCV_BASELINES},
            "artist's sketch": sketches[own],
        }
        out: dict[str, dict[str, float]] = {}
        for name, images in systems.items():
            mine = images if len(images) == own.sum() else images[own]
            key = f"{name}/{style}" if name in ("model", "artist's sketch") else name
            out[name] = {
                "realism_fd": realism_distance(list(mine), reference),
                "realism_accuracy": realism_accuracy(list(mine), reference),
                **faithfulness(key, images, own),
                "ssim": float(np.mean([ssim_gray(a, b) for a, b in zip(mine, sketches[own])])),
            }
        report.rows[style] = out
    if sheet_path is not None:
        pick = np.linspace(0, len(photos) - 1, min(sheet_rows, len(photos))).astype(int)
        grid = [
            [photos[i], opencv["pencil"][i], *(drawn[s][i] for s in ARTIST_STYLES), sketches[i]]
            for i in pick
        ]
        save_png(make_grid(grid, cell_px=192), sheet_path)
    return report


def _expand(
    vectors: np.ndarray, found: np.ndarray, own: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Place one style's rows back at their positions among all pairs (others: not found)."""
    full = np.zeros((len(own), vectors.shape[1]), vectors.dtype)
    full_found = np.zeros(len(own), bool)
    full[own], full_found[own] = vectors, found
    return full, full_found


def write_report(report: SketcherReport, path: str | Path) -> Path:
    """Save the report as JSON."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return target
