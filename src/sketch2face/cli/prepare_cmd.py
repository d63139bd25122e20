"""`sketch2face prepare`: build a paired (sketch, photo) dataset folder."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sketch2face.backtranslation.sketcher import PhotoSketcher


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``prepare`` sub-command."""
    parser = subparsers.add_parser(
        "prepare",
        help="build a paired sketch/photo dataset (FS2K, CUHK-style pairs, photo folders)",
        description=(
            "Crop every face to 256x256, normalise sketches, synthesise sketches for photo "
            "folders, "
            "and write sketches/, photos/, manifest.jsonl, summary.json and contact_sheet.png."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    parser.add_argument("--fs2k", type=Path, help="FS2K root (photo/, sketch/, anno_*.json)")
    parser.add_argument("--cuhk-photos", type=Path, help="folder of photos (CUHK-style pairs)")
    parser.add_argument("--cuhk-sketches", type=Path, help="folder of the matching sketches")
    parser.add_argument(
        "--pair-pattern",
        help="regex with a named group `key` searched in photo and sketch file stems; equal keys "
        "pair up (default: CUHK names f-005-01 <-> F2-005-01-sz1)",
    )
    parser.add_argument(
        "--photos",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="face photo folder to synthesise sketches from "
        "(repeatable; CelebA names are split by identity)",
    )
    parser.add_argument(
        "--sketch-styles",
        default="pencil,line",
        help="comma-separated synthetic styles for --photos (default: pencil,line)",
    )
    parser.add_argument("--limit", type=int, help="use at most N items per source (quick runs)")
    parser.add_argument(
        "--val-fraction", type=float, default=0.05, help="held-out val share (0.05)"
    )
    parser.add_argument(
        "--fs2k-val-fraction",
        type=float,
        default=0.12,
        help="share of FS2K's official train split held out as val (0.12: enough artist sketches "
        "for validation to track FS2K)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.05,
        help="test share for sources without an official split (0.05)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--force", action="store_true", help="replace an existing dataset in --out")
    parser.add_argument(
        "--no-landmarks",
        action="store_true",
        help="skip the uint8 cache and the photos' 5-landmark pass (needed by the identity loss; "
        "otherwise done on first training use)",
    )
    parser.add_argument(
        "--artist-sketcher",
        type=Path,
        nargs="?",
        const=Path("packaged"),
        metavar="CKPT",
        help="draw every training photo in FS2K's artist styles (rows with source "
        "<source>_artist) with this photo -> sketch checkpoint (configs/photo2sketch_fs2k.toml; "
        "no value: the packaged one). Without any source option, adds (or redraws) these rows "
        "in the existing dataset at --out",
    )
    parser.add_argument(
        "--artist-styles-per-photo",
        type=int,
        default=1,
        metavar="N",
        help="artist styles per photo-folder photo (1-3, default 1); FS2K photos get the two "
        "styles their artist did not use",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    """Run the prepare job and print a one-screen summary."""
    from sketch2face.data.prepare import PrepareConfig, prepare_dataset

    sketcher = None
    if args.artist_sketcher is not None:
        from sketch2face.backtranslation.sketcher import PhotoSketcher

        if not 1 <= args.artist_styles_per_photo <= 3:
            raise SystemExit("--artist-styles-per-photo must be 1, 2 or 3")
        packaged = args.artist_sketcher == Path("packaged")
        sketcher = PhotoSketcher() if packaged else PhotoSketcher(args.artist_sketcher)
        if not (args.fs2k or args.cuhk_photos or args.photos):
            return _add_artist_sketches(args, sketcher)
    cfg = PrepareConfig(
        out_dir=args.out,
        fs2k_dir=args.fs2k,
        cuhk_photos_dir=args.cuhk_photos,
        cuhk_sketches_dir=args.cuhk_sketches,
        pair_pattern=args.pair_pattern,
        photo_dirs=tuple(args.photos),
        sketch_styles=tuple(s.strip() for s in args.sketch_styles.split(",") if s.strip()),
        limit=args.limit,
        val_fraction=args.val_fraction,
        fs2k_val_fraction=args.fs2k_val_fraction,
        test_fraction=args.test_fraction,
        workers=args.workers,
        force=args.force,
        progress=not args.no_progress,
        landmarks=not args.no_landmarks,
        artist_sketcher=sketcher,
        artist_per_photo=args.artist_styles_per_photo,
    )
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # turn a kill into SystemExit so the half-built folder is removed
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        report = prepare_dataset(cfg)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    s = report.summary
    print(f"dataset: {report.out_dir}")
    print(f"pairs: {s['pairs']}  splits: {s['splits']}")
    for source, faces in s["faces"].items():
        print(
            f"  {source}: {s['sources'][source]}  "
            f"faces found {faces['found']}, fallback {faces['fallback']}"
        )
    print(f"skipped: {s['skipped']['count']} {s['skipped']['by_reason']}")
    print(f"elapsed: {s['elapsed_s']:.1f} s")
    return 0


def _add_artist_sketches(args: argparse.Namespace, sketcher: PhotoSketcher) -> int:
    """Extend the dataset at --out with artist-style rows, then refresh its caches."""
    from sketch2face.data.artist_sketches import add_artist_sketches

    added = add_artist_sketches(
        args.out,
        sketcher,
        per_photo=args.artist_styles_per_photo,
        progress=not args.no_progress,
    )
    print(f"dataset: {args.out}")
    print(f"artist-style rows: {len(added)} (by {sketcher.model_id})")
    if not args.no_landmarks:
        from sketch2face.data.landmarks import load_split_landmarks

        load_split_landmarks(args.out, "train", progress=not args.no_progress)
    return 0
