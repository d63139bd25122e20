"""Training throughput (images/s) of one pix2pix step, per precision / memory format / width.

Usage: python benchmarks/bench_train_step.py [--steps 4] [--batch 8] [--ngf 32,64] [--json out.json]
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
from sketch2face.training.config import DataConfig, RunConfig, RuntimeConfig, TrainConfig
from sketch2face.training.trainer import PairTensors, Pix2PixTrainer


def measure(
    ngf: int, precision: str, channels_last: bool, batch: int, steps: int, device: str
) -> dict[str, float]:
    rng = np.random.default_rng(0)
    data = PairTensors.from_arrays(
        rng.integers(0, 255, (batch * 2, 256, 256, 3), dtype=np.uint8),
        rng.integers(0, 255, (batch * 2, 256, 256, 3), dtype=np.uint8),
    )
    cfg = TrainConfig(
        data=DataConfig(batch_size=batch, augment=False),
        generator=GeneratorConfig(ngf=ngf),
        discriminator=DiscriminatorConfig(ndf=64),
        runtime=RuntimeConfig(device=device, precision=precision, channels_last=channels_last),
        run=RunConfig(out_dir="/tmp/bench_train_step_unused", max_steps=10**9),
    )
    trainer = Pix2PixTrainer(cfg, data, show_progress=False)
    sketch, photo, _ = trainer._batch(0)
    trainer.train_step(sketch, photo)  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        trainer.train_step(sketch, photo)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {
        "ngf": ngf,
        "precision": precision,
        "channels_last": channels_last,
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
    args = parser.parse_args()
    rows = []
    for ngf in [int(x) for x in args.ngf.split(",")]:
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
