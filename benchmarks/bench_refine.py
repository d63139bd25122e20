"""GFPGAN refinement cost per face on CPU: eager fp32 per thread count, onnxruntime if it exports.

Usage:
    python benchmarks/bench_refine.py [--iters 1] [--threads 1,2] [--no-onnx] [--no-flops] [--json out.json]

Optional and slow (~10 s per 512x512 forward on a 2-core AVX2 CPU): keep --iters at 1 or 2.
The network is spandrel's GFPGANv1Clean with the official v1.3/v1.4 constructor arguments
(out_size 512, channel multiplier 2, 8-layer style MLP, SFT half), RANDOMLY INITIALISED (seed 0):
the compute is that of the real weights, the pixels are not. Measured, in one process:
  1. the network alone (``GFPGANRefiner.restore_aligned`` on a 512 crop), torch eager fp32, per
     thread count (torch's default first = the baseline);
  2. the whole ``GFPGANRefiner.refine_detailed`` on a 256 face (dlib landmarks, similarity warp,
     network, paste-back), default threads;
  3. the network exported to ONNX (TorchScript exporter, opset 17, fixed noise) under
     onnxruntime (ORT_ENABLE_ALL) per thread count, with parity vs eager (uint8 levels, SSIM) --
     or the export error, if the StyleGAN2 modulated convolutions do not export;
  4. the network's FLOPs (torch.utils.flop_counter), hence the GFLOP/s achieved and the GFLOP/s a
     1.5 s/face target would need.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
import traceback
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from sketch2face.imaging import load_image, tensor_to_u8, u8_to_tensor
from sketch2face.refine.gfpgan import OFFICIAL_V14_KWARGS

SHARED = Path(os.environ.get("SKETCH2FACE_SHARED", "/work/shared"))
FACE = SHARED / "data/fixtures/ffhq_gfpgan_test/00000000.png"
TARGET_S = 1.5


class FixedNoise(torch.nn.Module):
    """``network(x) -> image``: the call GFPGANRefiner makes, as a plain single-output module."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x, return_rgb=False, randomize_noise=False)[0]


