"""``sketch2face doctor``: what a crash can leave behind, and the database's own health (issue 25).

A generation (or candidate round, or gallery enrolment) stores its images *before* it commits the
row naming them, so a crash between the two leaves images that no row references (orphans), and
a crash inside an atomic write leaves its ``.``-prefixed temporary file (often zero bytes). Both
are invisible in the app. :func:`examine` lists them, checks the database (SQLite's
``PRAGMA integrity_check`` and ``foreign_key_check``) and every row's images, and lists case
numbers that looked alike before migration ``i25_case_number_keys``; :func:`fix` removes the
orphans and temporary files, never anything younger than ``min_age_s`` (the app may be between
storing an image and committing its row right now).

Referenced images: ``generations`` (sketch, face, refined), ``candidate_rounds`` (sketch, model
input), ``candidates`` (image), ``gallery_photos`` (photo, thumbnail), and the query thumbnails
under ``gallery-searches/``, which only the audit log names (``detail.query.thumb_key`` of
``gallery_search`` events, read in every event): kept while an audit event names them, an orphan otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sketch2face.db.engine import make_engine
from sketch2face.storage import open_store
from sketch2face.storage.local import LocalStore

#: table -> (id column, columns holding a storage key)
IMAGE_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "generations": ("id", ("sketch_key", "face_key", "refined_key")),
    "candidate_rounds": ("id", ("sketch_key", "input_key")),
    "candidates": ("id", ("image_key", "refined_key")),
    "gallery_photos": ("id", ("photo_key", "thumb_key")),
}
#: table -> (id column, keys of its ``details`` JSON holding a storage key or a list of them):
#: the studio-backdrop faces (issue 22 item 3) are named there, not in a column
DETAIL_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "generations": ("id", ("studio_key",)),
    "candidate_rounds": ("id", ("studio_keys",)),
}
#: what an audit event's detail names a stored query thumbnail by (``detail.query.thumb_key``;
#: gallery_search events today: every action is read, so a new one never loses its thumbnails)
THUMB_KEY = "thumb_key"
#: leftovers younger than this are not removed by default (a write may be under way)
DEFAULT_MIN_AGE_S = 3600


@dataclass(frozen=True)
class Leftover:
    """A file in the local store that nothing needs: an orphan image or a temporary file."""

    path: Path
    key: str
    size: int
    age_s: float


@dataclass(frozen=True)
class MissingImage:
    """A row that names an image the store does not have (or has as an empty file)."""

    table: str
    row_id: str
    column: str
    key: str
    empty: bool = False


@dataclass
class Report:
    """What :func:`examine` found."""

    store: str
    local: bool
    referenced: int = 0
    stored: int = 0
    orphans: list[Leftover] = field(default_factory=list)
    temp_files: list[Leftover] = field(default_factory=list)
    missing: list[MissingImage] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)
    lookalike_cases: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> bool:
        """Anything found at all."""
        return bool(
            self.orphans
            or self.temp_files
            or self.missing
            or self.integrity
            or self.lookalike_cases
        )


def examine(database_url: str, storage_url: str) -> Report:
    """Check the database and the image store; change nothing."""
    store = open_store(storage_url)
    report = Report(store=repr(store), local=isinstance(store, LocalStore))
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            report.integrity = _integrity(conn)
            referenced = _referenced_keys(conn, report)
            report.lookalike_cases = _lookalike_cases(conn)
    finally:
        engine.dispose()
    report.referenced = len({key for _, _, _, key in referenced})
    for table, row_id, column, key in referenced:
        if key.startswith(f"{_AUDIT}:"):
            continue
        try:
            exists = store.exists(key)
        except Exception as exc:  # a bad key or an unreachable store: say so, go on
            report.notes.append(f"cannot check {key!r} ({table} {row_id}): {exc}")
            continue
        if not exists:
            report.missing.append(MissingImage(table, row_id, column, key))
        elif isinstance(store, LocalStore) and (store.root / key).stat().st_size == 0:
            report.missing.append(MissingImage(table, row_id, column, key, empty=True))
    if not isinstance(store, LocalStore):
        report.notes.append(
            "the image store is not a local folder: orphans and temporary files are not listed "
            "(an S3 bucket's lifecycle rules can expire unreferenced objects)"
        )
        return report
    keys = {key.split(":", 1)[1] if key.startswith(f"{_AUDIT}:") else key for *_, key in referenced}
    now = time.time()
    for path in sorted(store.root.rglob("*")):
        if not path.is_file():
            continue
        stat = path.stat()
        key = path.relative_to(store.root).as_posix()
        leftover = Leftover(path, key, stat.st_size, max(0.0, now - stat.st_mtime))
        if path.name.startswith("."):  # an atomic write's temporary file (imaging.atomic_write)
            report.temp_files.append(leftover)
            continue
        report.stored += 1
        if key not in keys:
            report.orphans.append(leftover)
    return report


def fix(report: Report, *, min_age_s: float = DEFAULT_MIN_AGE_S) -> tuple[int, int, int]:
    """Remove the report's orphans and temporary files at least ``min_age_s`` old.

    Returns (files removed, bytes freed, files left because they are younger).
    """
    removed = freed = kept = 0
    for leftover in report.orphans + report.temp_files:
        if leftover.age_s < min_age_s:
            kept += 1
            continue
        try:
            leftover.path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
        freed += leftover.size
        _remove_empty_parents(
            leftover.path, leftover.path.parents[len(Path(leftover.key).parts) - 1]
        )
    return removed, freed, kept


_AUDIT = "audit"


def _remove_empty_parents(path: Path, root: Path) -> None:
    parent = path.parent
    while parent != root:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _integrity(conn: sa.Connection) -> list[str]:
    if conn.dialect.name != "sqlite":
        return []  # PostgreSQL checks its pages itself; a connection that works is the check
    found = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
    problems = [line for line in found if line != "ok"]
    problems += [
        f"foreign key: {table} row {rowid} names a missing {parent} row"
        for table, rowid, parent, _ in conn.exec_driver_sql("PRAGMA foreign_key_check")
    ]
    return problems


def _referenced_keys(conn: sa.Connection, report: Report) -> list[tuple[str, str, str, str]]:
    """(table, row id, column, key) for every image a row names; audit-named thumbnails as
    ``("audit_events", id, "detail", "audit:<key>")``."""
    tables = set(sa.inspect(conn).get_table_names())
    found: list[tuple[str, str, str, str]] = []
    for table, (id_column, columns) in IMAGE_COLUMNS.items():
        if table not in tables:
            report.notes.append(f"no table {table} (an older schema?)")
            continue
        rows = conn.execute(sa.text(f"SELECT {id_column}, {', '.join(columns)} FROM {table}"))
        for row_id, *keys in rows:
            found += [
                (table, str(row_id), column, key)
                for column, key in zip(columns, keys, strict=True)
                if key
            ]
    for table, (id_column, names) in DETAIL_KEYS.items():
        if table not in tables:
            continue
        rows = conn.execute(
            sa.select(sa.column(id_column), sa.column("details", sa.JSON))
            .select_from(sa.table(table))
            .where(sa.or_(*(sa.cast(sa.column("details"), sa.Text).like(f"%{n}%") for n in names)))
        )
        for row_id, details in rows:
            for name in names:
                value = details.get(name) if isinstance(details, dict) else None
                for key in value if isinstance(value, list) else [value]:
                    if isinstance(key, str) and key:
                        found.append((table, str(row_id), f"details.{name}", key))
    if "audit_events" in tables:
        events = sa.table(
            "audit_events", sa.column("id"), sa.column("action"), sa.column("detail", sa.JSON)
        )
        rows = conn.execute(
            sa.select(events.c.id, events.c.detail).where(
                sa.cast(events.c.detail, sa.Text).like(f"%{THUMB_KEY}%")
            )
        )
        for event_id, detail in rows:
            key = _thumb_key(detail)
            if key:
                found.append(("audit_events", str(event_id), "detail", f"{_AUDIT}:{key}"))
    return found


def _thumb_key(detail: Any) -> str | None:
    if not isinstance(detail, dict):
        return None
    query = detail.get("query")
    key = query.get(THUMB_KEY) if isinstance(query, dict) else None
    return key if isinstance(key, str) and key else None


def _lookalike_cases(conn: sa.Connection) -> list[tuple[int, str]]:
    if "cases" not in sa.inspect(conn).get_table_names():
        return []
    columns = {c["name"] for c in sa.inspect(conn).get_columns("cases")}
    if "number_key" not in columns:
        return []
    rows = conn.execute(
        sa.text("SELECT id, number FROM cases WHERE number_key IS NULL ORDER BY id")
    )
    return [(int(case_id), str(number)) for case_id, number in rows]
