"""`sketch2face evaluate`: score a model on (sketch, photo) pairs and write a JSON report."""

from __future__ import annotations

import argparse
from pathlib import Path

from sketch2face.errors import ConfigError, Sketch2FaceError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``evaluate`` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score generated faces against real photos beside baselines (SSIM, PSNR, identity)",
        description=(
            "Generate a face for each sketch and compare it with its real photo. Pairs come "
            "from two folders matched by file stem (--sketches/--photos) or from a prepared "
            "dataset's manifest "
            "(--manifest DIR --split test). One table scores stage one (pix2pix), the refined "
            "faces (stage two, when the pipeline has a refiner; --no-refine skips it) and three "
            "trivial baselines on the same pairs: stage one + unsharp mask (a trivial second "
            "stage a refiner must beat on rank-1 and realism FD), the sketch itself and the mean "
            "training face (stored beside the checkpoint by `sketch2face export --mean-face`, "
            "else computed from --manifest's train split). Writes a JSON report and prints the "
            "table."
        ),
    )
    source = parser.add_argument_group("pairs (one of)")
    source.add_argument("--sketches", type=Path, metavar="DIR", help="folder of sketches")
    source.add_argument(
        "--photos", type=Path, metavar="DIR", help="folder of real photos (same stems)"
    )
    source.add_argument(
        "--manifest", type=Path, metavar="DATASET_DIR", help="prepared dataset folder"
    )
    source.add_argument(
        "--split", default="test", choices=("train", "val", "test"), help="manifest split"
    )
    parser.add_argument(
        "--report", type=Path, required=True, metavar="REPORT.json", help="JSON report path"
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="model checkpoint (default: the packaged model)"
    )
    parser.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score the second stage (refined faces) beside stage one; on by default when the "
        "pipeline has a refiner (else its row says why not); --no-refine scores stage one alone",
    )
    parser.add_argument(
        "--refiner",
        metavar="PATH",
        help="the second stage's checkpoint, e.g. a refiner being trained (default: the "
        "pipeline's own choice: $SKETCH2FACE_REFINER, else the packaged refiner)",
    )
    parser.add_argument(
        "--gfpgan-weights",
        type=Path,
        metavar="PATH",
        help="GFPGANv1.3/1.4 .pth: refine with GFPGAN instead of the pipeline's default refiner",
    )
    parser.add_argument(
        "--mean-face",
        type=Path,
        metavar="PNG",
        help="mean training face for the baseline (default: <checkpoint stem>.mean_face.png "
        "beside the checkpoint, else computed from --manifest's train split)",
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the baselines: stage one + unsharp mask, the sketch itself and the mean face "
        "(faster)",
    )
    parser.add_argument("--sheet", type=Path, metavar="SHEET.png", help="write a comparison sheet")
    parser.add_argument("--sheet-pairs", type=int, default=8, help="rows in the sheet (default 8)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N pairs")
    parser.add_argument("--source", help="with --manifest: only pairs of this source (e.g. fs2k)")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per generator batch (8)")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="score seeded variations instead of the canonical face",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--lpips-weights", metavar="PATH", help="LPIPS backbone weights (hook)")
    parser.add_argument("--inception-weights", metavar="PATH", help="FID Inception weights (hook)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _resolve_pairs(
    args: argparse.Namespace,
) -> tuple[list[Path], list[Path], dict[str, int], bool, list[str] | None]:
    """(sketch paths, photo paths, unmatched counts, prepared?, drawing style per pair or None)
    from the chosen input; a manifest gives the styles, so the report breaks figures down by
    artist style (how the model does on each kind of drawing)."""
    from sketch2face.evaluation.pairs import (
        pair_by_stem,
        pairs_from_manifest,
        styles_from_manifest,
    )

    styles: list[str] | None = None
    if args.manifest is not None:
        if args.sketches is not None or args.photos is not None:
            raise ConfigError("use either --manifest or --sketches/--photos, not both.")
        pairs = pairs_from_manifest(args.manifest, args.split, args.source)
        styles = styles_from_manifest(args.manifest, args.split, args.source)
        unmatched = {"sketches": 0, "photos": 0}
        prepared = True
    else:
        if args.sketches is None or args.photos is None:
            raise ConfigError("give --sketches DIR and --photos DIR, or --manifest DATASET_DIR.")
        stem_pairs = pair_by_stem(args.sketches, args.photos)
        pairs = stem_pairs.pairs
        unmatched = {
            "sketches": len(stem_pairs.unmatched_sketches),
            "photos": len(stem_pairs.unmatched_photos),
        }
        prepared = False
    if args.limit is not None:
        if args.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {args.limit}.")
        pairs = pairs[: args.limit]
        styles = styles[: args.limit] if styles is not None else None
    return [s for s, _ in pairs], [p for _, p in pairs], unmatched, prepared, styles


