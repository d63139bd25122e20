"""`sketch2face doctor` (issue 25 item 8): crash leftovers listed and, with --fix, removed; rows
whose images are missing and SQLite integrity reported."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from sketch2face.cli.main import main as cli_main

from .web_support import WebClient, generation_id_from


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_doctor_lists_and_fixes_crash_leftovers(
    app: Any,
    alice: WebClient,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sqlalchemy as sa

    from sketch2face.db.models import Generation
    from sketch2face.services import audit
    from sketch2face.web.database import new_session

    monkeypatch.setenv("SKETCH2FACE_DATABASE_URL", settings.database_url)
    argv = ["doctor", "--data-dir", str(settings.data_dir)]
    kept_id = generation_id_from(alice.generate())
    broken_id = generation_id_from(alice.generate())
    objects = Path(settings.resolved_storage_url)
    with new_session(app) as session:
        kept = session.get(Generation, kept_id)
        broken = session.get(Generation, broken_id)
        assert kept is not None and broken is not None
        kept_keys = list(kept.image_keys.values())
        broken_keys = set(broken.image_keys.values())
        missing_key = broken.face_key
        # a gallery search's query thumbnail: named only by its audit event
        audit.record(
            session,
            audit.GALLERY_SEARCH,
            None,
            query={"thumb_key": "gallery-searches/named.jpg"},
        )
        session.commit()
    assert cli_main(argv) == 0  # a clean instance
    assert "nothing to fix" in capsys.readouterr().out

    # what a kill -9 leaves: images stored for a row never committed, an atomic write's temp files
    orphan = objects / "generations" / "2026" / "deadbeef" / "sketch.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"\x89PNG orphan")
    orphan_thumb = objects / "gallery-searches" / "unnamed.jpg"
    named_thumb = objects / "gallery-searches" / "named.jpg"
    orphan_thumb.parent.mkdir(parents=True, exist_ok=True)
    orphan_thumb.write_bytes(b"jpeg")
    named_thumb.write_bytes(b"jpeg")
    temp = objects / Path(kept_keys[0]).parent / ".face.png.k2j3h4"
    temp.write_bytes(b"")
    young_temp = objects / Path(kept_keys[0]).parent / ".sketch.png.x9y8z7"
    young_temp.write_bytes(b"")
    for path in (orphan, orphan_thumb, named_thumb, temp):
        _age(path, 7200)
    (objects / missing_key).unlink()  # a row whose image is gone

    assert cli_main(argv) == 1
    out = capsys.readouterr().out
    assert "database integrity: ok" in out
    assert "orphan images (no row references them): 2" in out
    assert "generations/2026/deadbeef/sketch.png" in out and "gallery-searches/unnamed.jpg" in out
    assert "gallery-searches/named.jpg" not in out  # the audit log names it: kept
    assert "temporary files of interrupted writes: 2" in out
    assert f"generations {broken_id} face_key: {missing_key}" in out
    assert orphan.exists() and temp.exists()  # listing changes nothing

    assert cli_main([*argv, "--fix"]) == 1  # the missing image cannot be fixed, only reported
    out = capsys.readouterr().out
    assert "removed 3 files" in out
    assert "left 1 files younger than" in out
    assert not orphan.exists() and not orphan.parent.exists()  # and the folders it left empty
    assert not orphan_thumb.exists() and not temp.exists()
    assert young_temp.exists() and named_thumb.exists()
    assert all((objects / key).exists() for key in kept_keys)

    # once the row with the missing image is gone, only the young temp file is left
    with new_session(app) as session:
        session.execute(sa.delete(Generation).where(Generation.id == broken_id))
        session.commit()
    for key in broken_keys - {missing_key}:
        (objects / key).unlink()
    assert cli_main([*argv, "--fix", "--min-age", "0"]) == 0
    assert "removed 1 files" in capsys.readouterr().out
    assert not young_temp.exists()
    assert cli_main(argv) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_doctor_reports_a_damaged_sqlite_database(
    app: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    path = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:  # a row whose foreign key names nothing
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute(
            "INSERT INTO case_members (case_id, user_id, added_at) VALUES (999, 999, '2026-01-01')"
        )
    monkeypatch.setenv("SKETCH2FACE_DATABASE_URL", settings.database_url)
    assert cli_main(["doctor", "--data-dir", str(settings.data_dir)]) == 1
    out = capsys.readouterr().out
    assert "DATABASE INTEGRITY PROBLEMS" in out
    assert "case_members row" in out
