"""How different are the candidate faces? Candidate arrays vs plain seed variations (issue 12).

Usage:
    python benchmarks/bench_candidates.py [--sketches 20] [--n 6] [--checkpoint PATH]
        [--grid docs/images/candidate_grid.png] [--json out.json]

For each of ``--sketches`` FS2K **test** sketches (every k-th entry of ``anno_test.json``;
``$SKETCH2FACE_SHARED``/data/fs2k, default /work/shared) and the packaged model, four sets of
``--n`` faces are generated, each face by one pipeline call:

  candidates          ``plan_candidates(n)``: skin tone, hair colour and gender spread over their
                      scales, a different seed each (what "Generate candidates" makes)
  candidates, skin    the same with the skin tone fixed to "medium" (a witness who is sure of
                      the skin tone): hair colour, gender and seed still vary
  seed variations     the candidates' seeds without any attributes: what typing seeds by hand
                      gave before (the model chooses skin, hair and gender)
  next round          ``next_round`` of candidates 1 and 2 of the first array ("more like these")

and the **mean pairwise distance** of each set is printed: the mean absolute difference of two
faces' pixels (0..255, RGB, 256x256), averaged over all pairs of the set, then over sketches
(mean and standard deviation across sketches). Higher = more visibly different faces; the next
round should sit between the first array and the seed variations (it converges on the picks).
The time per candidate (one seeded generator pass, eager PyTorch, batch 1) is printed too.
``--grid PATH`` writes the candidate array of sketch number ``--grid-index`` (0-based) as the
numbered grid the app shows, and beside it ``<stem>_vs_seed_variations.jpg``: the prepared sketch
and the candidates in one row, the seed variations below, for looking at. The images in docs/
were made with ``--grid docs/images/candidate_grid.png --grid-index 12``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from sketch2face.candidates import (
    CandidateSpec,
    candidate_grid,
    mean_pairwise_distance,
    next_round,
    plan_candidates,
    render_candidates,
)
from sketch2face.imaging import make_grid, save_png
from sketch2face.pipeline import Sketch2Face

SHARED = Path(os.environ.get("SKETCH2FACE_SHARED", "/work/shared"))


def fs2k_test_sketches(count: int) -> list[Path]:
    """Every k-th sketch of the FS2K test split, ``count`` of them (deterministic)."""
    root = SHARED / "data" / "fs2k"
    entries = json.loads((root / "anno_test.json").read_text())
    step = max(len(entries) // count, 1)
    paths = []
    for entry in entries[::step]:
        group, number = entry["image_name"].replace("photo", "").split("/image")
        folder = root / "sketch" / f"sketch{group}"
        found = sorted(folder.glob(f"sketch{number}.*"))
        if found:
            paths.append(found[0])
        if len(paths) == count:
            break
    return paths


def _write_figures(grid_path: Path, model_input: np.ndarray, first: Any, plain: Any) -> None:
    """The numbered candidate grid, and sketch + candidates over seed variations (JPEG)."""
    from PIL import Image, ImageDraw

    faces = [c.image for c in first.candidates]
    save_png(candidate_grid(faces), grid_path)
    caption = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(caption).text(
        (128, 128),
        "seed variations\n(same seeds,\nno attributes)",
        fill=(40, 40, 40),
        anchor="mm",
        font_size=22,
    )
    rows = [[model_input, *faces], [np.asarray(caption), *[c.image for c in plain.candidates]]]
    figure = Image.fromarray(make_grid(rows))
    figure.save(grid_path.with_name(grid_path.stem + "_vs_seed_variations.jpg"), quality=88)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sketches", type=int, default=20)
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--checkpoint", default=None, help="default: the packaged model")
    parser.add_argument("--grid", default=None, help="write a candidate grid (PNG) here")
    parser.add_argument("--grid-index", type=int, default=0, help="which sketch's grid (0-based)")
    parser.add_argument("--json", default=None, help="write the figures as JSON")
    args = parser.parse_args()

    pipe = Sketch2Face.from_pretrained(args.checkpoint, device="cpu", backend="torch")
    sketches = fs2k_test_sketches(args.sketches)
    print(f"model {pipe.model_version}, {len(sketches)} FS2K test sketches, {args.n} faces per set")
    sets = ("candidates", "candidates, skin fixed", "seed variations", "next round of 1+2")
    scores: dict[str, list[float]] = {name: [] for name in sets}
    per_candidate_ms: list[float] = []
    started = time.perf_counter()
    for i, path in enumerate(sketches):
        model_input, _found = pipe.prepare(path)
        first_specs = plan_candidates(args.n, None, rng_seed=1000 + i)
        first = render_candidates(pipe, model_input, first_specs, prepared=True)
        per_candidate_ms.append(first.timings_ms["per_candidate"])
        skin = render_candidates(
            pipe,
            model_input,
            plan_candidates(args.n, {"skin": "medium"}, rng_seed=2000 + i),
            prepared=True,
        )
        seeds = [CandidateSpec(s.seed, {}) for s in first_specs]  # same seeds, no attributes
        plain = render_candidates(pipe, model_input, seeds, prepared=True)
        children = render_candidates(
            pipe,
            model_input,
            next_round(first.candidates[:2], args.n, rng_seed=3000 + i),
            prepared=True,
        )
        for name, result in zip(sets, (first, skin, plain, children)):
            scores[name].append(mean_pairwise_distance([c.image for c in result.candidates]))
        print(
            f"  {i + 1:2d}/{len(sketches)} {path.parent.name}/{path.name}: "
            + ", ".join(f"{name} {scores[name][-1]:.1f}" for name in sets),
            flush=True,
        )
        if i == args.grid_index and args.grid:
            _write_figures(Path(args.grid), model_input, first, plain)
            print(f"  wrote {args.grid} and its comparison figure (sketch: {path})")
            for k, c in enumerate(first.candidates, start=1):
                print(f"     {k}: seed {c.seed} {dict(c.attributes)}")
    print(
        f"\nmean pairwise distance (mean abs pixel difference, 0-255), over {len(sketches)} sketches:"
    )
    summary = {}
    for name in sets:
        values = scores[name]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[name] = {"mean": statistics.fmean(values), "sd": sd, "per_sketch": values}
        print(
            f"  {name:24s} {statistics.fmean(values):6.1f}  (sd {sd:.1f}, min {min(values):.1f}, max {max(values):.1f})"
        )
    ratio = summary["candidates"]["mean"] / max(summary["seed variations"]["mean"], 1e-9)
    print(f"  candidates / seed variations = {ratio:.1f}x")
    print(
        f"time per candidate: median {statistics.median(per_candidate_ms):.0f} ms "
        f"(eager PyTorch, batch 1, {os.cpu_count()} CPUs shared); total {time.perf_counter() - started:.0f} s"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "model": pipe.model_version,
                    "sketches": [str(p) for p in sketches],
                    "n": args.n,
                    "mean_pairwise_distance": summary,
                    "candidates_over_seed_variations": ratio,
                    "per_candidate_ms_median": statistics.median(per_candidate_ms),
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