def _checkpoint_path(checkpoint: Path | None) -> Path | None:
    """The checkpoint file the pipeline loads (explicit, $SKETCH2FACE_CHECKPOINT or packaged)."""
    try:
        from sketch2face.pipeline import resolve_checkpoint
    except ImportError:
        return checkpoint
    try:
        return resolve_checkpoint(checkpoint)
    except Sketch2FaceError:
        return checkpoint


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report (and sheet), print the table."""
    from sketch2face.evaluation.baselines import resolve_mean_face
    from sketch2face.evaluation.evaluate import (
        REFINED_LABEL,
        evaluate_pairs,
        refined_unavailable_reason,
        refiner_name,
    )
    from sketch2face.pipeline import Sketch2Face
    from sketch2face.refine.base import NoRefiner

    for flag, value in (("--refiner", args.refiner), ("--gfpgan-weights", args.gfpgan_weights)):
        if not args.refine and value is not None:
            raise ConfigError(f"{flag} names a second stage to score; drop it or --no-refine.")
    sketches, photos, unmatched, prepared, styles = _resolve_pairs(args)
    if args.refine:
        # The pipeline's own choice of second stage unless --refiner / --gfpgan-weights name one
        # (which must load); without one the refined row says why.
        chosen = {"refiner": args.refiner} if args.refiner is not None else {}
        pipeline = Sketch2Face.from_pretrained(
            args.checkpoint, device=args.device, gfpgan_weights=args.gfpgan_weights, **chosen
        )
        refiner = getattr(pipeline, "refiner", None)
        print(
            f"{REFINED_LABEL}: {refiner_name(refiner)}"
            if refiner is not None
            else f"{REFINED_LABEL}: not available ({refined_unavailable_reason(pipeline)})"
        )
    else:
        # Stage one alone: an explicit no-op refiner keeps any refiner's weights from loading.
        pipeline = Sketch2Face.from_pretrained(
            args.checkpoint, device=args.device, refiner=NoRefiner()
        )
    skipped = f" ({unmatched['sketches']} sketches, {unmatched['photos']} photos without a pair)"
    print(f"evaluating {len(sketches)} pairs" + (skipped if any(unmatched.values()) else ""))
    mean_face, mean_face_message = None, "baselines were not requested (--no-baselines)"
    if not args.no_baselines:
        # the mean face of the model being evaluated; a dataset's test split is never used for it
        mean_face, mean_face_message = resolve_mean_face(
            _checkpoint_path(args.checkpoint), explicit=args.mean_face, dataset_dir=args.manifest
        )
        print(mean_face_message)
    report = evaluate_pairs(
        pipeline,
        sketches,
        photos,
        refine=args.refine,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
        prepared=prepared,
        sheet_path=args.sheet,
        sheet_pairs=args.sheet_pairs,
        lpips_weights=args.lpips_weights,
        inception_weights=args.inception_weights,
        mean_face=mean_face,
        mean_face_unavailable=mean_face_message.removeprefix("mean face unavailable: "),
        baselines=not args.no_baselines,
        groups=styles,
    )
    report.unmatched = unmatched
    report.save(args.report)
    print(report.summary_table())
    print(f"report: {args.report}" + (f"\nsheet: {args.sheet}" if args.sheet else ""))
    return 0
