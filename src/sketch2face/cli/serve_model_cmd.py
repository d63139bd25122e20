"""``sketch2face serve-model``: the model as a separate HTTP service (see serving/server.py)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``serve-model`` sub-command."""
    parser = subparsers.add_parser(
        "serve-model",
        help="serve the model over HTTP for web tiers started with SKETCH2FACE_MODEL_URL",
        description="Expose the pipeline as POST /v1/generate (multipart sketch -> JSON with "
        "base64 PNGs). Set SKETCH2FACE_MODEL_TOKEN on both sides to require a bearer token.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8100, help="port (default 8100)")
    parser.add_argument(
        "--checkpoint", default=None, help="generator checkpoint (default: packaged model)"
    )
    parser.add_argument(
        "--refiner",
        default=None,
        metavar="PATH",
        help="refiner checkpoint, the second stage (default: SKETCH2FACE_REFINER, GFPGAN weights "
        "from SKETCH2FACE_GFPGAN_WEIGHTS, else the packaged refiner); 'none' turns it off",
    )
    parser.add_argument("--device", default=None, help="torch device (default: auto)")
    parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=8,
        help="most waiting requests run as one batch (default 8)",
    )
    parser.add_argument("--preload", action="store_true", help="load the model before serving")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import os

    from sketch2face.serving.client import InProcessModelClient
    from sketch2face.serving.server import create_model_app

    client = InProcessModelClient(
        args.checkpoint or os.environ.get("SKETCH2FACE_CHECKPOINT") or None,
        args.device or os.environ.get("SKETCH2FACE_DEVICE") or None,
        max_batch=args.max_batch,
        refiner=args.refiner,
    )
    if args.preload:
        client.pipeline()
    app = create_model_app(client)
    print(f"sketch2face model server on http://{args.host}:{args.port}/v1/generate")
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        from werkzeug.serving import run_simple

        run_simple(args.host, args.port, app, threaded=True)
        return 0

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", 1)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", args.threads)
            self.cfg.set("timeout", 300)
            # gunicorn >= 24 opens a control socket under ~/.gunicorn; one server needs none
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):  # type: ignore[no-untyped-def]
            return app

    _Server().run()
    return 0
