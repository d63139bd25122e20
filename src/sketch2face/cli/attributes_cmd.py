"""`sketch2face evaluate-attributes`: how far generated skin/hair colours and gender follow the
request."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `evaluate-attributes` sub-command."""
    p = subparsers.add_parser(
        "evaluate-attributes", help="measure attribute control on a prepared split"
    )
    p.add_argument("--manifest", required=True, help="prepared dataset folder (manifest.jsonl)")
    p.add_argument("--split", default="test")
    p.add_argument("--source", default="fs2k", help="only pairs of this source ('' for all)")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--checkpoint")
    p.add_argument("--report", help="JSON report path")
    p.add_argument("--sheet", help="PNG: sketches with several skin tones, hair colours, genders")
    p.add_argument(
        "--no-gender",
        action="store_true",
        help="skip the gender rows (they need the shipped gender head and dlib)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure and print the colour-shift table."""
    from dataclasses import asdict
    from pathlib import Path

    from sketch2face.data.manifest import read_manifest
    from sketch2face.errors import Sketch2FaceError
    from sketch2face.evaluation.attribute_control import measure_attribute_control
    from sketch2face.pipeline import Sketch2Face

    root = Path(args.manifest)
    rows = [
        r
        for r in read_manifest(root / "manifest.jsonl")
        if r.split == args.split and (not args.source or r.source == args.source)
    ]
    pairs = [(root / r.sketch, root / r.photo) for r in rows][: args.limit]
    if not pairs:
        raise Sketch2FaceError(f"no {args.split} pairs of source {args.source!r} in {root}")
    # attribute control is the generator's (stage one's faces): no refiner is loaded
    pipe = Sketch2Face.from_pretrained(args.checkpoint, refiner="none")
    if not pipe.supports_attributes:
        raise Sketch2FaceError(
            f"{pipe.model_version} is not attribute-conditioned; nothing to measure"
        )
    genders = [r.attributes.get("gender") for r in rows][: args.limit]  # FS2K: 1 female, 0 male
    report = measure_attribute_control(
        pipe, pairs, sheet_path=args.sheet, genders=genders, measure_gender=not args.no_gender
    )
    print(report.table())
    if args.report:
        Path(args.report).write_text(json.dumps(asdict(report), indent=2))
    return 0
