"""``sketch2face serve``: the web app on one machine (SQLite + local files + packaged model).

Creates the data folder, a random secret key in it (mode 0600) on first run, upgrades the
database, then serves with gunicorn (one worker, threads: one model in memory) or, where gunicorn
is unavailable (Windows), Werkzeug's threaded server.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``serve`` sub-command."""
    parser = subparsers.add_parser(
        "serve",
        help="run the web app (accounts, studio, history, API)",
        description="Run the sketch2face web app. Settings come from SKETCH2FACE_* environment "
        "variables (docs/web.md); the options below override them.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder for the SQLite db, images and secret key "
        "(default ./instance or SKETCH2FACE_DATA_DIR)",
    )
    parser.add_argument(
        "--checkpoint", default=None, help="generator checkpoint (default: packaged model)"
    )
    parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    parser.add_argument(
        "--debug", action="store_true", help="Flask debug mode (never in production)"
    )
    parser.add_argument(
        "--upgrade-db-only", action="store_true", help="upgrade the database schema, then exit"
    )
    parser.add_argument(
        "--rotate-signing-key",
        action="store_true",
        help="start although the data folder's provenance key is missing or not the one the "
        "database recorded: sign with it (or a new key) from now on, keeping the earlier public "
        "keys so older exports still verify (also SKETCH2FACE_ROTATE_SIGNING_KEY=1)",
    )
    parser.set_defaults(func=run)


def build_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """WebSettings from the environment plus the command-line options."""
    from sketch2face.web.settings import WebSettings, ensure_secret_key_file

    settings = WebSettings.from_env()
    overrides: dict[str, object] = {"debug": bool(args.debug)}
    if getattr(args, "rotate_signing_key", False):
        overrides["rotate_signing_key"] = True
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.checkpoint:
        overrides["checkpoint"] = args.checkpoint
    settings = settings.replace(**overrides)
    if not settings.secret_key:
        settings = settings.replace(secret_key=ensure_secret_key_file(settings.data_dir))
    if settings.secure_cookies is None and args.host in ("127.0.0.1", "localhost", "::1"):
        # browsers accept Secure cookies from http://localhost only; elsewhere use HTTPS in front
        settings = settings.replace(secure_cookies=True)
    return settings


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from sketch2face.db.engine import engine_safe
    from sketch2face.web import create_app
    from sketch2face.web.first_start import first_start_message

    settings = build_settings(args)
    if args.upgrade_db_only:
        from sketch2face.web.database import get_engine

        app = create_app(settings.replace(auto_migrate=True))
        print(f"database {engine_safe(settings.resolved_database_url)} is up to date")
        if message := first_start_message(app):
            print(message)
        get_engine(app).dispose()
        return 0
    app = create_app(settings)
    if settings.use_secure_cookies and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "session cookies are Secure: browsers keep them over HTTPS only (and from localhost). "
            "Serve behind a TLS proxy (SKETCH2FACE_BEHIND_PROXY=1), or on a trusted network set "
            "SKETCH2FACE_SECURE_COOKIES=0."
        )
    print(
        f"sketch2face web app on http://{args.host}:{args.port}/ "
        f"(data: {settings.data_dir.resolve()}, "
        f"database: {engine_safe(settings.resolved_database_url)})"
    )
    if message := first_start_message(app):  # an empty database: nobody could sign in
        print(message, flush=True)
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True, threaded=True, use_reloader=False)
        return 0
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        from werkzeug.serving import run_simple

        run_simple(args.host, args.port, app, threaded=True)
        return 0

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set(
                "bind",
                f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}",
            )
            self.cfg.set(
                "workers", 1
            )  # one model per process: scale with threads, or run serve-model
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", args.threads)
            self.cfg.set("timeout", 300)
            if (
                "control_socket_disable" in self.cfg.settings
            ):  # gunicorn >= 24: no ~/.gunicorn socket
                self.cfg.set("control_socket_disable", True)
            self.cfg.set("accesslog", "-")

        def load(self):  # type: ignore[no-untyped-def]
            return app

    _Server().run()
    return 0
