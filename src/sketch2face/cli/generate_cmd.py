"""`sketch2face generate SKETCH... -o OUTDIR`: one PNG face per sketch (same stem)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `generate` sub-command."""
    p = subparsers.add_parser("generate", help="turn sketches (files or folders) into faces")
    p.add_argument("sketches", nargs="+", help="sketch image files or folders of them")
    p.add_argument("-o", "--out", required=True, help="output folder (created)")
    p.add_argument("--checkpoint", help="model checkpoint (default: the packaged model)")
    p.add_argument(
        "--refine",
        action="store_true",
        help="GFPGAN refinement (needs --gfpgan-weights or SKETCH2FACE_GFPGAN_WEIGHTS)",
    )
    p.add_argument("--gfpgan-weights", help="path of GFPGANv1.3/1.4 .pth weights")
    p.add_argument(
        "--seed",
        type=int,
        help="a reproducible variation (dropout on); default: the canonical face",
    )
    p.add_argument("--skin", help="witness skin tone: very-light, light, medium, olive, brown, dark, or #rrggbb")
    p.add_argument("--hair-color", help="hair colour: black, dark-brown, brown, auburn, blonde, grey, white, or #rrggbb")
    p.add_argument("--gender", choices=["female", "male"], help="gender as described by the witness")
    p.add_argument("--sheet", help="also write a comparison sheet PNG (sketch | face | refined)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto: onnxruntime on CPU (fastest), PyTorch for --seed variations and on GPU")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: automatic)")
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=run)


def collect_inputs(items: list[str]) -> list[Path]:
    """Expand folders into their image files (sorted); keep files as given."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(path)
    return paths


def output_names(paths: list[Path]) -> list[str]:
    """Output stems: the input stem, de-duplicated with a numeric suffix."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        n = seen.get(p.stem, 0)
        seen[p.stem] = n + 1
        names.append(p.stem if n == 0 else f"{p.stem}_{n}")
    return names


def run(args: argparse.Namespace) -> int:
    """Generate faces; a bad input is reported and skipped, the others are still written."""
    from tqdm import tqdm

    from sketch2face.errors import InvalidImageError
    from sketch2face.imaging import (
        MAX_SKETCH_ASPECT,
        MIN_SKETCH_SIDE,
        load_image,
        make_grid,
        save_png,
    )
    from sketch2face.pipeline import Sketch2Face

    paths = collect_inputs(args.sketches)
    if not paths:
        print("error: no sketch images given (folders were empty)", file=sys.stderr)
        return 1
    pipe = Sketch2Face.from_pretrained(
        args.checkpoint,
        device=args.device,
        gfpgan_weights=args.gfpgan_weights,
        backend=args.backend,
    )
    attributes = {"skin": args.skin, "hair_color": args.hair_color, "gender": args.gender}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    rows = []
    timings = {"prepare": 0.0, "generate": 0.0, "refine": 0.0}
    notices: set[str] = set()
    for path, name in tqdm(
        list(zip(paths, output_names(paths))), desc="generate", disable=len(paths) < 2
    ):
        try:
            image = load_image(path, min_side=MIN_SKETCH_SIDE, max_aspect=MAX_SKETCH_ASPECT)
        except InvalidImageError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            failures += 1
            continue
        result = pipe(image, refine=args.refine, seed=args.seed, attributes=attributes)
        for key, value in result.timings_ms.items():
            timings[key] = timings.get(key, 0.0) + value
        notices.update(result.notices)
        save_png(result.faces[0], out_dir / f"{name}.png")
        row = [result.inputs[0], result.faces[0]]
        if result.refined[0] is not None:
            save_png(result.refined[0], out_dir / f"{name}_refined.png")
            row.append(result.refined[0])
        rows.append(row)
    for notice in sorted(notices):
        print(f"notice: {notice}", file=sys.stderr)
    if args.sheet and rows:
        save_png(make_grid(rows), args.sheet)
        print(f"comparison sheet: {args.sheet}")
    n_ok = len(rows)
    per = {k: v / max(n_ok, 1) for k, v in timings.items() if v}
    print(
        f"wrote {n_ok} face(s) to {out_dir} ({pipe.model_version}); mean ms per image: "
        + ", ".join(f"{k} {v:.0f}" for k, v in per.items())
    )
    if failures:
        print(f"{failures} input(s) could not be read", file=sys.stderr)
    return 1 if failures else 0
