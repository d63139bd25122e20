"""Training throughput (images/s) of one pix2pix step, per precision / memory format / width,
and per recipe variant (decoder upsampling, face losses, training resolution).

Usage: python benchmarks/bench_train_step.py [--steps 4] [--batch 8] [--ngf 32,64] [--json out.json]
       python benchmarks/bench_train_step.py --recipes --ngf 32 --batch 4 --precisions fp32
All variants run in one process so the ratios are comparable on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from sketch2face.models.patchgan import DiscriminatorConfig
from sketch2face.models.unet import GeneratorConfig
from sketch2face.training.config import (
    DataConfig,
    LossConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
)
from sketch2face.training.trainer import PairTensors, Pix2PixTrainer

#: recipe variants of issue 11: (name, upsample, face losses on, training size px)
RECIPES = (
    ("pix2pix deconv 256", "deconv", False, 256),
    ("resize-conv 256", "resize", False, 256),
    ("resize-conv 256 + identity/perceptual", "resize", True, 256),
    ("resize-conv 128 + identity/perceptual", "resize", True, 128),
)


def measure(
    ngf: int,
    precision: str,
    channels_last: bool,
    batch: int,
    steps: int,
    device: str,
    *,
    upsample: str = "deconv",
    face_losses: bool = False,
    size_px: int = 256,
) -> dict[str, float]:
    rng = np.random.default_rng(0)
    n = batch * 2
    # a face chip covering the middle of the frame: cost does not depend on where it lies
    chip = np.array(
        [
            [150 / (0.6 * size_px), 0, -0.2 * size_px * 150 / (0.6 * size_px)],
            [0, 150 / (0.6 * size_px), -0.2 * size_px * 150 / (0.6 * size_px)],
        ],
        np.float32,
    )
    data = PairTensors(
        torch.from_numpy(rng.integers(0, 255, (n, size_px, size_px, 3), dtype=np.uint8)),
        torch.from_numpy(rng.integers(0, 255, (n, size_px, size_px, 3), dtype=np.uint8)),
        chip_matrices=torch.from_numpy(np.tile(chip, (n, 1, 1))),
        chip_valid=torch.ones(n, dtype=torch.bool),
    )
    weight = 1.0 if face_losses else 0.0
    cfg = TrainConfig(
        data=DataConfig(batch_size=batch, augment=False),
        generator=GeneratorConfig(ngf=ngf, depth=7, upsample=upsample),
        discriminator=DiscriminatorConfig(ndf=ngf),
        loss=LossConfig(identity=weight, face_perceptual=weight),
        runtime=RuntimeConfig(device=device, precision=precision, channels_last=channels_last),
        run=RunConfig(out_dir="/tmp/bench_train_step_unused", max_steps=10**9),
    )
    trainer = Pix2PixTrainer(cfg, data, show_progress=False)
    batch_t = trainer._batch(0)
    trainer.train_step(*batch_t)  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        trainer.train_step(*batch_t)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {
        "ngf": ngf,
        "precision": precision,
        "channels_last": channels_last,
        "upsample": upsample,
        "face_losses": face_losses,
        "size_px": size_px,
        "median_step_s": med,
        "images_per_s": batch / med,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--ngf", default="32,64")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default="")
    parser.add_argument(
        "--recipes", action="store_true", help="compare the issue-11 recipe variants instead"
    )
    args = parser.parse_args()
    rows = []
    if args.recipes:
        ngf, precision = int(args.ngf.split(",")[0]), args.precisions.split(",")[0]
        for name, upsample, face, size in RECIPES:
            rows.append(
                measure(
                    ngf,
                    precision,
                    True,
                    args.batch,
                    args.steps,
                    args.device,
                    upsample=upsample,
                    face_losses=face,
                    size_px=size,
                )
            )
            r = rows[-1]
            print(
                f"{name:40s} step={r['median_step_s'] * 1000:8.1f} ms  {r['images_per_s']:6.2f} img/s",
                flush=True,
            )
    for ngf in [int(x) for x in args.ngf.split(",")] if not args.recipes else []:
        for precision in args.precisions.split(","):
            for cl in (False, True):
                rows.append(measure(ngf, precision, cl, args.batch, args.steps, args.device))
                r = rows[-1]
                print(
                    f"ngf={r['ngf']:3d} {r['precision']:5s} channels_last={str(r['channels_last']):5s} "
                    f"step={r['median_step_s'] * 1000:8.1f} ms  {r['images_per_s']:6.2f} img/s",
                    flush=True,
                )
    base = rows[0]["images_per_s"]
    print("ratio to first row:", ", ".join(f"{r['images_per_s'] / base:.2f}" for r in rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "machine": platform.processor() or platform.machine(),
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "batch": args.batch,
                    "rows": rows,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
