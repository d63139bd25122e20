"""The database engine (SQLite or PostgreSQL) and the Alembic upgrade to the packaged migrations.

The web app binds an engine per app and a session per request in ``web/database.py``; the CLI
and the benchmarks use :func:`make_engine` and :func:`upgrade_database` directly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sketch2face.errors import ConfigError
from sketch2face.private_files import create_private_file, make_private_dirs, warn_if_shared

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> sa.Engine:
    """Create an engine; SQLite gets foreign keys on and a busy timeout for threaded servers."""
    kwargs: dict[str, Any] = {"future": True, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if url.startswith("sqlite:///") and url not in ("sqlite://", "sqlite:///:memory:"):
            _private_sqlite_file(Path(url.removeprefix("sqlite:///").split("?", 1)[0]))
    try:
        engine = sa.create_engine(url, **kwargs)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(
            f"cannot use database URL {engine_safe(url)}: {exc}; for PostgreSQL use "
            "postgresql+psycopg://user:pass@host/db and `pip install 'sketch2face[postgres]'`."
        ) from exc
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
            cursor.close()

    return engine


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (in a 0700 folder) before SQLite does, which would make it
    0644; SQLite gives its -wal and -shm files the database file's mode."""
    make_private_dirs(path.parent)
    if not create_private_file(path):
        warn_if_shared(path)


def engine_safe(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"


def alembic_config(url: str) -> Any:
    """An Alembic ``Config`` pointing at the packaged migrations and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_database(engine: sa.Engine) -> None:
    """Run ``alembic upgrade head`` on ``engine``.

    On PostgreSQL an advisory lock serialises concurrent upgrades (several gunicorn workers
    starting at once); SQLite's own write lock does the same there.
    """
    from alembic import command

    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7243129)"))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    log.info("database %s is at the latest schema", engine_safe(str(engine.url)))
