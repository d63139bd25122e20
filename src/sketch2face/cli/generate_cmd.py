"""`sketch2face generate SKETCH... -o OUTDIR`: one PNG face per sketch (same stem).

Both stages run by default: ``<stem>.png`` is the face (the refined one when the second stage
refined it) and ``<stem>_stage1.png`` stage one's face beside it; ``--no-refine`` writes stage
one's face alone as ``<stem>.png``. The refiner is resolved by ``refine.resolve`` (``--refiner``,
``--gfpgan-weights``, ``SKETCH2FACE_REFINER``, ``SKETCH2FACE_GFPGAN_WEIGHTS``, the packaged one).

With ``--candidates N`` each sketch gives N visibly different candidate faces instead
(``sketch2face.candidates``): ``<stem>_candidate01.png`` ... (refined like single faces, stage
one's beside them as ``<stem>_candidate01_stage1.png``), a numbered grid
``<stem>_candidates_grid.png`` and ``<stem>_candidates.json`` (seed and attributes of each, so any
candidate can be made again with ``--seed`` and the attribute options).

``--backdrop studio`` puts every face written as ``<stem>.png`` (and every candidate, and the grid)
on a plain studio backdrop (``refine.backdrop``), the look for appeal sheets; ``_stage1.png`` files
stay stage one's faces as the network made them. Every face file is signed with provenance naming
both stages (model and refiner with their weights' SHA-256) and the backdrop.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

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
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the second stage, the refiner, on every face (default: on; --no-refine: "
        "stage one's face alone)",
    )
    p.add_argument(
        "--refiner",
        metavar="PATH",
        help="refiner checkpoint (data.direction = refine; default: SKETCH2FACE_REFINER, else "
        "the packaged refiner); 'none' turns refinement off",
    )
    p.add_argument(
        "--gfpgan-weights", help="refine with GFPGAN instead: path of GFPGANv1.3/1.4 .pth weights"
    )
    p.add_argument(
        "--seed",
        type=int,
        help="a reproducible variation (dropout on); default: the canonical face",
    )
    p.add_argument(
        "--skin",
        help="witness skin tone: very-light, light, medium, olive, brown, dark, or #rrggbb",
    )
    p.add_argument(
        "--hair-color",
        help="hair colour: black, dark-brown, brown, auburn, blonde, grey, white, or #rrggbb",
    )
    p.add_argument(
        "--gender", choices=["female", "male"], help="gender as described by the witness"
    )
    p.add_argument(
        "--backdrop",
        choices=["photo", "studio"],
        default="photo",
        help="background of the face written: photo (default: the one the networks painted) or "
        "studio (a plain studio backdrop, the usual look of a police likeness, for appeal sheets)",
    )
    p.add_argument(
        "--sheet", help="also write a comparison sheet PNG (sketch | stage one | refined)"
    )
    p.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx"],
        default="auto",
        help="auto: onnxruntime on CPU (fastest), PyTorch for --seed variations and on GPU",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: automatic)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--key-dir",
        type=Path,
        help="instance data folder whose signing key signs the faces (created there when "
        "missing; default $SKETCH2FACE_DATA_DIR or ./instance)",
    )
    p.add_argument(
        "--candidates",
        type=_candidate_count,
        metavar="N",
        help="write N different candidate faces per sketch (1-12) and a numbered grid, varying "
        "the attributes not given and the seed; --seed makes the set reproducible",
    )
    p.set_defaults(func=run)


def _candidate_count(text: str) -> int:
    from sketch2face.candidates import MAX_CANDIDATES

    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_CANDIDATES:
        raise argparse.ArgumentTypeError(
            f"--candidates must be a whole number from 1 to {MAX_CANDIDATES}, not {text!r}"
        )
    return n


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


def load_sketch_or_report(path: Path) -> np.ndarray | None:
    """The sketch at ``path`` as an RGB uint8 array, or None after saying on stderr why it is
    skipped (unreadable, too small, too elongated): one bad file does not stop a batch."""
    from sketch2face.errors import InvalidImageError
    from sketch2face.imaging import MAX_SKETCH_ASPECT, MIN_SKETCH_SIDE, load_image

    try:
        return load_image(path, min_side=MIN_SKETCH_SIDE, max_aspect=MAX_SKETCH_ASPECT)
    except InvalidImageError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return None


def face_writer(
    model_id: str,
    checkpoint: str | None,
    key_dir: Path | None,
    *,
    refiner: Any = None,
    backdrop: str = "photo",
) -> Callable[..., None]:
    """A ``save_png(face, path, stage1=False)`` that signs every face file with the instance key,
    like the web app's exports: provenance with the model and its weights' SHA-256, the refiner
    (``refiner``: the pipeline's loaded one, or None) with its weights' SHA-256, and ``backdrop``
    (``sketch2face verify`` checks it against the same data folder's key). ``stage1=True``: the
    file is stage one's face alone (signed with refiner "none" and backdrop "photo")."""
    from sketch2face.cli.verify_cmd import default_key_dir
    from sketch2face.errors import ProvenanceError
    from sketch2face.provenance import (
        KIND_FACE,
        NO_REFINER,
        Provenance,
        default_checkpoint_path,
        ensure_signing_key,
        refiner_stamp,
        sign_png,
        weights_sha256,
    )

    key = ensure_signing_key(key_dir or default_key_dir())
    try:
        model_sha256: str | None = weights_sha256(default_checkpoint_path(checkpoint))
    except ProvenanceError:
        model_sha256 = None

    stages = refiner_stamp(refiner)

    def save(face: np.ndarray, path: Path, stage1: bool = False) -> None:
        provenance = Provenance.create(
            KIND_FACE,
            model_id=model_id,
            model_sha256=model_sha256,
            refiner_id=NO_REFINER if stage1 else stages[0],
            refiner_sha256=None if stage1 else stages[1],
            backdrop="photo" if stage1 else backdrop,
        )
        Path(path).write_bytes(sign_png(face, provenance, key))

    return save


def run(args: argparse.Namespace) -> int:
    """Generate faces; a bad input is reported and skipped, the others are still written."""
    from tqdm import tqdm

    from sketch2face.imaging import make_grid
    from sketch2face.pipeline import Sketch2Face

    paths = collect_inputs(args.sketches)
    if not paths:
        print("error: no sketch images given (folders were empty)", file=sys.stderr)
        return 1
    if args.candidates and args.sheet:
        print("error: --candidates writes its own grid; leave out --sheet", file=sys.stderr)
        return 2
    if not args.refine and (args.refiner or args.gfpgan_weights):
        print(
            "error: --no-refine turns the second stage off; leave out --refiner and "
            "--gfpgan-weights",
            file=sys.stderr,
        )
        return 2
    pipe = Sketch2Face.from_pretrained(
        args.checkpoint,
        device=args.device,
        # stage one alone loads no refiner at all
        refiner=args.refiner if args.refine else "none",
        gfpgan_weights=args.gfpgan_weights,
        backend=args.backend,
    )
    attributes = {"skin": args.skin, "hair_color": args.hair_color, "gender": args.gender}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_png = face_writer(
        pipe.model_version,
        args.checkpoint,
        args.key_dir,
        refiner=pipe.refiner if args.refine else None,
        backdrop=args.backdrop,
    )
    if args.candidates:
        return _run_candidates(
            pipe,
            paths,
            out_dir,
            args.candidates,
            attributes,
            args.seed,
            save_png,
            args.refine,
            args.backdrop,
        )
    failures = 0
    rows = []
    timings = {"prepare": 0.0, "generate": 0.0, "refine": 0.0}
    notices: set[str] = set()
    for path, name in tqdm(
        list(zip(paths, output_names(paths))), desc="generate", disable=len(paths) < 2
    ):
        image = load_sketch_or_report(path)
        if image is None:
            failures += 1
            continue
        result = pipe(
            image,
            refine=args.refine,
            seed=args.seed,
            attributes=attributes,
            backdrop=args.backdrop,
        )
        for key, value in result.timings_ms.items():
            timings[key] = timings.get(key, 0.0) + value
        notices.update(result.notices)
        # the face: refined when it was, on the studio backdrop when asked
        save_png(result.shown(0), out_dir / f"{name}.png")
        row = [result.inputs[0], result.faces[0]]
        if result.refined[0] is not None or result.studio:
            # kept for provenance
            save_png(result.faces[0], out_dir / f"{name}_stage1.png", stage1=True)
        if result.refined[0] is not None:
            row.append(result.refined[0])
        if result.studio:
            row.append(result.studio[0])
        rows.append(row)
    for notice in sorted(notices):
        print(f"notice: {notice}", file=sys.stderr)
    if args.sheet and rows:
        from sketch2face.imaging import save_png as save_sheet  # holds the sketch: not signed

        save_sheet(make_grid(rows), args.sheet)
        print(f"comparison sheet: {args.sheet}")
    n_ok = len(rows)
    per = {k: v / max(n_ok, 1) for k, v in timings.items() if v}
    stages = pipe.model_version + (
        f" + {pipe.refiner_version}" if args.refine and pipe.refiner_version else ", stage one only"
    )
    print(
        f"wrote {n_ok} face(s) to {out_dir} ({stages}); mean ms per image: "
        + ", ".join(f"{k} {v:.0f}" for k, v in per.items())
    )
    if failures:
        print(f"{failures} input(s) could not be read", file=sys.stderr)
    return 1 if failures else 0


def _run_candidates(
    pipe: Any,
    paths: list[Path],
    out_dir: Path,
    n: int,
    attributes: dict[str, str | None],
    rng_seed: int | None,
    save_png: Callable[..., None],
    refine: bool = True,
    backdrop: str = "photo",
) -> int:
    """``--candidates N``: N candidate PNGs (refined unless ``refine`` is False, on ``backdrop``;
    stage one's beside them), a numbered grid and a JSON of seeds/attributes per sketch; a bad
    input is reported and skipped."""
    from sketch2face.candidates import (
        CANDIDATES_NOTICE,
        candidate_grid,
        plan_candidates,
        render_candidates,
    )

    fixed = {k: v for k, v in attributes.items() if v}
    failures = 0
    for path, name in zip(paths, output_names(paths)):
        image = load_sketch_or_report(path)
        if image is None:
            failures += 1
            continue
        specs = plan_candidates(n, fixed, rng_seed, vary_attributes=pipe.supports_attributes)
        result = render_candidates(pipe, image, specs, refine=refine, backdrop=backdrop)
        rows = []
        for i, candidate in enumerate(result.candidates, start=1):
            file_name = f"{name}_candidate{i:02d}.png"
            save_png(candidate.shown, out_dir / file_name)
            row: dict[str, Any] = {
                "number": i,
                "file": file_name,
                "seed": candidate.seed,
                "attributes": dict(candidate.attributes),
                "refined": candidate.refined is not None,
            }
            if candidate.refined is not None or candidate.studio is not None:
                row["stage1_file"] = f"{name}_candidate{i:02d}_stage1.png"
                save_png(candidate.image, out_dir / row["stage1_file"], stage1=True)
            rows.append(row)
        grid_name = f"{name}_candidates_grid.png"
        save_png(candidate_grid([c.shown for c in result.candidates]), out_dir / grid_name)
        meta = {
            "sketch": str(path),
            "model_version": result.model_version,
            "refiner_version": result.refiner_version or None,
            "backdrop": backdrop,
            "fixed_attributes": fixed,
            "attributes_applied": result.attributes_applied,
            "rng_seed": rng_seed,
            "face_found": result.face_found,
            "notices": result.notices,
            "notice": CANDIDATES_NOTICE,
            "grid": grid_name,
            "candidates": rows,
        }
        (out_dir / f"{name}_candidates.json").write_text(json.dumps(meta, indent=2) + "\n")
        for notice in result.notices:
            print(f"notice: {notice}", file=sys.stderr)
        print(
            f"{path}: wrote {len(rows)} candidates and {grid_name} to {out_dir} "
            f"({result.timings_ms['per_candidate']:.0f} ms per candidate)"
        )
    if failures:
        print(f"{failures} input(s) could not be read", file=sys.stderr)
    return 1 if failures else 0
