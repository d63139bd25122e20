"""App factory, settings, secret key file and migrations."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sketch2face.errors import ConfigError
from sketch2face.web import create_app
from sketch2face.web.settings import WebSettings, ensure_secret_key_file


def test_refuses_to_start_without_secret_key_outside_debug(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SKETCH2FACE_SECRET_KEY"):
        create_app(WebSettings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/x.db"))


def test_cookie_flags_secure_outside_testing(tmp_path: Path, web_model_client: Any) -> None:
    app = create_app(
        WebSettings(
            data_dir=tmp_path, secret_key="k" * 32, database_url=f"sqlite:///{tmp_path}/x.db"
        ),
        model_client=web_model_client,
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    response = app.test_client().get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_settings_from_env_parses_types() -> None:
    env = {
        "SKETCH2FACE_SECRET_KEY": "s" * 20,
        "SKETCH2FACE_OPEN_SIGNUP": "true",
        "SKETCH2FACE_MAX_UPLOAD_BYTES": "1234",
        "SKETCH2FACE_STORAGE_URL": "s3://bucket/p",
        "SKETCH2FACE_MODEL_TIMEOUT_S": "2.5",
        "SKETCH2FACE_DATA_DIR": "/tmp/x",
    }
    s = WebSettings.from_env(env)
    assert s.open_signup is True and s.max_upload_bytes == 1234 and s.model_timeout_s == 2.5
    assert s.storage_url == "s3://bucket/p" and s.data_dir == Path("/tmp/x")
    assert s.resolved_database_url == "sqlite:////tmp/x/sketch2face.db"
    with pytest.raises(ConfigError, match="OPEN_SIGNUP"):
        WebSettings.from_env({"SKETCH2FACE_OPEN_SIGNUP": "maybe"})


def test_secret_key_file_is_private_and_stable(tmp_path: Path) -> None:
    key = ensure_secret_key_file(tmp_path / "inst")
    path = tmp_path / "inst" / "secret_key"
    assert len(key) >= 32
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret_key_file(tmp_path / "inst") == key
    assert [p.name for p in (tmp_path / "inst").iterdir()] == ["secret_key"]  # no temp files left


def test_migrations_from_scratch_match_models(fresh_database_url: str) -> None:
    """Upgrading an empty db gives exactly the models' schema (no pending autogenerate diff);
    a second upgrade is a no-op; downgrade removes everything."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from sketch2face.web.db import alembic_config, make_engine, upgrade_database
    from sketch2face.web.models import Base

    engine = make_engine(fresh_database_url)
    upgrade_database(engine)
    upgrade_database(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0001"
    with engine.begin() as conn:
        cfg = alembic_config(fresh_database_url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_healthz_does_not_load_model(client: Any) -> None:
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
