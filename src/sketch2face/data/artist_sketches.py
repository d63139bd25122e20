"""Artist-style sketches for face photos (back-translation, issue 21).

A photo -> sketch model (:class:`sketch2face.backtranslation.sketcher.PhotoSketcher`, trained on
FS2K's artist pairs) draws the *training* photos of a prepared dataset in FS2K's drawing styles:
every photo-folder photo (CelebA) in ``per_photo`` hashed styles, and every FS2K photo in the
styles its artist did not use. Each drawing becomes a manifest row of its own that shares the
photo file of the row it came from:

- ``source``: the origin's source + ``_artist`` (``celeba_artist``, ``fs2k_artist``), so training
  configs choose the mix with ``data.sources`` / ``data.oversample``;
- ``style``: the artist style drawn (``fs2k_style0..2``), so ``data.exclude_styles`` also drops a
  held-out style's synthetic sketches;
- ``attributes``: the origin's, plus ``synthetic: true``, ``sketcher`` (which model, by file name,
  step and sha256 prefix) and ``from`` (the origin row's id).

Validation and test splits are never given synthetic sketches: models are selected on real ones.
Drawings are cached as PNG files under ``sketches/artist/<model>/``; a rerun with the same model
reuses them, so an interrupted pass resumes where it stopped; another model draws afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from sketch2face.data.artist_styles import ARTIST_STYLES
from sketch2face.data.manifest import (
    MANIFEST_NAME,
    SUMMARY_NAME,
    ManifestRow,
    hash_fraction,
    read_manifest,
    write_manifest,
)
from sketch2face.data.sketchify import SKETCH_STYLES
from sketch2face.errors import DatasetError
from sketch2face.imaging import load_image, save_png

log = logging.getLogger(__name__)

ARTIST_DIR = "sketches/artist"
ARTIST_SUFFIX = "_artist"


class Sketcher(Protocol):
    """What drawing needs of a photo -> sketch model (PhotoSketcher is one)."""

    model_id: str

    def sketch(self, photos_u8: np.ndarray, style: str, *, batch_size: int = 8) -> np.ndarray:
        """(N, 256, 256, 3) uint8 photos -> grey sketches of the same shape."""
        ...


def is_synthetic_artist(row: ManifestRow) -> bool:
    """Whether a row's sketch was drawn by a photo -> sketch model."""
    return row.source.endswith(ARTIST_SUFFIX)


def styles_for(row: ManifestRow, per_photo: int) -> list[str]:
    """The artist styles to draw ``row``'s photo in: an FS2K photo in the styles its artist did not
    use, a photo-folder photo in ``per_photo`` styles picked by a hash of its id (stable)."""
    if row.source == "fs2k":
        return [s for s in ARTIST_STYLES if s != row.style]
    if row.style in SKETCH_STYLES:  # a photo-folder row (its sketch was made by OpenCV)
        order = sorted(ARTIST_STYLES, key=lambda s: hash_fraction(f"artist:{row.id}:{s}"))
        return order[: max(0, min(per_photo, len(order)))]
    return []


def artist_folder(sketcher_id: str) -> str:
    """Where one model's drawings are cached: a folder per model, so a new or retrained model never
    reuses another's drawings, while a rerun of the same model reuses its own."""
    return f"{ARTIST_DIR}/{hashlib.sha256(sketcher_id.encode('utf-8')).hexdigest()[:12]}"


def plan_artist_rows(
    rows: Sequence[ManifestRow], sketcher_id: str, per_photo: int = 1
) -> list[ManifestRow]:
    """The synthetic rows to add for the training rows among ``rows`` (none drawn yet)."""
    planned: list[ManifestRow] = []
    for row in rows:
        if row.split != "train" or is_synthetic_artist(row):
            continue
        for style in styles_for(row, per_photo):
            row_id = f"{row.id}-{style}"
            folder = artist_folder(sketcher_id)
            planned.append(
                ManifestRow(
                    id=row_id,
                    source=row.source + ARTIST_SUFFIX,
                    style=style,
                    split=row.split,
                    sketch=f"{folder}/{row_id}.png",
                    photo=row.photo,
                    attributes={
                        **row.attributes,
                        "synthetic": True,
                        "sketcher": sketcher_id,
                        "from": row.id,
                    },
                    face_found=row.face_found,
                )
            )
    return planned


def draw_artist_rows(
    dataset_dir: Path,
    planned: Sequence[ManifestRow],
    sketcher: Sketcher,
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> None:
    """Draw the planned rows' sketches into ``dataset_dir`` (skipping PNGs already there)."""
    by_style: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in planned:
        if not (dataset_dir / row.sketch).is_file():
            by_style[row.style].append(row)
    todo = sum(len(v) for v in by_style.values())
    if todo < len(planned):
        log.info(
            "%d of %d artist sketches already drawn: reused", len(planned) - todo, len(planned)
        )
    with tqdm(total=todo, desc="artist sketches", unit="sketch", disable=not progress) as bar:
        for style, style_rows in sorted(by_style.items()):
            for start in range(0, len(style_rows), batch_size):
                chunk = style_rows[start : start + batch_size]
                photos = np.stack([load_image(dataset_dir / r.photo) for r in chunk])
                for row, drawn in zip(chunk, sketcher.sketch(photos, style, batch_size=batch_size)):
                    save_png(drawn, dataset_dir / row.sketch)
                bar.update(len(chunk))


def add_artist_sketches(
    dataset_dir: str | os.PathLike,
    sketcher: Sketcher,
    *,
    per_photo: int = 1,
    progress: bool = True,
) -> list[ManifestRow]:
    """Give a prepared dataset its artist-style rows (replacing those of an earlier model), rewrite
    the manifest and summary, and return the new rows.

    The manifest is replaced in one rename after every drawing is on disk, so an interrupted pass
    leaves the dataset as it was (plus cached drawings that the next pass reuses).
    """
    root = Path(dataset_dir)
    rows = read_manifest(root / MANIFEST_NAME)
    real = [r for r in rows if not is_synthetic_artist(r)]
    planned = plan_artist_rows(real, sketcher.model_id, per_photo)
    if not planned:
        raise DatasetError(
            f"{root} has no training rows to draw (FS2K or photo-folder photos); "
            "prepare it with --fs2k and/or --photos first."
        )
    log.info("drawing %d artist-style sketches with %s", len(planned), sketcher.model_id)
    draw_artist_rows(root, planned, sketcher, progress=progress)
    merged = sorted(real + planned, key=lambda r: r.id)
    tmp = root / f".{MANIFEST_NAME}.tmp-{os.getpid()}"
    write_manifest(tmp, merged)
    os.replace(tmp, root / MANIFEST_NAME)
    current = root / artist_folder(sketcher.model_id)
    for stale in (root / ARTIST_DIR).iterdir():  # drawings no manifest row points to any more
        if stale != current:
            log.info("removing %s: drawings of a model the manifest no longer uses", stale)
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
    _record_in_summary(root, planned, sketcher.model_id, per_photo)
    return planned


def _record_in_summary(
    root: Path, planned: Sequence[ManifestRow], sketcher_id: str, per_photo: int
) -> None:
    path = root / SUMMARY_NAME
    summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in planned:
        counts[row.source][row.style] += 1
    summary["artist_sketches"] = {
        "sketcher": sketcher_id,
        "per_photo": per_photo,
        "rows": len(planned),
        "by_source_and_style": {k: dict(v) for k, v in sorted(counts.items())},
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
