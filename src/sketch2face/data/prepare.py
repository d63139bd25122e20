"""The ``prepare`` job: sources -> face crop / sketchify -> PNG pairs + manifest + summary + sheet.

The dataset is built in a temporary sibling folder and swapped in at the end, so a crash, an
interrupt or a ``--force`` rebuild never leaves a half-written or mixed dataset behind.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from sketch2face.data.align import FaceCropper, centered_square_box, crop_square, default_cropper
from sketch2face.data.artist_sketches import Sketcher, add_artist_sketches
from sketch2face.data.manifest import (
    CONTACT_SHEET_NAME,
    MANIFEST_NAME,
    SPLITS,
    SUMMARY_NAME,
    ManifestRow,
    hash_fraction,
    write_manifest,
)
from sketch2face.data.preprocess import prepare_photo, prepare_sketch
from sketch2face.data.sketchify import SKETCH_STYLES, synthesize_sketch
from sketch2face.data.sources import (
    DEFAULT_TEST_FRACTION,
    Skipped,
    SourceListing,
    WorkItem,
    cuhk_items,
    fs2k_items,
    photo_folder_items,
)
from sketch2face.errors import DatasetError, InvalidImageError
from sketch2face.imaging import encode_png, load_image, make_grid, save_png

logger = logging.getLogger(__name__)

SKETCH_DIR = "sketches"
PHOTO_DIR = "photos"
#: Contact sheet layout: rows of PAIRS_PER_ROW (sketch | photo) pairs, cells of SHEET_CELL_PX.
SHEET_ROWS = 6
PAIRS_PER_ROW = 4
SHEET_CELL_PX = 128


@dataclass(frozen=True)
class PrepareConfig:
    """Everything ``sketch2face prepare`` needs; at least one source must be given."""

    out_dir: Path
    fs2k_dir: Path | None = None
    cuhk_photos_dir: Path | None = None
    cuhk_sketches_dir: Path | None = None
    pair_pattern: str | None = None
    photo_dirs: tuple[Path, ...] = ()
    sketch_styles: tuple[str, ...] = ("pencil", "line")
    limit: int | None = None
    val_fraction: float = 0.05
    #: FS2K's own val share: artist sketches are the target, so validation holds enough of them
    #: (0.12 of the official train split: ~125 pairs, ~40 per style) to track FS2K, not CelebA.
    fs2k_val_fraction: float = 0.12
    test_fraction: float = DEFAULT_TEST_FRACTION
    workers: int = 2
    force: bool = False
    progress: bool = True
    #: also decode the uint8 cache and find every photo's 5 landmarks (the identity loss's chips)
    landmarks: bool = True
    #: a photo -> sketch model (data.artist_sketches.Sketcher) that draws the training photos in
    #: FS2K's artist styles after the build; None = no artist-style rows
    artist_sketcher: Sketcher | None = None
    #: artist styles per photo-folder photo (FS2K photos get the styles their artist did not use)
    artist_per_photo: int = 1


@dataclass
class PrepareReport:
    """The outcome of a prepare run (also written as ``summary.json``)."""

    out_dir: Path
    rows: list[ManifestRow]
    skipped: list[Skipped]
    elapsed_s: float
    summary: dict[str, Any] = field(default_factory=dict)


# --- worker side -----------------------------------------------------------------------------

_worker_cropper: FaceCropper | None = None
_worker_out: Path | None = None


def _init_worker(out_dir: str) -> None:
    global _worker_cropper, _worker_out
    # The parent may turn SIGTERM into SystemExit for cleanup; workers just stop when terminated.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker_cropper = default_cropper()  # inherited from the parent when forked
    _worker_out = Path(out_dir)


def build_pair(item: WorkItem, cropper: FaceCropper) -> tuple[np.ndarray, np.ndarray, bool]:
    """Decode, crop and normalise one item: (sketch_u8, photo_u8, face_found)."""
    photo_u8 = load_image(item.photo_path)
    if item.sketch_path is None:
        photo = prepare_photo(photo_u8, cropper)
        return synthesize_sketch(photo.image_u8, item.style), photo.image_u8, photo.face_found
    sketch_u8 = load_image(item.sketch_path)
    if sketch_u8.shape == photo_u8.shape:
        # Same geometry (FS2K, CUHK): drawn over the photo, so one crop box serves both. The photo
        # is the better detection target; the sketch is the second chance.
        box = cropper.detect(photo_u8) or cropper.detect(sketch_u8)
        face_found = box is not None
        if box is None:
            box = centered_square_box(*photo_u8.shape[:2])
        photo_crop = crop_square(photo_u8, box)
        sketch = prepare_sketch(sketch_u8, cropper, box=box)
        return sketch.image_u8, photo_crop, face_found
    photo = prepare_photo(photo_u8, cropper)
    sketch = prepare_sketch(sketch_u8, cropper)
    return sketch.image_u8, photo.image_u8, photo.face_found and sketch.face_found


def _process(item: WorkItem) -> ManifestRow | Skipped:
    assert _worker_cropper is not None and _worker_out is not None
    return _process_with(item, _worker_cropper, _worker_out)


def _failing_file(item: WorkItem, message: str) -> str:
    for path in (item.photo_path, item.sketch_path):
        if path is not None and str(path) in message:
            return str(path)
    return str(item.photo_path)


def _process_with(item: WorkItem, cropper: FaceCropper, out_dir: Path) -> ManifestRow | Skipped:
    try:
        sketch_u8, photo_u8, face_found = build_pair(item, cropper)
    except InvalidImageError as exc:
        return Skipped(_failing_file(item, str(exc)), "unreadable image", str(exc))
    except (cv2.error, ValueError) as exc:  # one odd image must not stop a long run
        logger.debug("processing %s failed", item.id, exc_info=True)
        return Skipped(
            _failing_file(item, str(exc)), "processing failed", f"{type(exc).__name__}: {exc}"
        )
    sketch_rel = f"{SKETCH_DIR}/{item.id}.png"
    photo_rel = f"{PHOTO_DIR}/{item.id}.png"
    # Plain writes: the whole folder is swapped in atomically at the end, no per-file fsync needed.
    (out_dir / sketch_rel).write_bytes(encode_png(sketch_u8))
    (out_dir / photo_rel).write_bytes(encode_png(photo_u8))
    return ManifestRow(
        id=item.id,
        source=item.source,
        style=item.style,
        split=item.split,
        sketch=sketch_rel,
        photo=photo_rel,
        attributes=dict(item.attributes),
        face_found=face_found,
    )


# --- main side -------------------------------------------------------------------------------


def _check_output(out_dir: Path, force: bool) -> None:
    if (out_dir / MANIFEST_NAME).exists() and not force:
        raise DatasetError(
            f"{out_dir} already holds a dataset ({MANIFEST_NAME}); pass --force to rebuild it "
            "(the old one is replaced only once the new one is complete) or choose another --out."
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"--out {out_dir} is a file; choose a folder path.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise DatasetError(
            f"{out_dir} is not empty and holds no dataset; choose an empty or new --out folder, "
            "or pass --force to replace its contents."
        )


def collect_items(cfg: PrepareConfig) -> SourceListing:
    """Run every requested source adapter; dedupe ids; apply ``limit`` per source."""
    listings: list[SourceListing] = []
    if cfg.fs2k_dir is not None:
        listings.append(fs2k_items(cfg.fs2k_dir, val_fraction=cfg.fs2k_val_fraction))
    if (cfg.cuhk_photos_dir is None) != (cfg.cuhk_sketches_dir is None):
        raise DatasetError("--cuhk-photos and --cuhk-sketches must be given together.")
    if cfg.cuhk_photos_dir is not None and cfg.cuhk_sketches_dir is not None:
        listings.append(
            cuhk_items(
                cfg.cuhk_photos_dir,
                cfg.cuhk_sketches_dir,
                pair_pattern=cfg.pair_pattern,
                val_fraction=cfg.val_fraction,
                test_fraction=cfg.test_fraction,
            )
        )
    for folder in cfg.photo_dirs:
        listings.append(
            photo_folder_items(
                folder,
                styles=cfg.sketch_styles,
                val_fraction=cfg.val_fraction,
                test_fraction=cfg.test_fraction,
            )
        )
    if not listings:
        raise DatasetError(
            "no source given; pass --fs2k DIR, --cuhk-photos/--cuhk-sketches or --photos DIR."
        )
    merged = SourceListing()
    seen: set[str] = set()
    for listing in listings:
        merged.skipped.extend(listing.skipped)
        items = listing.items
        if cfg.limit is not None:
            # A hashed (not alphabetical) subset, so a small run still spans groups and splits.
            items = sorted(items, key=lambda it: hash_fraction(f"limit:{it.id}"))[: cfg.limit]
        for item in items:
            if item.id in seen:
                merged.skipped.append(Skipped(str(item.photo_path), "duplicate id", item.id))
                continue
            seen.add(item.id)
            merged.items.append(item)
    return merged


def _run_items(
    items: list[WorkItem], build_dir: Path, cfg: PrepareConfig
) -> Iterator[ManifestRow | Skipped]:
    bar_kwargs = {
        "total": len(items),
        "desc": "prepare",
        "unit": "pair",
        "disable": not cfg.progress,
    }
    if cfg.workers <= 1 or len(items) < 8:
        cropper = default_cropper()  # building a detector takes seconds: reuse the process-wide one
        for item in tqdm(items, **bar_kwargs):
            yield _process_with(item, cropper, build_dir)
        return
    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    if ctx.get_start_method() == "fork":
        default_cropper()  # build the detector once; forked workers share it copy-on-write
    with ctx.Pool(cfg.workers, initializer=_init_worker, initargs=(str(build_dir),)) as pool:
        results = pool.imap_unordered(_process, items, chunksize=8)
        yield from tqdm(results, **bar_kwargs)


def _summary(
    rows: list[ManifestRow], skipped: list[Skipped], elapsed_s: float, cfg: PrepareConfig
) -> dict[str, Any]:
    per_source: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    faces: dict[str, dict[str, int]] = defaultdict(lambda: {"found": 0, "fallback": 0})
    for row in rows:
        per_source[row.source][row.split] += 1
        faces[row.source]["found" if row.face_found else "fallback"] += 1
    reasons = Counter(s.reason for s in skipped)
    return {
        "pairs": len(rows),
        "splits": {s: sum(1 for r in rows if r.split == s) for s in SPLITS},
        "sources": {k: dict(v) for k, v in sorted(per_source.items())},
        "styles": dict(sorted(Counter(r.style for r in rows).items())),
        "faces": {k: dict(v) for k, v in sorted(faces.items())},
        "faces_found": sum(1 for r in rows if r.face_found),
        "faces_fallback": sum(1 for r in rows if not r.face_found),
        "missing_pairs": reasons.get("missing pair", 0),
        "skipped": {
            "count": len(skipped),
            "by_reason": dict(sorted(reasons.items())),
            "items": [{"path": s.path, "reason": s.reason, "detail": s.detail} for s in skipped],
        },
        "elapsed_s": round(elapsed_s, 2),
        "config": {
            "fs2k": str(cfg.fs2k_dir) if cfg.fs2k_dir else None,
            "cuhk_photos": str(cfg.cuhk_photos_dir) if cfg.cuhk_photos_dir else None,
            "cuhk_sketches": str(cfg.cuhk_sketches_dir) if cfg.cuhk_sketches_dir else None,
            "pair_pattern": cfg.pair_pattern,
            "photos": [str(p) for p in cfg.photo_dirs],
            "sketch_styles": list(cfg.sketch_styles),
            "limit": cfg.limit,
            "val_fraction": cfg.val_fraction,
            "fs2k_val_fraction": cfg.fs2k_val_fraction,
            "test_fraction": cfg.test_fraction,
            "workers": cfg.workers,
        },
    }


def select_sheet_rows(rows: list[ManifestRow], n: int) -> list[ManifestRow]:
    """Up to ``n`` rows, round-robin over (source, style) groups, each group in hashed order."""
    groups: dict[tuple[str, str], list[ManifestRow]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: hash_fraction(f"sheet:{r.id}")):
        groups[(row.source, row.style)].append(row)
    ordered = [groups[k] for k in sorted(groups)]
    picked: list[ManifestRow] = []
    depth = 0
    while len(picked) < n and any(depth < len(g) for g in ordered):
        for group in ordered:
            if depth < len(group) and len(picked) < n:
                picked.append(group[depth])
        depth += 1
    return picked


def write_contact_sheet(dataset_dir: Path, rows: list[ManifestRow]) -> Path | None:
    """Save ``contact_sheet.png``: sketch|photo pairs sampled across sources and styles."""
    picked = select_sheet_rows(rows, SHEET_ROWS * PAIRS_PER_ROW)
    if not picked:
        return None
    grid_rows: list[list[np.ndarray]] = []
    for start in range(0, len(picked), PAIRS_PER_ROW):
        cells: list[np.ndarray] = []
        for row in picked[start : start + PAIRS_PER_ROW]:
            cells.append(load_image(dataset_dir / row.sketch))
            cells.append(load_image(dataset_dir / row.photo))
        grid_rows.append(cells)
    sheet = make_grid(grid_rows, cell_px=SHEET_CELL_PX)
    return save_png(sheet, dataset_dir / CONTACT_SHEET_NAME)


def prepare_dataset(cfg: PrepareConfig) -> PrepareReport:
    """Build the paired dataset described by ``cfg`` into ``cfg.out_dir``."""
    started = time.perf_counter()
    out_dir = Path(cfg.out_dir).resolve()
    _check_output(out_dir, cfg.force)
    unknown = [s for s in cfg.sketch_styles if s not in SKETCH_STYLES]
    if unknown or not cfg.sketch_styles:
        raise DatasetError(
            f"unknown sketch style(s) {unknown}; choose from {', '.join(SKETCH_STYLES)}."
        )
    fractions = (cfg.val_fraction, cfg.fs2k_val_fraction, cfg.test_fraction)
    if not all(0.0 <= f < 0.5 for f in fractions):
        raise DatasetError(
            "--val-fraction, --fs2k-val-fraction and --test-fraction must be in [0, 0.5)."
        )
    listing = collect_items(cfg)
    skipped = list(listing.skipped)
    if not listing.items:
        raise DatasetError("the sources hold no usable pairs; see the skipped files above.")
    logger.info(
        "preparing %d pairs into %s with %d worker(s)", len(listing.items), out_dir, cfg.workers
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out_dir)
    build_dir = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    shutil.rmtree(build_dir, ignore_errors=True)
    (build_dir / SKETCH_DIR).mkdir(parents=True)
    (build_dir / PHOTO_DIR).mkdir(parents=True)
    try:
        rows: list[ManifestRow] = []
        for result in _run_items(listing.items, build_dir, cfg):
            if isinstance(result, Skipped):
                skipped.append(result)
            else:
                rows.append(result)
        if not rows:
            raise DatasetError(
                "no pair could be built (every image was unreadable); see the warnings."
            )
        for s in skipped:
            logger.warning(
                "skipped %s: %s%s", s.path, s.reason, f" ({s.detail})" if s.detail else ""
            )
        rows.sort(key=lambda r: r.id)
        write_manifest(build_dir / MANIFEST_NAME, rows)
        write_contact_sheet(build_dir, rows)
        elapsed_s = time.perf_counter() - started
        summary = _summary(rows, skipped, elapsed_s, cfg)
        (build_dir / SUMMARY_NAME).write_text(
            json.dumps(summary, indent=2) + "\n", encoding="utf-8"
        )
        _swap_in(build_dir, out_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    if cfg.artist_sketcher is not None:
        rows += add_artist_sketches(
            out_dir, cfg.artist_sketcher, per_photo=cfg.artist_per_photo, progress=cfg.progress
        )
        rows.sort(key=lambda r: r.id)
    if cfg.landmarks:
        from sketch2face.data.landmarks import load_split_landmarks

        for split in sorted({r.split for r in rows}):
            load_split_landmarks(out_dir, split, progress=cfg.progress)
    logger.info(
        "prepared %d pairs (%d faces found, %d fallback, %d skipped) in %.1f s",
        len(rows),
        summary["faces_found"],
        summary["faces_fallback"],
        len(skipped),
        elapsed_s,
    )
    return PrepareReport(out_dir, rows, skipped, elapsed_s, summary)


def _remove_stale_builds(out_dir: Path) -> None:
    """Delete build folders left by killed runs (their process no longer exists)."""
    for leftover in out_dir.parent.glob(f".{out_dir.name}.building-*"):
        try:
            pid = int(leftover.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            logger.info("removing %s, left by an interrupted run", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def _swap_in(build_dir: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by the finished ``build_dir`` with renames (never a mixed folder)."""
    old_dir = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        os.replace(out_dir, old_dir)
    try:
        os.replace(build_dir, out_dir)
    except BaseException:
        if old_dir.exists() and not out_dir.exists():
            os.replace(old_dir, out_dir)
        raise
    shutil.rmtree(old_dir, ignore_errors=True)
