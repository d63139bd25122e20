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
from sketch2face.web.extensions import STORE
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
    response = app.test_client().get("/login", base_url="http://sketch2face.example")
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
    from alembic.script import ScriptDirectory

    from sketch2face.db.engine import alembic_config, make_engine, upgrade_database
    from sketch2face.db.models import Base

    engine = make_engine(fresh_database_url)
    upgrade_database(engine)
    upgrade_database(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        head = ScriptDirectory.from_config(alembic_config(fresh_database_url)).get_current_head()
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head
    with engine.begin() as conn:
        cfg = alembic_config(fresh_database_url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_healthz_does_not_load_model(client: Any) -> None:
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"


# ---------------------------------------------------------------- audit findings (issue 14)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_instance_data_is_private_from_creation(tmp_path: Path, web_model_client: Any) -> None:
    """Finding 6: the data folder, SQLite file and image folders are the owner's only."""
    old_umask = os.umask(0o022)  # the usual umask, which made 0644 files and 0755 folders
    try:
        data = tmp_path / "inst"
        app = create_app(
            WebSettings(data_dir=data, secret_key="k" * 32, testing=True),
            model_client=web_model_client,
        )
        app.extensions[STORE].put("generations/1/abc/face.png", b"png")
        ensure_secret_key_file(data)
    finally:
        os.umask(old_umask)
    objects = data / "objects"
    folders = [
        data,
        objects,
        objects / "generations",
        objects / "generations" / "1",
        objects / "generations" / "1" / "abc",
    ]
    files = [objects / "generations" / "1" / "abc" / "face.png", data / "secret_key"]
    files += [p for p in data.iterdir() if p.name.startswith("sketch2face.db")]  # db, -wal, -shm
    assert (data / "sketch2face.db") in files
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def _app(tmp_path: Path, model_client: Any, **overrides: Any) -> Any:
    """An app with production defaults (not testing, not debug)."""
    settings = WebSettings(
        data_dir=tmp_path, secret_key="k" * 32, database_url=f"sqlite:///{tmp_path}/x.db"
    )
    return create_app(settings.replace(**overrides), model_client=model_client)


def test_hsts_over_https_and_permissions_policy(tmp_path: Path, web_model_client: Any) -> None:
    """Finding 7: HSTS only when the request is HTTPS (directly, or a trusted proxy says so)."""
    direct = _app(tmp_path / "a", web_model_client).test_client()
    plain = direct.get("/login", base_url="http://sketch2face.example")
    assert "Strict-Transport-Security" not in plain.headers
    assert "camera=()" in plain.headers["Permissions-Policy"]
    assert "microphone=()" in plain.headers["Permissions-Policy"]
    tls = direct.get("/login", base_url="https://sketch2face.example")
    assert tls.headers["Strict-Transport-Security"] == "max-age=31536000"
    # a header alone proves nothing unless the proxy is trusted
    spoofed = direct.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers
    proxied = _app(tmp_path / "b", web_model_client, behind_proxy=True).test_client()
    assert (
        "Strict-Transport-Security"
        in proxied.get("/login", headers={"X-Forwarded-Proto": "https"}).headers
    )
    assert "Strict-Transport-Security" not in proxied.get("/login").headers


def _secure(app: Any, base_url: str, **headers: str) -> bool:
    """Whether a fresh browser's first page from ``base_url`` sets a Secure session cookie."""
    response = app.test_client().get("/login", base_url=base_url, headers=headers)
    return "; Secure" in response.headers["Set-Cookie"]


def test_secure_cookie_follows_the_request(tmp_path: Path, web_model_client: Any) -> None:
    """Finding 10: plain http://127.0.0.1 works for local development; HTTPS and every other host
    keep Secure; SKETCH2FACE_SECURE_COOKIES=1 forces it, =0 keeps it for HTTPS only."""
    auto = _app(tmp_path / "auto", web_model_client)
    assert not _secure(auto, "http://127.0.0.1:8000")
    assert not _secure(auto, "http://localhost:8000")
    assert not _secure(auto, "http://[::1]:8000")
    assert _secure(auto, "https://127.0.0.1:8000")
    assert _secure(auto, "http://sketch2face.example")
    assert _secure(auto, "http://10.0.0.5:8000")
    # an untrusted proxy in front of a loopback port: stay on the safe side
    assert _secure(auto, "http://127.0.0.1:8000", **{"X-Forwarded-Proto": "https"})
    forced = _app(tmp_path / "on", web_model_client, secure_cookies=True)
    assert _secure(forced, "http://127.0.0.1:8000")
    off = _app(tmp_path / "off", web_model_client, secure_cookies=False)
    assert not _secure(off, "http://sketch2face.example")
    assert _secure(off, "https://sketch2face.example")
