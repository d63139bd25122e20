"""Face descriptors for evaluation: one recogniser call per image vs one call per batch.

Usage:
    python benchmarks/bench_evaluate_embed.py [--images 48] [--rounds 3] [--json out.json]

``sketch2face evaluate`` embeds three images per pair (photo, generated face, sketch). The
evaluation ``FaceEmbedder`` finds dlib's landmarks image by image either way; this measures the
rest: running the PyTorch port of dlib's ResNet once per image (``embed`` in a loop, what evaluate
did before session 5) against once per batch (``embed_many``). Images: the FS2K and CelebA fixture
photos and sketches under ``$SKETCH2FACE_SHARED/data/fixtures`` (default /work/shared), repeated to
``--images``, at 256x256. Both variants run in ONE process, round-robin, after an untimed warm-up;
the table gives the median time per image, images/s and the ratio to the per-image baseline, and the
largest descriptor difference between the two (they must agree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sketch2face.evaluation.metrics import FaceEmbedder


def fixture_images(shared: Path, count: int) -> list[np.ndarray]:
    """``count`` 256x256 RGB uint8 images from the shared fixtures (cycled)."""
    paths = sorted((shared / "data" / "fixtures").rglob("*.jpg")) + sorted(
        (shared / "data" / "fixtures").rglob("*.png")
    )
    if not paths:
        raise SystemExit(f"no fixture images under {shared / 'data' / 'fixtures'}")
    images = [
        np.asarray(Image.open(p).convert("RGB").resize((256, 256), Image.BICUBIC)) for p in paths
    ]
    return [images[i % len(images)] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    shared = Path(os.environ.get("SKETCH2FACE_SHARED", "/work/shared"))
    images = fixture_images(shared, args.images)
    embedder = FaceEmbedder()
    embedder.embed_many(images[:4])  # warm-up: loads the network, first-call allocations

    def per_image() -> np.ndarray:
        return np.stack([embedder.embed(img).vector for img in images])

    def batched() -> np.ndarray:
        return embedder.embed_many(images)[0]

    variants = {"one call per image": per_image, "one call per batch": batched}
    times: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, np.ndarray] = {}
    load_start = os.getloadavg()
    for _ in range(args.rounds):
        for name, run in variants.items():
            t0 = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - t0)
    load_end = os.getloadavg()

    base = statistics.median(times["one call per image"])
    diff = float(np.nanmax(np.abs(outputs["one call per image"] - outputs["one call per batch"])))
    print(
        f"{len(images)} images, {args.rounds} rounds, load average {load_start[0]:.1f} -> {load_end[0]:.1f}"
    )
    print(f"{'variant':22s} {'ms/image':>9s} {'images/s':>9s} {'x per-image':>12s}")
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        row = {
            "variant": name,
            "ms_per_image": 1000 * median / len(images),
            "images_per_s": len(images) / median,
            "speedup": base / median,
        }
        rows.append(row)
        print(
            f"{name:22s} {row['ms_per_image']:9.1f} {row['images_per_s']:9.1f} {row['speedup']:12.2f}"
        )
    print(f"largest descriptor difference between the variants: {diff:.2e}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "max_abs_difference": diff,
                    "images": len(images),
                    "rounds": args.rounds,
                    "machine": {
                        "cpu": platform.processor() or platform.machine(),
                        "cores": os.cpu_count(),
                        "load_average_start": load_start,
                        "load_average_end": load_end,
                    },
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
