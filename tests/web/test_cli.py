"""`sketch2face users create` and `sketch2face serve --upgrade-db-only`."""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import pytest

from sketch2face.cli.main import main


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def test_users_create_admin_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SKETCH2FACE_DATABASE_URL", raising=False)
    data = str(tmp_path / "inst")
    assert (
        _run(
            monkeypatch,
            [
                "users",
                "--data-dir",
                data,
                "create",
                "--admin",
                "--username",
                "Chief",
                "--password-stdin",
            ],
            "a long admin password\n",
        )
        == 0
    )
    assert "created admin account 'chief'" in capsys.readouterr().out
    assert (
        _run(
            monkeypatch,
            ["users", "--data-dir", data, "create", "--username", "chief", "--password-stdin"],
            "another long password\n",
        )
        == 1
    )
    assert "already taken" in capsys.readouterr().err
    assert (
        _run(
            monkeypatch,
            ["users", "--data-dir", data, "create", "--username", "x", "--password-stdin"],
            "short\n",
        )
        == 1
    )
    assert _run(monkeypatch, ["users", "list", "--data-dir", data]) == 0
    assert "chief\tadmin\tactive" in capsys.readouterr().out


def test_serve_upgrade_only_creates_db_and_private_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SKETCH2FACE_SECRET_KEY", "SKETCH2FACE_DATABASE_URL", "SKETCH2FACE_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "inst"
    assert main(["serve", "--data-dir", str(data), "--upgrade-db-only"]) == 0
    assert (data / "sketch2face.db").is_file() and (data / "objects").is_dir()
    if os.name == "posix":
        assert stat.S_IMODE((data / "secret_key").stat().st_mode) == 0o600


def test_users_set_password_revokes_tokens_and_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 3: an administrator's reset (CLI) revokes the account's API tokens too."""
    import sqlalchemy as sa

    from sketch2face.db.models import ApiToken, User
    from sketch2face.services.accounts import verify_password

    monkeypatch.delenv("SKETCH2FACE_DATABASE_URL", raising=False)
    data = tmp_path / "inst"
    create = ["users", "--data-dir", str(data), "create", "--username", "dana", "--password-stdin"]
    assert _run(monkeypatch, create, "a long first password\n") == 0
    engine = sa.create_engine(f"sqlite:///{data / 'sketch2face.db'}")
    with engine.begin() as conn:
        user_id, nonce = conn.execute(sa.select(User.id, User.session_nonce)).one()
        conn.execute(
            sa.insert(ApiToken).values(
                user_id=user_id, name="script", token_hash="0" * 64, prefix="s2f_x"
            )
        )
    capsys.readouterr()
    reset = [
        "users",
        "--data-dir",
        str(data),
        "set-password",
        "--username",
        "Dana",
        "--password-stdin",
    ]
    assert _run(monkeypatch, reset, "short\n") == 1
    assert "at least 10" in capsys.readouterr().err
    assert _run(monkeypatch, reset, "a long second password\n") == 0
    assert "1 API token revoked" in capsys.readouterr().out
    with engine.connect() as conn:
        row = conn.execute(sa.select(User.password_hash, User.session_nonce)).one()
        assert conn.scalar(sa.select(ApiToken.revoked_at)) is not None
    assert verify_password(row.password_hash, "a long second password")
    assert row.session_nonce != nonce  # every session of the account is signed out
    missing = [
        "users",
        "--data-dir",
        str(data),
        "set-password",
        "--username",
        "nobody",
        "--password-stdin",
    ]
    assert _run(monkeypatch, missing, "a long third password\n") == 1
    assert "no account 'nobody'" in capsys.readouterr().err
    engine.dispose()


def test_serve_on_an_empty_database_prints_the_first_admin_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: the printed command is the real CLI's: running it creates the administrator."""
    import shlex

    for name in ("SKETCH2FACE_SECRET_KEY", "SKETCH2FACE_DATABASE_URL", "SKETCH2FACE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "inst"
    assert main(["serve", "--data-dir", str(data), "--upgrade-db-only"]) == 0
    out = capsys.readouterr().out
    assert "No accounts yet" in out
    (line,) = [ln.strip() for ln in out.splitlines() if " users create --admin" in ln]
    argv = shlex.split(line)
    assert Path(argv[0]).name.startswith("sketch2face") and "NAME" in argv
    assert argv[argv.index("--data-dir") + 1] == str(data.resolve())
    argv = ["chief" if a == "NAME" else a for a in argv[1:]] + ["--password-stdin"]
    assert _run(monkeypatch, argv, "a long admin password\n") == 0
    assert "created admin account 'chief'" in capsys.readouterr().out
    assert main(["serve", "--data-dir", str(data), "--upgrade-db-only"]) == 0
    assert "No accounts yet" not in capsys.readouterr().out


def test_first_admin_command_names_this_environment_s_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sketch2face.web import first_start

    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "sketch2face").write_text("#!/bin/sh\n")
    monkeypatch.setattr(first_start.sys, "executable", str(bin_dir / "python"))
    assert first_start.create_admin_command(Path("instance")) == (
        ".venv/bin/sketch2face users create --admin --username NAME"
    )
    assert first_start.create_admin_command(tmp_path / "srv data").endswith(
        f"--data-dir '{tmp_path / 'srv data'}'"
    )


def test_users_list_prints_only_users(tmp_path: Path) -> None:
    """Issue 23 item 11: stdout holds one line per account; the database check and migrations
    write no progress lines to the terminal (a fresh data folder migrates on first use)."""
    import subprocess

    data = str(tmp_path / "instance")
    command = [sys.executable, "-m", "sketch2face.cli.main", "users", "--data-dir", data]
    created = subprocess.run(
        [*command, "create", "--admin", "--username", "chief", "--password-stdin"],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    listed = subprocess.run([*command, "list"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()] == [
        ["chief", "admin", "active"]
    ]
    assert "alembic" not in listed.stderr and "INFO" not in listed.stderr, listed.stderr
