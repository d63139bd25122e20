"""Run schemathesis against the web API, every check, with a fixed seed and a bounded run (CI).

Starts the real app (packaged model, in-process) on 127.0.0.1 at a free port with a fresh database
(SQLite in a temporary folder, or a private PostgreSQL schema) and image folder, makes one
investigator account and API token, and runs
``st run <app>/api/v1/openapi.json --checks all`` against it. The exit status is schemathesis'.

    .venv/bin/python scripts/schemathesis_api.py                      # SQLite
    .venv/bin/python scripts/schemathesis_api.py --max-examples 200 --seed 7
    .venv/bin/python scripts/schemathesis_api.py \
        --database-url "$(cat test-artifacts/ci_services/postgres_url)"  # as in .ci/run

A schema cannot say "a decodable face sketch", so ``schemathesis_hooks.py`` (beside this script)
sends a real sketch wherever schemathesis generated binary bytes for it. The generation rate
limit is raised for the run: the limit has its own tests, and fuzzing would only measure it.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def _private_database(url: str | None) -> Iterator[str | None]:
    """``url`` as given; for PostgreSQL, a fresh schema in that database, dropped afterwards."""
    if url is None or not url.startswith("postgresql"):
        yield url
        return
    import sqlalchemy as sa

    schema = f"fuzz_{secrets.token_hex(6)}"
    admin = sa.create_engine(url, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        private = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield private.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261125, help="hypothesis seed (fixed)")
    parser.add_argument("--max-examples", type=int, default=25, help="test cases per operation")
    parser.add_argument(
        "--database-url",
        help="default: SQLite in the temporary folder; PostgreSQL: a fresh schema, dropped after",
    )
    parser.add_argument("--checkpoint", help="generator checkpoint (default: the packaged model)")
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=REPO_ROOT / "test-artifacts" / "schemathesis",
        help="JUnit report folder (default test-artifacts/schemathesis)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request

    from werkzeug.serving import make_server

    from sketch2face.serving.client import InProcessModelClient
    from sketch2face.web import create_app
    from sketch2face.web.database import get_engine, new_session
    from sketch2face.web.pages.auth import create_user
    from sketch2face.web.security.tokens import create_token
    from sketch2face.web.settings import WebSettings

    with (
        tempfile.TemporaryDirectory(prefix="s2f-schemathesis-") as tmp,
        _private_database(args.database_url) as database_url,
    ):
        settings = WebSettings(
            data_dir=Path(tmp),
            secret_key=secrets.token_urlsafe(32),
            database_url=database_url,
            generate_rate_limit="100000 per minute",
        )
        app = create_app(settings, model_client=InProcessModelClient(args.checkpoint, "cpu"))
        with new_session(app) as session:
            user = create_user(session, "fuzzer", secrets.token_urlsafe(16))
            _row, token = create_token(session, user, "schemathesis", max_live=1)
            session.commit()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/api/v1/openapi.json"
        command = [
            str(Path(sys.executable).with_name("st")),
            "run",
            url,
            "--checks",
            "all",
            "--seed",
            str(args.seed),
            "--max-examples",
            str(args.max_examples),
            "--workers",
            "1",
            "--header",
            f"Authorization: Bearer {token}",
            "--request-timeout",
            "60",
            "--report",
            "junit",
            "--report-dir",
            str(args.report_dir.resolve()),
        ]
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        }
        print(f"schemathesis: {url} (seed {args.seed}, {args.max_examples} examples per operation)")
        try:
            # run in the temporary folder: schemathesis keeps a cache folder where it runs
            return subprocess.run(command, env=env, cwd=tmp, check=False).returncode
        finally:
            server.shutdown()
            get_engine(app).dispose()


if __name__ == "__main__":
    sys.exit(main())
