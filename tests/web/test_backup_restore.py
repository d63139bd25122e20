"""`sketch2face backup` / `restore` round trip (issue 25 item 3): an export signed before the
backup verifies VALID against the instance restored into a fresh data folder, on SQLite and
(when configured) PostgreSQL."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sketch2face.cli.main import main as cli_main
from sketch2face.provenance import SIGNING_KEY_FILENAME
from sketch2face.web import create_app
from sketch2face.web.database import get_engine

from .conftest import empty_postgres_schema, postgres_url
from .web_support import CREATED_APPS, WebClient, generation_id_from


@pytest.fixture
def target_database(database_url: str, tmp_path: Path) -> Iterator[str | None]:
    """Where the restore goes: None (the fresh folder's own SQLite), or a new PostgreSQL schema."""
    if database_url.startswith("sqlite"):
        yield None
        return
    base = postgres_url()
    assert base is not None
    with empty_postgres_schema(base, "r_") as url:
        yield url


def test_backup_and_restore_round_trip(
    app: Any,
    alice: WebClient,
    settings: Any,
    web_model_client: Any,
    target_database: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    gid = generation_id_from(alice.generate(notes="before the backup"))
    export = alice.get(f"/generations/{gid}/face.png?download=1").data
    export_path = tmp_path / "export.png"
    export_path.write_bytes(export)

    # the backup, taken while the app is up (its engine still holds connections)
    monkeypatch.setenv("SKETCH2FACE_DATABASE_URL", settings.database_url)
    backup_file = tmp_path / "backups" / "instance.tar.gz"
    assert (
        cli_main(["backup", "--out", str(backup_file), "--data-dir", str(settings.data_dir)]) == 0
    )
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert "generations 1" in out and "provenance_ed25519.pem" in out
    get_engine(app).dispose()

    # restore into a fresh instance folder (and database)
    fresh = tmp_path / "restored"
    if target_database is None:
        monkeypatch.delenv("SKETCH2FACE_DATABASE_URL")
    else:
        monkeypatch.setenv("SKETCH2FACE_DATABASE_URL", target_database)
    assert cli_main(["restore", str(backup_file), "--data-dir", str(fresh)]) == 0
    assert (fresh / SIGNING_KEY_FILENAME).is_file()
    # a second restore over it is refused, then allowed with --force
    capsys.readouterr()
    assert cli_main(["restore", str(backup_file), "--data-dir", str(fresh)]) == 1
    assert "already holds data" in capsys.readouterr().err
    assert cli_main(["restore", str(backup_file), "--data-dir", str(fresh), "--force"]) == 0

    # the export made before the backup verifies VALID against the restored instance
    capsys.readouterr()
    assert cli_main(["verify", str(export_path), "--key-dir", str(fresh)]) == 0
    assert capsys.readouterr().out.startswith("VALID:")

    # the restored app starts (its key matches the restored database) and serves the generation
    restored_settings = settings.replace(
        data_dir=fresh, database_url=target_database, storage_url=None
    )
    restored = create_app(restored_settings, model_client=web_model_client)
    CREATED_APPS.append(restored)
    c = WebClient(restored)
    assert c.login("alice").status_code == 302
    assert c.get(f"/generations/{gid}/face.png").status_code == 200
    assert "before the backup" in c.get(f"/generations/{gid}").get_data(as_text=True)
    page = c.post(
        "/verify",
        {"file": (open(export_path, "rb"), "face.png")},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert 'data-status="valid"' in page
    # new rows get new ids (PostgreSQL sequences were moved past the restored rows)
    assert generation_id_from(c.generate()) != gid


def test_restore_keys_only_brings_a_lost_key_back(
    app: Any,
    alice: WebClient,
    settings: Any,
    web_model_client: Any,
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    generation_id_from(alice.generate())
    monkeypatch.setenv("SKETCH2FACE_DATABASE_URL", settings.database_url)
    backup_file = tmp_path / "b.tar.gz"
    assert (
        cli_main(["backup", "--out", str(backup_file), "--data-dir", str(settings.data_dir)]) == 0
    )
    get_engine(app).dispose()
    key = (settings.data_dir / SIGNING_KEY_FILENAME).read_bytes()
    (settings.data_dir / SIGNING_KEY_FILENAME).unlink()
    argv = ["restore", str(backup_file), "--keys-only", "--data-dir", str(settings.data_dir)]
    assert cli_main(argv) == 0
    assert (settings.data_dir / SIGNING_KEY_FILENAME).read_bytes() == key
    CREATED_APPS.append(create_app(settings, model_client=web_model_client))  # starts again
