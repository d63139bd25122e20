"""Generator inference latency (batch 1) per engine, precision and thread count, plus parity.

Usage:
    python benchmarks/bench_generate.py [--iters 10] [--warmup 2] [--threads 1,2]
        [--models standard,lean128,lean256] [--no-int8] [--no-pipeline] [--json out.json]

Everything runs in ONE process and the variants of a network are timed round-robin (one call of
each per round, after an untimed one), so the ratios are comparable on a shared, noisy machine. Networks:
  standard  the paper's U-Net, GeneratorConfig(ngf=64, depth=8), 54M params, at 256x256
  lean128   the shipped lean generator, GeneratorConfig(ngf=32, depth=7), at its real model size
            (trained at 128 px: the pipeline area-resizes the 256 sketch to 128 and upsamples back)
  lean256   the lean generator run at 256x256 (what it would cost without the 128 px phase)
Engines per network: torch eager fp32 (the baseline, torch's default thread count, and each of
--threads), onnxruntime fp32 (ORT_ENABLE_ALL) per thread count (for >1 thread also with worker
spinning off, "nospin"), onnxruntime int8 (dynamic:
ConvInteger; static: QOperator per-channel u8 activations / s8 weights, calibrated on 3 fixture
sketches) per thread count. Weights are RANDOM (seeded): speed does not depend on them, and the
parity figures compare each engine with eager fp32 of the same weights on the real fixture
sketches (/work/shared/data/fixtures/fs2k_test, prepared by ``prepare_sketch``): max / mean abs
difference in uint8 levels and SSIM (``sketch2face.evaluation.metrics.ssim``) at model resolution.
"x eager" is the ratio to torch eager at torch's default thread count (what the pipeline ships),
"x same-thr" to torch eager at the same thread count. Finally the end-to-end ``Sketch2Face.__call__`` on one raw sketch file (prepare + generate) with
each backend. Times include the numpy <-> tensor conversions each backend does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sketch2face.export import OnnxBackend, export_onnx_bytes
from sketch2face.imaging import batch_to_u8
from sketch2face.models.unet import GeneratorConfig, UNetGenerator

FIXTURES = Path(os.environ.get("SKETCH2FACE_SHARED", "/work/shared")) / "data/fixtures/fs2k_test"
MODELS = {
    "standard": (GeneratorConfig(ngf=64, depth=8), 256),
    "lean128": (GeneratorConfig(ngf=32, depth=7), 128),
    "lean256": (GeneratorConfig(ngf=32, depth=7), 256),
}


def machine_info() -> dict[str, object]:
    """CPU model, core count, ISA flags, load, library versions."""
    import onnxruntime as ort

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("", "x86_64"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "isa": sorted(
            f
            for f in flags
            if f in {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_bf16"}
        ),
        "loadavg_start": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "nice": os.nice(0),
    }


def timed_interleaved(
    fns: list[Callable[[], object]], warmup: int, iters: int
) -> list[list[float]]:
    """Seconds per call of each fn, measured round-robin, so a burst of load from other processes
    hits every variant alike; ``warmup`` untimed rounds first. In each round every fn gets one
    untimed call before its timed one, so the previous variant's idle-spinning worker threads
    (OpenMP / onnxruntime) have stopped and its caches are warm: each variant is timed as if it
    ran alone."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(iters):
        for i, fn in enumerate(fns):
            fn()
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return times


def stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    med = statistics.median(ordered)
    return {"median_ms": med * 1e3, "p95_ms": p95 * 1e3, "images_per_s": 1.0 / med}


def fixture_sketches(size_px: int) -> tuple[list[Path], np.ndarray]:
    """The fixture sketches prepared as at inference, resized to ``size_px``: (N,3,S,S) in [-1,1]."""
    from sketch2face.data.preprocess import prepare_sketch
    from sketch2face.pipeline import Sketch2Face

    paths = sorted(FIXTURES.glob("*sketch*"))
    if not paths:
        raise SystemExit(f"no fixture sketches under {FIXTURES}")
    images = [Sketch2Face._resize(prepare_sketch(p).image_u8, size_px) for p in paths]
    batch = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
    return paths, batch


def parity(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict[str, float]:
    """uint8-level differences and SSIM between two lists of HxWx3 uint8 images."""
    from sketch2face.evaluation.metrics import ssim

    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(reference, candidate)]
    return {
        "max_abs_u8": int(max(int(d.max()) for d in diffs)),
        "mean_abs_u8": float(np.mean([d.mean() for d in diffs])),
        "ssim_min": float(min(ssim(a, b) for a, b in zip(reference, candidate))),
        "ssim_mean": float(np.mean([ssim(a, b) for a, b in zip(reference, candidate)])),
    }


