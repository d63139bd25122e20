"""Web fixtures: one app per test on SQLite and (when configured) PostgreSQL, the real pipeline.

PostgreSQL: set SKETCH2FACE_TEST_POSTGRES_URL (``postgresql+psycopg://user:pw@127.0.0.1/db``) or run
``scripts/ci_services.sh``, which writes the URL to test-artifacts/ci_services/postgres_url. Each
test then gets its own schema in that database (dropped afterwards). Without either, the
``postgres`` parameter is skipped with a reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from .web_support import CREATED_APPS, WebClient, make_app

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL_FILE = REPO_ROOT / "test-artifacts" / "ci_services" / "postgres_url"


def postgres_url() -> str | None:
    """The test PostgreSQL URL from the environment, else from scripts/ci_services.sh's file."""
    url = os.environ.get("SKETCH2FACE_TEST_POSTGRES_URL", "").strip()
    if not url and POSTGRES_URL_FILE.is_file():
        url = POSTGRES_URL_FILE.read_text().strip()
    return url or None


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """argon2 with minimal cost in tests (the code path is the same; only the parameters differ)."""
    from sketch2face.services import accounts as security

    original = security.hasher
    security.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    security.hasher = original


NO_POSTGRES = (
    "PostgreSQL not configured: set SKETCH2FACE_TEST_POSTGRES_URL or run scripts/ci_services.sh"
)
#: every table of the schema (PostgreSQL tests empty them all before each test)
TABLES = (
    "audit_events",
    "api_tokens",
    "generations",
    "sign_in_throttles",
    "users",
    "galleries",
    "gallery_photos",
    "gallery_embeddings",
    "gallery_search_grants",
    "cases",
    "case_members",
    "candidate_rounds",
    "candidates",
    "signing_keys",
)


@pytest.fixture(scope="session")
def _postgres_schema() -> Iterator[str]:
    """A private schema in the test PostgreSQL database, migrated once; dropped at the end."""
    base = postgres_url()
    if base is None:
        pytest.skip(NO_POSTGRES)
    import sqlalchemy as sa

    from sketch2face.db.engine import make_engine, upgrade_database

    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(base, poolclass=sa.NullPool)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"cannot reach the test PostgreSQL at {sa.make_url(base).host}: {exc}")
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    engine = make_engine(url_text)
    upgrade_database(engine)
    engine.dispose()
    try:
        yield url_text
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database: a copy of the SQLite template, or the emptied PostgreSQL schema.

    test_factory.py::test_migrations_* still runs the migrations from scratch on both.
    """
    if request.param == "sqlite":
        target = tmp_path / "web.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), target)
        return f"sqlite:///{target}"
    url = request.getfixturevalue("_postgres_schema")
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it at all (no tables), for migration tests."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip(NO_POSTGRES)
    with empty_postgres_schema(base, "f_") as url:
        yield url


@contextmanager
def empty_postgres_schema(base: str, prefix: str) -> Iterator[str]:
    """A new, empty schema in the PostgreSQL database at ``base``; its URL; dropped afterwards."""
    import sqlalchemy as sa

    schema = f"{prefix}{secrets.token_hex(6)}"
    admin = sa.create_engine(base, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            sa.make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def web_model_client(tiny_checkpoint: Path, tiny_refiner: Path) -> Any:
    """ONE in-process client over the real pipeline with a tiny random checkpoint and a tiny
    random refiner (both stages, as an installation with the packaged refiner runs), for all
    tests."""
    from sketch2face.serving.client import InProcessModelClient

    return InProcessModelClient(str(tiny_checkpoint), device="cpu", refiner=str(tiny_refiner))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Any:
    """Test settings: own data folder and database; limits small enough to test."""
    from sketch2face.web.settings import WebSettings

    return WebSettings(
        data_dir=tmp_path / "instance",
        secret_key="test-" + secrets.token_hex(16),
        database_url=database_url,
        testing=True,
        max_upload_bytes=2 * 1024 * 1024,
        max_image_pixels=4_000_000,
        generate_rate_limit="100 per minute",
        history_page_size=3,
    )


@pytest.fixture
def app(settings: Any, web_model_client: Any) -> Any:
    """A migrated app with users alice, bob (investigators) and root (admin)."""
    return make_app(settings, web_model_client)


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    """Close the database connections of every app a test made (no leaked connections)."""
    yield
    from sketch2face.web.database import get_engine

    while CREATED_APPS:
        get_engine(CREATED_APPS.pop()).dispose()


@pytest.fixture
def client(app: Any) -> WebClient:
    """An anonymous web client."""
    return WebClient(app)


@pytest.fixture
def alice(app: Any) -> WebClient:
    """A client signed in as alice (investigator)."""
    c = WebClient(app)
    assert c.login("alice").status_code == 302
    return c


@pytest.fixture
def bob(app: Any) -> WebClient:
    """A client signed in as bob (investigator)."""
    c = WebClient(app)
    assert c.login("bob").status_code == 302
    return c


@pytest.fixture
def root(app: Any) -> WebClient:
    """A client signed in as root (admin)."""
    c = WebClient(app)
    assert c.login("root").status_code == 302
    return c
