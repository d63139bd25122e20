"""Web latency with N concurrent users: POST /api/v1/generate through the whole stack.

Usage:
    python benchmarks/bench_web.py [--users 8] [--requests 5] [--checkpoint PATH | --random-ngf 32]
                                   [--refine] [--model-server] [--json out.json]

Starts the real app (SQLite + local store in a temp folder, rate limits off) on 127.0.0.1 with a
threaded server, creates one account + API token per user, warms the model up (first call loads
it; reported separately), then runs in ONE process, so the ratios are comparable on a noisy box:
  1. baseline: 1 user, sequential requests;
  2. N users, each sending requests back to back, model calls one by one (max_batch=1);
  3. the same with queued requests batched (max_batch=--max-batch, the app's default 8).
Reports p50/p95/max latency, throughput and the ratios between the runs. ``--model-server`` puts
``serve-model`` (its own threaded HTTP server) between web tier and model, as SKETCH2FACE_MODEL_URL
does. Without --checkpoint the packaged model is used; ``--random-ngf`` builds a randomly
initialised generator of that width instead (same compute as a trained one of that width).
Every figure depends on the machine: the JSON records CPU count, torch version and git SHA.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image


def sketch_png(seed: int) -> bytes:
    """A 512x512 line drawing (face oval, eyes, mouth) with a little jitter per request."""
    rng = np.random.default_rng(seed)
    img = np.full((512, 512, 3), 255, np.uint8)
    yy, xx = np.mgrid[:512, :512]
    ring = np.abs(((xx - 256) / 150.0) ** 2 + ((yy - 256) / 200.0) ** 2 - 1)
    img[ring < 0.02] = 20
    for cx in (200, 312):
        eye = np.abs(((xx - cx - rng.integers(-4, 5)) / 25.0) ** 2 + ((yy - 220) / 10.0) ** 2 - 1)
        img[eye < 0.1] = 30
    img[350:354, 210:302] = 30
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100])."""
    return float(np.percentile(np.asarray(values), q))


def summarise(latencies_s: list[float], wall_s: float) -> dict[str, float]:
    """Latency stats in ms and throughput."""
    ms = [x * 1000 for x in latencies_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "throughput_per_s": round(len(ms) / wall_s, 3),
    }


def build_checkpoint(ngf: int, folder: Path) -> str:
    """A randomly initialised generator checkpoint of width ``ngf`` (for timing only)."""
    from sketch2face.models.checkpoint import save_checkpoint
    from sketch2face.models.unet import GeneratorConfig, UNetGenerator

    cfg = GeneratorConfig(ngf=ngf)
    path = folder / f"random-ngf{ngf}.safetensors"
    save_checkpoint(path, generator=UNetGenerator(cfg), generator_config=cfg)
    return str(path)


def serve(app: Any) -> tuple[Any, str]:
    """Serve a WSGI app on 127.0.0.1:<random> in a daemon thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--requests", type=int, default=5, help="requests per user")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--random-ngf", type=int, default=None)
    parser.add_argument("--max-batch", type=int, default=8, help="batched run's max batch")
    parser.add_argument("--refine", action="store_true")
    parser.add_argument("--model-server", action="store_true")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    import logging

    import torch

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request access log
    from sketch2face.db.models import ApiToken
    from sketch2face.services.accounts import hash_api_token, new_api_token
    from sketch2face.serving.client import InProcessModelClient
    from sketch2face.serving.server import create_model_app
    from sketch2face.web import create_app
    from sketch2face.web.database import new_session
    from sketch2face.web.pages.auth import create_user
    from sketch2face.web.settings import WebSettings

    tmp = Path(tempfile.mkdtemp(prefix="bench_web_"))
    checkpoint = args.checkpoint
    if args.random_ngf:
        checkpoint = build_checkpoint(args.random_ngf, tmp)
    model = InProcessModelClient(checkpoint, args.device, max_batch=args.max_batch)
    servers = []
    settings = WebSettings(
        data_dir=tmp / "instance", secret_key="bench-" + "k" * 32, ratelimit_enabled=False
    )
    if args.model_server:
        model_srv, model_url = serve(create_model_app(model))
        servers.append(model_srv)
        settings = settings.replace(model_url=model_url)
        app = create_app(settings)
    else:
        app = create_app(settings, model_client=model)
    tokens = []
    with new_session(app) as session:
        for i in range(max(args.users, 1)):
            user = create_user(session, f"bench{i}", "bench password 123")
            session.flush()
            token = new_api_token()
            session.add(
                ApiToken(
                    user_id=user.id,
                    name="bench",
                    token_hash=hash_api_token(token),
                    prefix=token[:10],
                )
            )
            tokens.append(token)
        session.commit()
    web_srv, base = serve(app)
    servers.append(web_srv)
    payloads = [sketch_png(i) for i in range(16)]
    data = {"refine": "1" if args.refine else "0"}

    def call(user: int, i: int) -> float:
        started = time.perf_counter()
        response = requests.post(
            f"{base}/api/v1/generate",
            headers={"Authorization": f"Bearer {tokens[user]}"},
            files={"sketch": ("s.png", payloads[(user * 7 + i) % len(payloads)], "image/png")},
            data=data,
            timeout=600,
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        return elapsed

    started = time.perf_counter()
    call(0, 0)  # loads the model
    first_call_s = time.perf_counter() - started
    call(0, 1)

    def run(users: int) -> dict[str, float]:
        lat: list[float] = []
        lock = threading.Lock()

        def one_user(u: int) -> None:
            for i in range(args.requests):
                t = call(u, i)
                with lock:
                    lat.append(t)

        wall = time.perf_counter()
        with ThreadPoolExecutor(users) as pool:
            list(pool.map(one_user, range(users)))
        return summarise(lat, time.perf_counter() - wall)

    model.max_batch = 1
    single = run(1)
    one_by_one = run(args.users)
    model.max_batch = args.max_batch
    concurrent = run(args.users)
    for server in servers:
        server.shutdown()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        sha = ""
    report = {
        "config": {
            "users": args.users,
            "requests_per_user": args.requests,
            "refine": args.refine,
            "model_server": args.model_server,
            "checkpoint": checkpoint or "packaged default",
            "random_ngf": args.random_ngf,
            "model_version": model.describe().get("model_version"),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "git_sha": sha,
            "device": args.device or "auto",
        },
        "first_call_s_including_model_load": round(first_call_s, 2),
        "one_user": single,
        f"{args.users}_users_max_batch_1": one_by_one,
        f"{args.users}_users_max_batch_{args.max_batch}": concurrent,
        "p50_ratio_n_users_vs_1": round(concurrent["p50_ms"] / single["p50_ms"], 2),
        "p95_ratio_batched_vs_one_by_one": round(concurrent["p95_ms"] / one_by_one["p95_ms"], 2),
        "throughput_ratio_batched_vs_one_by_one": round(
            concurrent["throughput_per_s"] / one_by_one["throughput_per_s"], 2
        ),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