def timed(fn, iters: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict[str, float]:
    med = statistics.median(times)
    return {"median_s": med, "max_s": max(times), "faces_per_s": 1.0 / med, "n": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--iters", type=int, default=1, help="timed forwards per variant (after one warm-up)"
    )
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false")
    parser.add_argument("--no-flops", dest="flops", action="store_false")
    parser.add_argument(
        "--no-full", dest="full", action="store_false", help="skip the whole refine_detailed call"
    )
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    default_threads = torch.get_num_threads()

    import onnxruntime as ort
    from spandrel.architectures.GFPGAN import GFPGAN

    from sketch2face.evaluation.metrics import ssim
    from sketch2face.refine.gfpgan import GFPGANRefiner

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "torch_default_threads": default_threads,
        "loadavg_start": os.getloadavg(),
        "weights": "random (seed 0), official v1.3/v1.4 architecture",
    }
    print(
        f"torch {torch.__version__} ({default_threads} threads), onnxruntime {ort.__version__}, "
        f"{os.cpu_count()} CPUs, load {info['loadavg_start']}",
        flush=True,
    )
    torch.manual_seed(0)
    network = GFPGAN(**OFFICIAL_V14_KWARGS).eval().requires_grad_(False)
    params_m = sum(p.numel() for p in network.parameters()) / 1e6
    refiner = GFPGANRefiner(network, device="cpu")
    face_512 = load_image(FACE)
    face_256 = cv2.resize(face_512, (256, 256), interpolation=cv2.INTER_AREA)

    rows: list[dict[str, object]] = []
    reference = refiner.restore_aligned(face_512)  # also the warm-up
    for t in sorted({default_threads, *threads}, key=lambda t: t != default_threads):
        torch.set_num_threads(t)
        times = timed(lambda: refiner.restore_aligned(face_512), args.iters)
        rows.append({"variant": "torch-eager-fp32 network", "threads": t, **summary(times)})
        print(f"  eager network threads={t}: {rows[-1]['median_s']:.2f} s", flush=True)
    torch.set_num_threads(default_threads)
    if args.full:
        times = timed(lambda: refiner.refine_detailed(face_256), args.iters)
        detail = refiner.refine_detailed(face_256).timings_ms if args.iters > 1 else None
        rows.append(
            {
                "variant": "torch-eager-fp32 refine_detailed (align+net+paste)",
                "threads": default_threads,
                **summary(times),
                **({"parts_ms": detail} if detail else {}),
            }
        )
        print(f"  eager refine_detailed: {rows[-1]['median_s']:.2f} s", flush=True)

    onnx_result: dict[str, object] = {"attempted": args.onnx}
    if args.onnx:
        wrapped = FixedNoise(network).eval()
        x = u8_to_tensor(face_512).unsqueeze(0)
        buf = io.BytesIO()
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapped,
                    (x,),
                    buf,
                    dynamo=False,
                    opset_version=17,
                    input_names=["crop"],
                    output_names=["restored"],
                )
            onnx_result["export_s"] = time.perf_counter() - start
            onnx_result["model_mb"] = len(buf.getvalue()) / 2**20
            print(
                f"  ONNX export ok in {onnx_result['export_s']:.1f} s ({onnx_result['model_mb']:.0f} MB)",
                flush=True,
            )
        except Exception as exc:  # report, don't fail: this is what the benchmark is for
            onnx_result["export_error"] = (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            )
            onnx_result["traceback_tail"] = traceback.format_exc().splitlines()[-6:]
            print(f"  ONNX export FAILED: {onnx_result['export_error']}", flush=True)
        if "export_error" not in onnx_result:
            feeds = {"crop": x.numpy()}
            for t in threads:
                for spin in (True, False) if t > 1 else (True,):
                    options = ort.SessionOptions()
                    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    options.intra_op_num_threads = t
                    if not spin:
                        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    start = time.perf_counter()
                    session = ort.InferenceSession(
                        buf.getvalue(), options, providers=["CPUExecutionProvider"]
                    )
                    load_s = time.perf_counter() - start
                    (out,) = session.run(None, feeds)  # warm-up, and the parity sample
                    out_u8 = tensor_to_u8(torch.from_numpy(out[0]))
                    times = timed(lambda s=session: s.run(None, feeds), args.iters)
                    diff = np.abs(out_u8.astype(np.int16) - reference.astype(np.int16))
                    name = "onnxruntime-fp32 network" + ("" if spin else " (nospin)")
                    rows.append(
                        {
                            "variant": name,
                            "threads": t,
                            **summary(times),
                            "session_load_s": load_s,
                            "max_abs_u8": int(diff.max()),
                            "mean_abs_u8": float(diff.mean()),
                            "ssim": ssim(reference, out_u8),
                        }
                    )
                    print(
                        f"  {name} threads={t}: {rows[-1]['median_s']:.2f} s "
                        f"(max|d| {diff.max()}, mean|d| {diff.mean():.3f})",
                        flush=True,
                    )
                    del session

    flops = None
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            refiner.restore_aligned(face_512)
        flops = counter.get_total_flops()
    base = rows[0]["median_s"]
    for row in rows:
        row["speedup_vs_eager"] = base / row["median_s"]
        if flops:
            row["gflop_per_s"] = (
                flops / 1e9 / row["median_s"] if "network" in str(row["variant"]) else None
            )
    info["loadavg_end"] = os.getloadavg()

    print(
        f"\nGFPGANv1Clean 512x512 ({params_m:.1f}M params, random weights), per face, {args.iters} timed iter(s)"
    )
    print(
        f"{'variant':52s} {'thr':>3s} {'median':>8s} {'max':>8s} {'faces/s':>7s} {'x eager':>7s} {'GFLOP/s':>7s}"
    )
    for r in rows:
        gf = r.get("gflop_per_s")
        print(
            f"{r['variant']:52s} {r['threads']:3d} {r['median_s']:7.2f}s {r['max_s']:7.2f}s {r['faces_per_s']:7.3f} "
            f"{r['speedup_vs_eager']:7.2f} {gf if gf is None else round(gf, 1)!s:>7s}"
        )
    if "export_error" in onnx_result:
        print(f"ONNX export failed: {onnx_result['export_error']}")
    if flops:
        print(
            f"network: {flops / 1e9:.0f} GFLOP per face (FLOPs = 2 x MACs); {TARGET_S} s/face needs "
            f"{flops / 1e9 / TARGET_S:.0f} GFLOP/s sustained"
        )
    print(f"load average start {info['loadavg_start']}, end {info['loadavg_end']}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": info,
                    "params_m": params_m,
                    "gflop_per_face": flops / 1e9 if flops else None,
                    "iters": args.iters,
                    "rows": rows,
                    "onnx": onnx_result,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
