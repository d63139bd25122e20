"""Per-face time of stage one alone vs stage one + the project's refiner (issue 22 item 5).

Usage:
    python benchmarks/bench_two_stage.py [--faces 8] [--rounds 3] [--threads 2]
        [--backend auto] [--checkpoint PATH] [--refiner PATH] [--json out.json]

Goal: refined generation at most 2.0x stage one's time per face on a 2-core CPU.

One pipeline (``Sketch2Face.from_pretrained``: the packaged stage-one model, the CPU default
backend: onnxruntime), one face per call as the web app and ``generate`` make them, in ONE process.
Each sketch is generated with ``refine=False`` and with ``refine=True`` back to back (round-robin
over --rounds rounds after one untimed warm-up round), so both see the same load on a shared,
noisy machine. Two figures per mode, each the median over all calls:
  pipeline   ``pipe(sketch)`` on the raw sketch file: prepare (face detection, crop) + generator
             [+ refiner]: what a user waits for;
  networks   ``pipe(prepared_input, prepared=True)``: the generator [+ refiner] alone.
The ratio is given for the medians and "paired": per two-stage call, its total over the same call
without its refine part (``timings_ms``), the median over calls: both stages under the same load,
the steadier figure on a machine shared with training. (The fastest calls are no guide there: on a
loaded CPU the times are bimodal, 40 ms when a core is free, 600 ms when it is not.)
The refiner is the packaged one (``assets/refiner/refiner.safetensors``) when the file is there,
else --refiner, else a RANDOMLY INITIALISED refiner of the shipped architecture (stage one's
U-Net without the attribute input), which costs the same compute; the output says which.
Sketches: the FS2K test fixtures in ../shared (/work/shared/data/fixtures/fs2k_test), else
synthetic line drawings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sketch2face.backends import make_backend
from sketch2face.imaging import load_image
from sketch2face.models.unet import UNetGenerator
from sketch2face.pipeline import Sketch2Face
from sketch2face.refine import own
from sketch2face.refine.own import OwnRefiner
from sketch2face.runtime import set_threads

FIXTURES = Path(os.environ.get("SKETCH2FACE_SHARED", "/work/shared")) / "data/fixtures/fs2k_test"
GOAL_RATIO = 2.0


def sketches(n: int) -> list[np.ndarray]:
    """``n`` sketches: the FS2K test fixtures (cycled), else synthetic line drawings."""
    files = sorted(FIXTURES.glob("*sketch*")) if FIXTURES.is_dir() else []
    if files:
        return [load_image(files[i % len(files)]) for i in range(n)]
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        image = np.full((320, 256, 3), 255, np.uint8)
        for _ in range(40):
            y, x = rng.integers(40, 280), rng.integers(30, 226)
            image[y : y + 2, x : x + rng.integers(5, 30)] = 30
        out.append(image)
    return out


def load_pipeline(args: argparse.Namespace) -> tuple[Sketch2Face, str]:
    """The pipeline with the refiner to time, and a line saying which refiner that is."""
    path = Path(args.refiner) if args.refiner else Path(own.DEFAULT_REFINER)
    if path.is_file():
        pipe = Sketch2Face.from_pretrained(
            args.checkpoint, device="cpu", refiner=path, backend=args.backend
        )
        return pipe, f"refiner: {path} ({pipe.refiner_version})"
    pipe = Sketch2Face.from_pretrained(
        args.checkpoint, device="cpu", refiner="none", backend=args.backend
    )
    torch.manual_seed(0)
    config = dataclasses.replace(pipe.generator_config, attribute_dim=0)
    generator = UNetGenerator(config).eval()
    pipe.refiner = OwnRefiner(
        make_backend(generator, torch.device("cpu"), args.backend, seeded=False),
        version="random-init",
    )
    return pipe, (
        f"refiner: RANDOMLY INITIALISED (the packaged {path} is absent), same architecture as "
        f"stage one without attributes (ngf {config.ngf}, depth {config.depth}, upsample "
        f"{config.upsample}): the compute of the shipped refiner, not its pixels"
    )


def time_call(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=int, default=8, help="sketches per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--checkpoint", default=None, help="stage one (default: packaged)")
    parser.add_argument("--refiner", default=None, help="refiner checkpoint (default: packaged)")
    parser.add_argument("--json", default=None, help="also write the figures as JSON")
    args = parser.parse_args()

    set_threads(args.threads)
    pipe, refiner_line = load_pipeline(args)
    raw = sketches(args.faces)
    prepared = [pipe.prepare(s)[0] for s in raw]
    ms: dict[str, list[float]] = {k: [] for k in ("pipe1", "pipe2", "net1", "net2")}
    parts: dict[str, list[float]] = {"prepare": [], "generate": [], "refine": []}
    paired: list[float] = []
    for round_ in range(args.rounds + 1):
        for sketch, model_input in zip(raw, prepared, strict=True):
            times = {
                "pipe1": time_call(lambda s=sketch: pipe(s, refine=False)),
                "pipe2": time_call(lambda s=sketch: pipe(s, refine=True)),
                "net1": time_call(lambda x=model_input: pipe(x, prepared=True, refine=False)),
                "net2": time_call(lambda x=model_input: pipe(x, prepared=True, refine=True)),
            }
            if round_ == 0:
                continue  # warm-up: sessions, caches, the face detector
            for key, value in times.items():
                ms[key].append(value)
            result = pipe(sketch, refine=True)
            for key in parts:
                parts[key].append(float(result.timings_ms.get(key, 0.0)))
            total = sum(float(v) for v in result.timings_ms.values())
            paired.append(total / (total - float(result.timings_ms.get("refine", 0.0))))
    med = {k: statistics.median(v) for k, v in ms.items()}
    rows = [
        ("pipeline, median", med["pipe1"], med["pipe2"]),
        ("networks only, median", med["net1"], med["net2"]),
    ]
    load = os.getloadavg()[0]
    print(f"stage one: {pipe.model_version} ({pipe.backend.name} backend)")
    print(refiner_line)
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch threads {args.threads}, load average {load:.1f}; "
        f"{args.faces} sketches x {args.rounds} rounds, one face per call"
    )
    print(f"{'per face':26s} {'stage one':>11s} {'one + refiner':>14s} {'ratio':>7s}  goal")
    for label, one, two in rows:
        ratio = two / one
        verdict = "ok" if ratio <= GOAL_RATIO else "OVER"
        print(f"{label:26s} {one:8.0f} ms {two:11.0f} ms {ratio:6.2f}x  <= {GOAL_RATIO}x {verdict}")
    pair = statistics.median(paired)
    verdict = "ok" if pair <= GOAL_RATIO else "OVER"
    print(f"{'pipeline, paired':26s} {'':>11s} {'':>14s} {pair:6.2f}x  <= {GOAL_RATIO}x {verdict}")
    print(
        "two-stage call, mean parts: "
        + ", ".join(f"{k} {statistics.mean(v):.0f} ms" for k, v in parts.items())
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "stage_one": pipe.model_version,
                    "refiner": refiner_line,
                    "backend": pipe.backend.name,
                    "threads": args.threads,
                    "load_average": load,
                    "median_ms": med,
                    "ratio_pipeline": med["pipe2"] / med["pipe1"],
                    "ratio_networks": med["net2"] / med["net1"],
                    "ratio_paired": pair,
                    "mean_parts_ms": {k: statistics.mean(v) for k, v in parts.items()},
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
