"""``sketch2face gender``: fit the offline gender heads, pseudo-label unlabelled training photos."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``gender`` with ``fit`` and ``label``."""
    parser = subparsers.add_parser(
        "gender",
        help="offline gender classifier (dlib descriptors + linear head): fit it, pseudo-label photos",
        description="A logistic-regression head on dlib's 128-D face descriptors, used to check "
        "gender requests (evaluate-attributes) and to label training photos that have no gender.",
    )
    actions = parser.add_subparsers(dest="gender_action", metavar="ACTION")

    fit = actions.add_parser(
        "fit",
        help="fit a head on a prepared dataset's FS2K train photos (reports val accuracy)",
        description="Fit on the labelled photos of the train split (L2 chosen by 5-fold "
        "cross-validation), measure accuracy on val (and test, for information only), and write "
        "the head (default: the asset shipped with sketch2face). --features hog fits the "
        "independent pixel classifier (HOG of the aligned crop, no dlib) that evaluate-attributes "
        "reports beside the dlib head.",
    )
    fit.add_argument("--dataset", required=True, help="prepared dataset folder (manifest.jsonl)")
    fit.add_argument(
        "--features",
        choices=["dlib128", "hog"],
        default="dlib128",
        help="dlib128: dlib face descriptors (the head also used in training and for pseudo "
        "labels); hog: pixels of the aligned crop, an independent second opinion",
    )
    fit.add_argument("--source", default="fs2k", help="manifest source with gender labels")
    fit.add_argument("--out", help="where to write the head JSON (default: the shipped asset)")
    fit.add_argument(
        "--device", help="torch device for dlib descriptors (default: cuda if any; unused by hog)"
    )
    fit.add_argument("--no-progress", action="store_true")
    fit.set_defaults(func=run_fit)

    label = actions.add_parser(
        "label",
        help="pseudo-label photos without a gender (CelebA) into <dataset>/cache/gender_pseudo.json",
        description="Classify every photo of the given splits that has no manifest gender and keep "
        "the confident ones; training (load_pairs) then uses them where the manifest has none.",
    )
    label.add_argument("--dataset", required=True, help="prepared dataset folder (manifest.jsonl)")
    label.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    label.add_argument(
        "--confidence", type=float, default=0.9, help="keep p >= c or p <= 1 - c (default 0.9)"
    )
    label.add_argument("--head", help="gender head JSON (default: the shipped asset)")
    label.add_argument("--device", help="torch device for the descriptors (default: cuda if any)")
    label.add_argument("--no-progress", action="store_true")
    label.set_defaults(func=run_label)

    parser.set_defaults(func=lambda _args: parser.print_help() or 2)


def run_fit(args: argparse.Namespace) -> int:
    """Fit, print the measured accuracy and write the head."""
    from dataclasses import asdict
    from pathlib import Path
    from typing import Any

    meta: dict[str, Any]
    path: Path
    if getattr(args, "features", "dlib128") == "hog":
        from sketch2face.evaluation import gender_pixels

        pixel_head = gender_pixels.fit_pixel_gender_head(
            args.dataset, source=args.source, progress=not args.no_progress
        )
        path = gender_pixels.save_pixel_gender_head(
            pixel_head, args.out or gender_pixels.ASSET_PATH
        )
        meta = pixel_head.meta
        print(f"features: HOG {json.dumps(asdict(pixel_head.recipe))}")
    else:
        from sketch2face.evaluation.gender import ASSET_PATH, fit_gender_head, save_gender_head

        head = fit_gender_head(
            args.dataset, source=args.source, device=args.device, progress=not args.no_progress
        )
        path = save_gender_head(head, args.out or ASSET_PATH)
        meta = head.meta
    for name in ("train", "val", "test_for_information"):
        m = meta[name]
        acc = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.4f}"
        print(
            f"{name:<22} accuracy {acc} on {m['count']} photos ({m['female']} female, {m['male']} male)"
        )
    print(f"l2 {meta['l2']:g} (cross-validation: {json.dumps(meta['cross_validation'])})")
    print(f"wrote {path} in {meta['fit_seconds']} s")
    return 0


def run_label(args: argparse.Namespace) -> int:
    """Write the pseudo labels and print the counts."""
    from sketch2face.data.pseudo_gender import label_missing_genders

    report = label_missing_genders(
        args.dataset,
        splits=args.splits,
        confidence=args.confidence,
        head_path=args.head,
        device=args.device,
        progress=not args.no_progress,
    )
    print(report.summary())
    for split, counts in report.per_split.items():
        print(f"  {split}: {json.dumps(counts)}")
    return 0
