"""`sketch2face gallery`: add (progress, report, resume), list, search --json, grants, remove."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from sketch2face.cli.main import main


@pytest.fixture
def photos(tmp_path: Path, shared_dir: Path) -> Path:
    """A folder: 4 photos of CelebA person 10000, one of 10001, and a text file."""
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    fixtures = sorted((shared_dir / "data/fixtures/celeba").glob("*.jpg"))
    for p in fixtures[:3]:
        shutil.copy(p, folder / p.name)
    shutil.copy(fixtures[3], folder / "more" / fixtures[3].name)
    shutil.copy(fixtures[5], folder / fixtures[5].name)
    (folder / "notes.txt").write_text("not a photo")
    return folder


@pytest.fixture
def query(shared_dir: Path) -> Path:
    return sorted((shared_dir / "data/fixtures/celeba").glob("*.jpg"))[4]  # 10000's 5th photo


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def audit_rows(data: Path, action: str) -> list[tuple[str, dict]]:
    from sketch2face.db.engine import make_engine
    from sketch2face.db.models import AuditEvent

    engine = make_engine(f"sqlite:///{data / 'sketch2face.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(AuditEvent.username, AuditEvent.detail)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        ).all()
    engine.dispose()
    return [(r[0], r[1]) for r in rows]


def test_add_list_search_remove(
    tmp_path: Path, photos: Path, query: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "instance"
    d = ("--data-dir", str(data))
    code, out, err = run(capsys, "gallery", "add", str(photos), "--gallery", "Mugshots", *d)
    assert code == 0, err
    assert "created gallery 'mugshots'" in err and "enrol mugshots" in err  # progress bar
    assert "6 files: 5 enrolled, 1 not an image" in out and "skipped notes.txt: not an image" in out
    assert "index: exact over 5 faces" in out
    # again: everything is a duplicate (an interrupted run resumes the same way)
    code, out, _ = run(
        capsys,
        "gallery",
        "add",
        str(photos),
        "--gallery",
        "mugshots",
        "--json",
        "--no-progress",
        *d,
    )
    report = json.loads(out)
    assert code == 0 and report["enrolled"] == 0 and report["skipped"]["duplicate"] == 5
    assert report["embedder"].startswith("dlib_resnet_v1@")

    code, out, _ = run(capsys, "gallery", "list", "--json", *d)
    assert [(g["name"], g["photos"], g["faces"]) for g in json.loads(out)] == [("mugshots", 5, 5)]

    code, out, err = run(
        capsys, "gallery", "search", str(query), "--gallery", "mugshots", "--top", "3", "--json", *d
    )
    assert code == 0, err
    hits = json.loads(out)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["file_name"].split("/")[-1].startswith("10000_")
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    assert all(set(h) == {"rank", "photo_id", "file_name", "distance", "score"} for h in hits)
    assert "caveat: A gallery match is an investigative lead" in err
    code, out, _ = run(capsys, "gallery", "search", str(query), "--gallery", "mugshots", *d)
    assert "rank  score  distance  file" in out and out.count("\n") == 2 + 5
    [(who, first), _] = audit_rows(data, "gallery_search")
    assert who.startswith("cli:") and first["query"]["file_name"] == str(query)
    assert [r["file_name"] for r in first["results"]] == [h["file_name"] for h in hits]

    code, _, err = run(capsys, "gallery", "search", str(query), "--gallery", "nobody", *d)
    assert code == 1 and "no gallery called 'nobody'" in err and "mugshots" in err
    assert "error" in audit_rows(data, "gallery_search")[-1][1]
    code, _, err = run(
        capsys, "gallery", "search", str(photos / "notes.txt"), "--gallery", "mugshots", *d
    )
    assert code == 1 and "error:" in err
    code, _, err = run(
        capsys, "gallery", "search", str(query), "--gallery", "mugshots", "--top", "0", *d
    )
    assert code == 1 and "top_k must be" in err

    name = sorted(p.name for p in photos.glob("10000_*.jpg"))[0]
    code, out, _ = run(capsys, "gallery", "remove", "mugshots", "--photo", name, "--yes", *d)
    assert code == 0 and f"removed {name}" in out
    code, _, err = run(capsys, "gallery", "remove", "mugshots", *d)  # no terminal, no --yes
    assert code == 1 and "--yes" in err
    code, out, _ = run(capsys, "gallery", "remove", "mugshots", "--yes", *d)
    assert code == 0 and "(4 photos)" in out
    code, out, _ = run(capsys, "gallery", "list", *d)
    assert "no galleries" in out


def test_zip_with_traversal_enrols_nothing(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "instance"
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(photos.glob("*.jpg")):
            zf.write(p, p.name)
        zf.writestr("../../outside.jpg", b"x")
    code, _, err = run(
        capsys, "gallery", "add", str(archive), "--gallery", "z", "--data-dir", str(data)
    )
    assert code == 1 and "outside the archive" in err
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for p in sorted(photos.glob("*.jpg")):
            zf.write(p, f"set/{p.name}")
    code, out, _ = run(
        capsys,
        "gallery",
        "add",
        str(good),
        "--gallery",
        "z",
        "--atomic",
        "--no-progress",
        "--data-dir",
        str(data),
    )
    assert code == 0 and "4 files: 4 enrolled" in out
    code, _, err = run(
        capsys,
        "gallery",
        "add",
        str(tmp_path / "missing"),
        "--gallery",
        "z",
        "--data-dir",
        str(data),
    )
    assert code == 1 and "no such folder or file" in err
    (tmp_path / "plain.txt").write_text("x")
    code, _, err = run(
        capsys,
        "gallery",
        "add",
        str(tmp_path / "plain.txt"),
        "--gallery",
        "z",
        "--data-dir",
        str(data),
    )
    assert code == 1 and "neither a folder nor a ZIP" in err


def test_grant_and_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "instance"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery staple\n"))
    assert (
        main(
            ["users", "create", "--username", "alice", "--password-stdin", "--data-dir", str(data)]
        )
        == 0
    )
    capsys.readouterr()
    code, out, _ = run(capsys, "gallery", "grant", "alice", "--data-dir", str(data))
    assert code == 0 and "'alice' may now search galleries" in out
    code, out, _ = run(capsys, "gallery", "grant", "alice", "--data-dir", str(data))
    assert "already" in out
    code, out, _ = run(capsys, "gallery", "revoke", "alice", "--data-dir", str(data))
    assert code == 0 and "may no longer search" in out
    code, _, err = run(capsys, "gallery", "grant", "nobody", "--data-dir", str(data))
    assert code == 1 and "no account 'nobody'" in err
    assert [d["target"] for _, d in audit_rows(data, "gallery_grant")] == ["alice"]
    assert [d["target"] for _, d in audit_rows(data, "gallery_revoke")] == ["alice"]