def to_u8(batch: np.ndarray) -> list[np.ndarray]:
    return batch_to_u8(torch.from_numpy(np.ascontiguousarray(batch)))


def ort_session(model: bytes, threads: int, *, spin: bool = True) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    if not spin:  # idle worker threads sleep instead of busy-waiting (matters on a shared CPU)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def quantize(model: bytes, mode: str, calibration: np.ndarray) -> bytes:
    """int8 ONNX bytes: 'dynamic' (ConvInteger) or 'static' (QOperator, per-channel, calibrated)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"sketch": x[None]} for x in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(model)
        # symbolic shape inference cannot resolve the dynamic H/W through ConvTranspose: skip it
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        if mode == "dynamic":
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QUInt8)
        else:
            quantize_static(
                str(pre),
                str(out),
                Reader(),
                quant_format=QuantFormat.QOperator,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        return out.read_bytes()


def bench_model(
    key: str, args: argparse.Namespace, default_threads: int
) -> list[dict[str, object]]:
    cfg, size = MODELS[key]
    torch.manual_seed(0)
    generator = UNetGenerator(cfg).eval()
    params_m = generator.num_parameters() / 1e6
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    _, sketches = fixture_sketches(size)

    def torch_run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return generator(torch.from_numpy(batch)).numpy()

    torch.set_num_threads(default_threads)
    reference = to_u8(np.concatenate([torch_run(s[None]) for s in sketches]))
    model_fp32 = export_onnx_bytes(generator, size_px=size)
    engines: list[tuple[str, int, Callable[[np.ndarray], np.ndarray]]] = []
    for t in sorted({default_threads, *args.threads}):
        engines.append(("torch-eager-fp32", t, torch_run))
    models = {"ort-fp32": model_fp32}
    if args.int8:
        for mode in ("dynamic", "static"):
            t0 = time.perf_counter()
            models[f"ort-int8-{mode}"] = quantize(model_fp32, mode, sketches[:3])
            print(
                f"  [{key}] int8 {mode} quantisation took {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
    for name, model in models.items():
        for t in args.threads:
            session = ort_session(model, t)
            engines.append((name, t, lambda b, s=session: s.run(["face"], {"sketch": b})[0]))
            if name == "ort-fp32" and t > 1:
                session = ort_session(model, t, spin=False)
                engines.append(
                    ("ort-fp32-nospin", t, lambda b, s=session: s.run(["face"], {"sketch": b})[0])
                )

    def with_threads(name: str, threads: int, fn: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            torch.set_num_threads(threads if name.startswith("torch") else default_threads)
            return fn()

        return call

    all_times = timed_interleaved(
        [with_threads(name, t, lambda r=run: r(x)) for name, t, run in engines],
        args.warmup,
        args.iters,
    )
    rows: list[dict[str, object]] = []
    for (name, threads, run), times in zip(engines, all_times):
        torch.set_num_threads(threads if name.startswith("torch") else default_threads)
        outputs = to_u8(np.concatenate([run(s[None]) for s in sketches]))
        row = {
            "model": key,
            "ngf": cfg.ngf,
            "depth": cfg.depth,
            "size_px": size,
            "params_m": round(params_m, 2),
            "engine": name,
            "threads": threads,
            **stats(times),
            **parity(reference, outputs),
        }
        rows.append(row)
        print(f"  [{key}] {name:18s} threads={threads}  {row['median_ms']:8.1f} ms", flush=True)
    torch.set_num_threads(default_threads)
    eager = {r["threads"]: r["median_ms"] for r in rows if r["engine"] == "torch-eager-fp32"}
    for row in rows:
        # vs the shipped eager setting (torch's default threads), and vs eager at the same threads
        row["speedup_vs_eager"] = eager[default_threads] / row["median_ms"]
        row["speedup_vs_eager_same_threads"] = (
            eager.get(row["threads"], eager[default_threads]) / row["median_ms"]
        )
    return rows


def bench_pipeline(args: argparse.Namespace, default_threads: int) -> list[dict[str, object]]:
    """``Sketch2Face.__call__`` on one raw fixture sketch (prepare + generate), per backend."""
    from sketch2face.pipeline import Sketch2Face, TorchBackend

    sketch = sorted(FIXTURES.glob("*sketch*"))[0]
    rows: list[dict[str, object]] = []
    for key in args.models:
        cfg, size = MODELS[key]
        torch.manual_seed(0)
        generator = UNetGenerator(cfg).eval()
        model = export_onnx_bytes(generator, size_px=size)
        torch_backend = TorchBackend(generator, torch.device("cpu"))
        backends: list[tuple[str, int, object]] = [
            ("torch", t, torch_backend) for t in sorted({default_threads, *args.threads})
        ]
        for t in args.threads:
            backends.append(("onnx", t, OnnxBackend(model, threads=t)))
            if t > 1:
                backends.append(("onnx-nospin", t, OnnxBackend(model, threads=t, spin=False)))
        calls, parts_all = [], []
        for name, threads, backend in backends:
            pipe = Sketch2Face(backend, cfg, model_size_px=size)  # type: ignore[arg-type]
            parts: list[dict[str, float]] = []

            def call(
                p: Sketch2Face = pipe, out: list = parts, n: str = name, t: int = threads
            ) -> None:
                # the whole process at t threads: the pipeline's own torch ops (normalise, to uint8)
                # run around the onnx backend too
                torch.set_num_threads(t)
                out.append(p(str(sketch)).timings_ms)

            calls.append(call)
            parts_all.append(parts)
        all_times = timed_interleaved(calls, args.warmup, args.iters)
        for (name, threads, _backend), times, parts in zip(backends, all_times, parts_all):
            parts = parts[args.warmup :]
            row = {
                "model": key,
                "size_px": size,
                "backend": name,
                "threads": threads,
                **stats(times),
                "prepare_ms": statistics.median(p["prepare"] for p in parts),
                "generate_ms": statistics.median(p["generate"] for p in parts),
            }
            rows.append(row)
            print(
                f"  [pipeline {key}] {name:6s} threads={threads}  {row['median_ms']:8.1f} ms",
                flush=True,
            )
        torch.set_num_threads(default_threads)
        base = next(
            r["median_ms"]
            for r in rows[-len(backends) :]
            if r["backend"] == "torch" and r["threads"] == default_threads
        )
        for row in rows[-len(backends) :]:
            row["speedup_vs_torch"] = base / row["median_ms"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts to compare")
    parser.add_argument("--models", default="standard,lean128,lean256")
    parser.add_argument("--no-int8", dest="int8", action="store_false")
    parser.add_argument("--no-pipeline", dest="pipeline", action="store_false")
    parser.add_argument(
        "--no-generator", dest="generator", action="store_false", help="only the pipeline part"
    )
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.models = [m for m in args.models.split(",") if m]
    info = machine_info()
    default_threads = torch.get_num_threads()
    print(
        f"{info['cpu']} ({info['cpu_count']} CPUs, {' '.join(info['isa'])}), torch {info['torch']} "
        f"({default_threads} threads), onnxruntime {info['onnxruntime']}, load {info['loadavg_start']}",
        flush=True,
    )
    rows = (
        [row for key in args.models for row in bench_model(key, args, default_threads)]
        if args.generator
        else []
    )
    pipeline_rows = bench_pipeline(args, default_threads) if args.pipeline else []
    info["loadavg_end"] = os.getloadavg()

    if rows:
        print(
            "\nGenerator, batch 1 (random weights; parity vs torch eager fp32 on the fixture sketches)"
        )
        print(
            f"{'model':9s} {'px':>4s} {'engine':18s} {'thr':>3s} {'median':>8s} {'p95':>8s} {'img/s':>6s} "
            f"{'x eager':>7s} {'x same-thr':>10s} {'max|d|':>6s} {'mean|d|':>7s} {'SSIMmin':>7s}"
        )
    for r in rows:
        print(
            f"{r['model']:9s} {r['size_px']:4d} {r['engine']:18s} {r['threads']:3d} {r['median_ms']:6.1f}ms "
            f"{r['p95_ms']:6.1f}ms {r['images_per_s']:6.2f} {r['speedup_vs_eager']:7.2f} {r['speedup_vs_eager_same_threads']:10.2f} {r['max_abs_u8']:6d} "
            f"{r['mean_abs_u8']:7.3f} {r['ssim_min']:7.4f}"
        )
    if pipeline_rows:
        print("\nSketch2Face.__call__ on one raw sketch (prepare + generate)")
        print(
            f"{'model':9s} {'px':>4s} {'backend':11s} {'thr':>3s} {'median':>8s} {'p95':>8s} {'prepare':>8s} "
            f"{'generate':>8s} {'x torch':>7s}"
        )
        for r in pipeline_rows:
            print(
                f"{r['model']:9s} {r['size_px']:4d} {r['backend']:11s} {r['threads']:3d} {r['median_ms']:6.1f}ms "
                f"{r['p95_ms']:6.1f}ms {r['prepare_ms']:6.1f}ms {r['generate_ms']:6.1f}ms {r['speedup_vs_torch']:7.2f}"
            )
    print(f"load average start {info['loadavg_start']}, end {info['loadavg_end']}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": info,
                    "iters": args.iters,
                    "warmup": args.warmup,
                    "weights": "random (seed 0)",
                    "generator": rows,
                    "pipeline": pipeline_rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
