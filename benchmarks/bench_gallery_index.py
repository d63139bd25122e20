"""Gallery search at scale: exact numpy vs usearch HNSW vs faiss HNSW on synthetic face vectors.

Usage:
    python benchmarks/bench_gallery_index.py [--sizes 10000,100000,1000000] [--queries 300]
                                             [--backends exact,usearch,faiss] [--json out.json]
                                             [--faiss-ef 64,128,256,512]

For each gallery size and backend, in ONE process and with ONE thread (torch, BLAS, faiss and
usearch), reports the build time (wall and CPU), the memory the index adds (resident set growth while building,
and the size of its file), single-query latency (k=10, p50/p95/mean over --queries queries) and
recall@10 against the exact top 10.

Synthetic vectors mimic dlib's 128-D face descriptors: identities are Gaussian clusters, 5 photos
each, with a decaying variance spectrum, scaled so that distances match those measured on real
CelebA photos (same person ~0.47, different people ~0.88, norms ~1.5); queries are fresh photos of
enrolled people. Uniform random vectors would be a harder (and unrealistic) case for HNSW.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from sketch2face.gallery.index import backend_available, build_index  # noqa: E402

DIM = 128
PHOTOS_PER_PERSON = 5
#: target mean distances (measured on 40 CelebA photos with the gallery's dlib embedder)
SAME_PERSON = 0.47
DIFFERENT_PEOPLE = 0.88


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synthetic(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 128) gallery vectors and (n_queries, 128) queries, float32, face-descriptor-like."""
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(np.arange(1, DIM + 1))  # decaying per-axis scale
    spectrum /= np.sqrt((spectrum**2).sum())  # unit total variance across axes
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    mean = rng.standard_normal(DIM)
    mean *= 1.45 / np.linalg.norm(mean)
    # E|a - b|^2 = 2 * sigma^2 for two independent draws with total variance sigma^2
    sigma_between = np.sqrt(max(DIFFERENT_PEOPLE**2 - SAME_PERSON**2, 1e-6) / 2)
    sigma_within = SAME_PERSON / np.sqrt(2)
    people = -(-n // PHOTOS_PER_PERSON)
    centres = mean + (rng.standard_normal((people, DIM)) * spectrum * sigma_between) @ basis.T
    owner = np.repeat(np.arange(people), PHOTOS_PER_PERSON)[:n]
    vectors = np.empty((n, DIM), np.float32)
    for start in range(0, n, 200_000):  # in chunks: bounded temporary memory
        stop = min(start + 200_000, n)
        noise = rng.standard_normal((stop - start, DIM)) * spectrum * sigma_within
        vectors[start:stop] = centres[owner[start:stop]] + noise @ basis.T
    who = rng.integers(0, people, n_queries)
    noise = rng.standard_normal((n_queries, DIM)) * spectrum * sigma_within
    queries = (centres[who] + noise @ basis.T).astype(np.float32)
    return vectors, queries


def build(kind: str, vectors: np.ndarray) -> tuple[object, float, float, int]:
    """(index, build wall s, build CPU s, resident set growth in bytes)."""
    ids = np.arange(len(vectors), dtype=np.int64)
    gc.collect()
    before = rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    index = build_index(kind, ids, vectors, threads=1)
    return index, time.perf_counter() - t0, time.process_time() - c0, rss_bytes() - before


def measure(
    kind: str,
    label: str,
    built: tuple[object, float, float, int],
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray | None,
) -> dict:
    index, build_s, build_cpu_s, grown = built
    if kind != "exact":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"index.{kind}"
            index.save(path)  # type: ignore[attr-defined]
            file_bytes = path.stat().st_size
    else:
        file_bytes = vectors.nbytes  # the .vectors.npy snapshot the exact search maps
    index.search(queries[:5], 10)  # type: ignore[attr-defined]  # warm-up
    times = []
    found = []
    for q in queries:
        t = time.perf_counter()
        got, _ = index.search(q[None], 10)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - t) * 1e3)
        found.append(got[0])
    found_arr = np.stack(found)
    recall = 1.0
    if truth is not None:
        hits = [len(set(a) & set(b)) for a, b in zip(found_arr, truth)]
        recall = float(np.mean(hits) / 10)
    row = {
        "backend": label,
        "n": len(vectors),
        "build_s": round(build_s, 2),
        "build_cpu_s": round(build_cpu_s, 2),
        "rss_growth_mb": round(grown / 2**20, 1),
        "file_mb": round(file_bytes / 2**20, 1),
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "mean_ms": round(float(np.mean(times)), 3),
        "recall_at_10": recall,
    }
    return row | {"_found": found_arr}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--backends", default="exact,usearch,faiss")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--faiss-ef",
        default="",
        help="measure these faiss efSearch values on the one built index (e.g. 64,128,256,512)",
    )
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    missing = [b for b in backends if not backend_available(b)]
    if missing:
        print(f"skipping backends not installed: {', '.join(missing)}")
        backends = [b for b in backends if b not in missing]
    if "exact" in backends:
        backends.remove("exact")
    backends.insert(0, "exact")  # the reference for recall
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    rows = []
    print(
        f"{'n':>9} {'backend':15} {'build s':>8} {'build CPU s':>11} {'+RSS MB':>8} "
        f"{'file MB':>8} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>9}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        vectors, queries = synthetic(n, args.queries)
        truth = None
        for kind in backends:
            built = build(kind, vectors)
            variants: list[tuple[str, int | None]] = [(kind, None)]
            if kind == "faiss" and args.faiss_ef:
                variants = [(f"faiss ef={ef}", int(ef)) for ef in args.faiss_ef.split(",")]
            for label, ef in variants:
                if ef is not None:
                    built[0].index.hnsw.efSearch = ef  # type: ignore[attr-defined]
                row = measure(kind, label, built, vectors, queries, truth)
                found = row.pop("_found")
                if kind == "exact":
                    truth = found
                rows.append(row)
                print(
                    f"{n:>9} {label:15} {row['build_s']:>8} {row['build_cpu_s']:>11} "
                    f"{row['rss_growth_mb']:>8} {row['file_mb']:>8} {row['p50_ms']:>8} "
                    f"{row['p95_ms']:>8} {row['recall_at_10']:>9.3f}",
                    flush=True,
                )
            del built
            gc.collect()
        del vectors, queries
        gc.collect()
    if args.json:
        meta = {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "threads": 1,
        }
        args.json.write_text(json.dumps({"machine": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
