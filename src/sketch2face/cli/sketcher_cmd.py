"""`sketch2face evaluate-sketcher`: how artist-like and faithful a photo -> sketch model draws."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``evaluate-sketcher`` sub-command."""
    parser = subparsers.add_parser(
        "evaluate-sketcher",
        help="score a photo -> artist-sketch model (back-translation) beside OpenCV sketches",
        description=(
            "Draw every held-out FS2K photo in the three artist styles and report, per style, "
            "realism FD / accuracy against real sketches of that style (other people), dlib "
            "rank-1 / rank-5 of the drawing among the photos, and SSIM to the artist's sketch, "
            "beside the OpenCV pencil and line sketches and the artist's own sketch."
        ),
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="photo -> sketch model")
    parser.add_argument("--dataset", required=True, type=Path, help="prepared dataset with FS2K")
    parser.add_argument("--split", default="val", help="held-out split to score (default val)")
    parser.add_argument(
        "--reference-split",
        default="train",
        help="split whose real sketches define each style (default train)",
    )
    parser.add_argument("--report", type=Path, help="write the figures as JSON")
    parser.add_argument(
        "--sheet",
        type=Path,
        help="PNG: photo | OpenCV pencil | drawn in style 0, 1, 2 | the artist's sketch",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table."""
    from sketch2face.backtranslation.evaluate import evaluate_sketcher, write_report
    from sketch2face.backtranslation.sketcher import PhotoSketcher

    report = evaluate_sketcher(
        PhotoSketcher(args.checkpoint),
        args.dataset,
        split=args.split,
        reference_split=args.reference_split,
        sheet_path=args.sheet,
    )
    print(report.table())
    if args.report:
        print(f"report: {write_report(report, args.report)}")
    if args.sheet:
        print(f"sheet: {args.sheet}")
    return 0
