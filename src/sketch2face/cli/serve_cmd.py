"""``sketch2face serve``: the web app on one machine (SQLite + local files + packaged model).

Creates the data folder, a random secret key in it (mode 0600) on first run, upgrades the
database, then serves with waitress (``wsgi_server.py``: one process, threads: one model in
memory). waitress reads requests on its own thread and hands a worker thread only a complete one;
a client that has not sent its whole request within ``--client-timeout`` seconds is cut off.
"""

from __future__ import annotations

import argparse
import logging
import os
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
    parser.add_argument(
        "--refiner",
        default=None,
        metavar="PATH",
        help="refiner checkpoint, the second stage (default: SKETCH2FACE_REFINER, GFPGAN weights "
        "from SKETCH2FACE_GFPGAN_WEIGHTS, else the packaged refiner); 'none' turns it off",
    )
    parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    parser.add_argument(
        "--client-timeout",
        type=int,
        default=None,
        help="seconds a client has to send a whole request (and the longest an idle connection "
        "stays open) before it is cut off (default 30, or SKETCH2FACE_CLIENT_TIMEOUT_S)",
    )
    parser.add_argument(
        "--connection-limit",
        type=int,
        default=None,
        help="most open connections; more wait to be accepted "
        "(default 500, or SKETCH2FACE_CONNECTION_LIMIT)",
    )
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
    if getattr(args, "refiner", None):
        overrides["refiner"] = args.refiner
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
    from sketch2face.cli.wsgi_server import (
        DEFAULT_CONNECTION_LIMIT,
        DEFAULT_REQUEST_TIMEOUT_S,
        make_server,
    )

    server = make_server(
        app,
        args.host,
        args.port,
        threads=args.threads,
        request_timeout_s=_option(
            args, "client_timeout", "SKETCH2FACE_CLIENT_TIMEOUT_S", DEFAULT_REQUEST_TIMEOUT_S
        ),
        connection_limit=_option(
            args, "connection_limit", "SKETCH2FACE_CONNECTION_LIMIT", DEFAULT_CONNECTION_LIMIT
        ),
        max_request_body_size=_largest_body(app),
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def _largest_body(app) -> int:  # type: ignore[no-untyped-def]
    """Bytes waitress reads before answering 413 itself: twice the app's largest upload (the
    app answers 413 past ``MAX_CONTENT_LENGTH``; gallery enrolment has its own, larger limit)."""
    largest = int(app.config["MAX_CONTENT_LENGTH"])
    try:
        from sketch2face.web.gallery_search import gallery_web

        largest = max(largest, gallery_web(app).config.max_upload_bytes + 64 * 1024)
    except (KeyError, AttributeError):  # no gallery search in this app
        pass
    return 2 * largest


def _option(args: argparse.Namespace, name: str, env: str, default: int) -> int:
    """A positive whole number: the command-line option, else the environment, else ``default``."""
    value = getattr(args, name, None)
    if value is None:
        raw = os.environ.get(env, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            raise SystemExit(f"{env}={raw!r} is not a whole number") from None
    if value < 1:
        raise SystemExit(f"{env} (or --{name.replace('_', '-')}) must be at least 1, got {value}")
    return int(value)
