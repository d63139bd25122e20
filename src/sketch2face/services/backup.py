"""Backup and restore of a whole instance (issue 25): database, stored images and the keys.

One ``.tar.gz`` file (mode 0600: it holds the secret key and the signing key):

* ``database.sqlite``: SQLite, copied with SQLite's online backup API (a consistent snapshot while
  the app writes); or ``database.jsonl``: any other database (PostgreSQL), every table read in one
  REPEATABLE READ transaction (one snapshot), a header line per table and one JSON row per line;
* ``objects/...``: the local image store's files, copied *after* the database snapshot (the app
  stores images before it commits the row naming them, so every row of the snapshot has its
  images). An S3 store is left in place (it has its own versioning); the manifest says so;
* ``keys/``: ``secret_key``, ``provenance_ed25519.pem`` / ``.pub.pem`` and ``provenance_keys/``;
* ``manifest.json``: format, time, schema revision, row and object counts.

:func:`restore` refuses an instance that already holds data unless ``force``; it restores the
database at the backup's schema revision and then upgrades it to the current one.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sketch2face import __version__
from sketch2face.db.engine import alembic_config, make_engine
from sketch2face.db.models import utcnow
from sketch2face.errors import Sketch2FaceError
from sketch2face.private_files import make_private_dirs
from sketch2face.provenance.keys import (
    EARLIER_KEYS_DIRNAME,
    PUBLIC_KEY_FILENAME,
    SIGNING_KEY_FILENAME,
)
from sketch2face.storage import open_store
from sketch2face.storage.local import LocalStore

log = logging.getLogger(__name__)

FORMAT = "sketch2face-backup/1"
MANIFEST = "manifest.json"
DB_SQLITE = "database.sqlite"
DB_ROWS = "database.jsonl"
OBJECTS = "objects/"
KEYS = "keys/"
#: web.settings.SECRET_KEY_FILENAME (the web layer sits above this one)
SECRET_KEY_FILENAME = "secret_key"
KEY_FILES = (SECRET_KEY_FILENAME, SIGNING_KEY_FILENAME, PUBLIC_KEY_FILENAME)
#: tables whose rows make an instance "not empty" for restore
DATA_TABLES = ("users", "generations", "cases")


#: a table's column names and a function that yields its rows
Rows = tuple[list[str], Callable[[], Iterable[tuple[Any, ...]]]]


class BackupError(Sketch2FaceError):
    """A backup cannot be made or restored; the message says why and what to do."""


@dataclass(frozen=True)
class Instance:
    """Where an instance keeps its data (from the web settings)."""

    data_dir: Path
    database_url: str
    storage_url: str


@dataclass
class Summary:
    """What a backup holds or a restore put back."""

    revision: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- backup


def backup(instance: Instance, out: Path) -> Summary:
    """Write a backup of ``instance`` to ``out`` (written beside it, then renamed into place)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    partial = out.with_name(f".{out.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                with tempfile.TemporaryDirectory(prefix="s2f-backup-") as tmp:
                    _backup_database(instance.database_url, tar, Path(tmp), summary)
                _backup_objects(instance.storage_url, tar, summary)
                _backup_keys(instance.data_dir, tar, summary)
                manifest = {
                    "format": FORMAT,
                    "software_version": __version__,
                    "created_at": utcnow().isoformat(),
                    "database": {"revision": summary.revision, "rows": summary.rows},
                    "objects": summary.objects,
                    "keys": summary.keys,
                    "notes": summary.notes,
                }
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return summary


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _backup_database(url: str, tar: tarfile.TarFile, tmp: Path, summary: Summary) -> None:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        source = Path(parsed.database or "")
        if not parsed.database or not source.is_file():
            raise BackupError(f"no SQLite database at {source}; check --data-dir / DATABASE_URL.")
        copy = tmp / DB_SQLITE
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)  # the online backup API: one consistent snapshot
            summary.revision = _sqlite_revision(dst)
            for (name,) in dst.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ):
                summary.rows[name] = dst.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        finally:
            dst.close()
            src.close()
        tar.add(copy, DB_SQLITE)
        return
    engine = make_engine(url)
    rows_file = tmp / DB_ROWS
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            with conn.begin(), rows_file.open("w", encoding="utf-8") as fh:
                meta = sa.MetaData()
                meta.reflect(conn)
                for table in sorted(meta.tables.values(), key=lambda t: t.name):
                    columns = [c.name for c in table.columns]
                    fh.write(json.dumps({"table": table.name, "columns": columns}) + "\n")
                    count = 0
                    for row in conn.execute(sa.select(table)):
                        fh.write(json.dumps([_encode(v) for v in row]) + "\n")
                        count += 1
                    summary.rows[table.name] = count
                if "alembic_version" in meta.tables:
                    summary.revision = conn.scalar(
                        sa.text("SELECT version_num FROM alembic_version")
                    )
    finally:
        engine.dispose()
    tar.add(rows_file, DB_ROWS)


def _backup_objects(storage_url: str, tar: tarfile.TarFile, summary: Summary) -> None:
    store = open_store(storage_url)
    if not isinstance(store, LocalStore):
        summary.notes.append(
            f"images not included: the store {store!r} is not a local folder; it stays in place "
            "(use the bucket's own versioning or replication)"
        )
        return
    for path in sorted(store.root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):  # "."-files: unfinished writes
            tar.add(path, OBJECTS + path.relative_to(store.root).as_posix())
            summary.objects += 1


def _backup_keys(data_dir: Path, tar: tarfile.TarFile, summary: Summary) -> None:
    names = [n for n in KEY_FILES if (data_dir / n).is_file()]
    earlier = data_dir / EARLIER_KEYS_DIRNAME
    if earlier.is_dir():
        names += [f"{EARLIER_KEYS_DIRNAME}/{p.name}" for p in sorted(earlier.glob("*.pub.pem"))]
    for name in names:
        tar.add(data_dir / name, KEYS + name)
    summary.keys = names
    if SECRET_KEY_FILENAME not in names:
        summary.notes.append(
            "no secret_key file in the data folder (SKETCH2FACE_SECRET_KEY is set elsewhere?): "
            "keep that setting with the backup"
        )
    if SIGNING_KEY_FILENAME not in names:
        summary.notes.append("no provenance signing key in the data folder")


# --------------------------------------------------------------------------------------- restore


def restore(instance: Instance, backup_file: Path, *, force: bool = False) -> Summary:
    """Restore ``backup_file`` into ``instance`` (module doc); refuses a non-empty instance
    unless ``force``."""
    with _open(backup_file) as tar:
        manifest = _manifest(tar, backup_file)
        names = set(tar.getnames())
        if not force and (why := _not_empty(instance)):
            raise BackupError(
                f"refusing to restore into an instance that already holds data ({why}); restore "
                "into a fresh data folder / empty database, or add --force to replace it."
            )
        summary = Summary(revision=manifest["database"]["revision"])
        with tempfile.TemporaryDirectory(prefix="s2f-restore-") as tmp:
            _restore_database(instance, tar, names, Path(tmp), summary, force=force)
        _restore_objects(instance, tar, summary)
        _restore_keys(instance.data_dir, tar, summary, force=True)
        summary.notes += list(manifest.get("notes") or [])
    return summary


def restore_keys(data_dir: Path, backup_file: Path, *, force: bool = False) -> Summary:
    """Put back only the keys (secret key, signing keys) into ``data_dir``; a different key
    already there is refused unless ``force``."""
    with _open(backup_file) as tar:
        _manifest(tar, backup_file)
        summary = Summary()
        _restore_keys(Path(data_dir), tar, summary, force=force)
    return summary


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{path} is not a readable sketch2face backup: {exc}") from exc


def _manifest(tar: tarfile.TarFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(_read(tar, MANIFEST))
    except (KeyError, ValueError) as exc:
        raise BackupError(f"{path} has no valid {MANIFEST}: not a sketch2face backup.") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is a backup of format {manifest.get('format')!r}, not {FORMAT}.")
    return dict(manifest)


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.getmember(name)
    fh = tar.extractfile(member)
    if fh is None:
        raise KeyError(name)
    return fh.read()


def _not_empty(instance: Instance) -> str | None:
    if (instance.data_dir / SIGNING_KEY_FILENAME).exists():
        return f"{instance.data_dir / SIGNING_KEY_FILENAME} exists"
    engine = make_engine(instance.database_url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            for name in DATA_TABLES:
                if name in tables and conn.scalar(sa.text(f"SELECT count(*) FROM {name}")):
                    return f"the database has rows in {name}"
    finally:
        engine.dispose()
    store = open_store(instance.storage_url)
    if isinstance(store, LocalStore) and any(p.is_file() for p in store.root.rglob("*")):
        return f"the image store {store.root} is not empty"
    return None


def _restore_database(
    instance: Instance,
    tar: tarfile.TarFile,
    names: set[str],
    tmp: Path,
    summary: Summary,
    *,
    force: bool,
) -> None:
    target = sa.make_url(instance.database_url)
    if DB_SQLITE in names:
        copy = tmp / DB_SQLITE
        copy.write_bytes(_read(tar, DB_SQLITE))
        check = sqlite3.connect(copy)
        try:
            status = check.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            check.close()
        if status != "ok":
            raise BackupError(f"the backup's SQLite database fails its integrity check: {status}")
        if target.get_backend_name() == "sqlite" and target.database:
            path = Path(target.database)
            make_private_dirs(path.parent)
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            staged = path.with_name(f".{path.name}.restore")
            shutil.copyfile(copy, staged)
            os.chmod(staged, 0o600)
            os.replace(staged, path)
            summary.rows = _sqlite_counts(path)
        else:
            source = sa.create_engine(f"sqlite:///{copy}")
            try:
                with source.connect() as conn:
                    meta = sa.MetaData()
                    meta.reflect(conn)
                    tables: dict[str, Rows] = {
                        t.name: ([c.name for c in t.columns], _reader(conn, t))
                        for t in meta.sorted_tables
                    }
                    _copy_rows(instance.database_url, tables, summary, force=force)
            finally:
                source.dispose()
    elif DB_ROWS in names:
        _copy_rows(instance.database_url, _rows_from_jsonl(tar), summary, force=force)
    else:
        raise BackupError("the backup holds no database.")
    _upgrade_to_head(instance.database_url)


def _reader(conn: sa.Connection, table: sa.Table) -> Callable[[], Iterable[tuple[Any, ...]]]:
    return lambda: (tuple(r) for r in conn.execute(sa.select(table)))


def _rows_from_jsonl(tar: tarfile.TarFile) -> dict[str, Rows]:
    tables: dict[str, Rows] = {}
    current: list[tuple[Any, ...]] = []
    for line in io.TextIOWrapper(tar.extractfile(DB_ROWS) or io.BytesIO(), encoding="utf-8"):
        item = json.loads(line)
        if isinstance(item, dict):
            current = []
            tables[item["table"]] = (item["columns"], _constant(current))
        else:
            current.append(tuple(_decode(v) for v in item))
    return tables


def _constant(rows: list[tuple[Any, ...]]) -> Callable[[], Iterable[tuple[Any, ...]]]:
    return lambda: rows


def _copy_rows(url: str, tables: dict[str, Rows], summary: Summary, *, force: bool) -> None:
    """Recreate the schema at the backup's revision in the target, insert every row, in one
    transaction."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            if meta.tables:
                if not force and any(
                    conn.scalar(sa.select(sa.func.count()).select_from(t))
                    for t in meta.sorted_tables
                    if t.name in DATA_TABLES
                ):
                    raise BackupError("the target database holds data; add --force to replace it.")
                meta.drop_all(conn)
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            if summary.revision:
                command.upgrade(cfg, summary.revision)
            target = sa.MetaData()
            target.reflect(conn)

            # nullable foreign keys (cycles such as cases <-> generations, self references)
            # are inserted as NULL and filled in at the end; the rest decide the order
            def nullable(fkc: sa.ForeignKeyConstraint | sa.ForeignKey) -> bool:
                if isinstance(fkc, sa.ForeignKey):
                    return bool(fkc.parent.nullable)
                return all(fkc.parent.c[k].nullable for k in fkc.column_keys)

            later: dict[str, set[str]] = {}
            for table in target.tables.values():
                for fkc in table.foreign_key_constraints:
                    if nullable(fkc):
                        later.setdefault(table.name, set()).update(fkc.column_keys)
            order = sa.schema.sort_tables(
                sorted(target.tables.values(), key=lambda t: t.name), skip_fn=nullable
            )
            updates: list[tuple[sa.Table, dict[str, Any]]] = []
            for table in order:
                if table.name == "alembic_version" or table.name not in tables:
                    continue
                columns, rows = tables[table.name]
                nulled = later.get(table.name, set())
                pk = [c.name for c in table.primary_key.columns]
                batch: list[dict[str, Any]] = []
                count = 0
                for row in rows():
                    values = dict(zip(columns, row, strict=True))
                    held = {k: values[k] for k in nulled if values.get(k) is not None}
                    if held:
                        updates.append((table, {**{k: values[k] for k in pk}, **held}))
                        values.update(dict.fromkeys(held))
                    batch.append(values)
                    if len(batch) >= 500:
                        conn.execute(table.insert(), batch)
                        count += len(batch)
                        batch = []
                if batch:
                    conn.execute(table.insert(), batch)
                    count += len(batch)
                summary.rows[table.name] = count
                _reset_sequence(conn, table)
            for table, values in updates:
                pk_cols = table.primary_key.columns
                conn.execute(
                    table.update()
                    .where(*(c == values[c.name] for c in pk_cols))
                    .values({k: v for k, v in values.items() if k not in pk_cols.keys()})
                )
    finally:
        engine.dispose()


def _reset_sequence(conn: sa.Connection, table: sa.Table) -> None:
    if conn.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        if isinstance(column.type, sa.Integer):
            seq = conn.scalar(
                sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                {"t": table.name, "c": column.name},
            )
            if seq:
                conn.execute(
                    sa.text(
                        f'SELECT setval(:s, COALESCE((SELECT max("{column.name}") FROM '
                        f'"{table.name}"), 1), (SELECT max("{column.name}") FROM "{table.name}") '
                        "IS NOT NULL)"
                    ),
                    {"s": seq},
                )


def _upgrade_to_head(url: str) -> None:
    from sketch2face.db.engine import upgrade_database

    engine = make_engine(url)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()


def _restore_objects(instance: Instance, tar: tarfile.TarFile, summary: Summary) -> None:
    store = open_store(instance.storage_url)
    members = [m for m in tar.getmembers() if m.name.startswith(OBJECTS) and m.isfile()]
    if not isinstance(store, LocalStore):
        if members:
            summary.notes.append(f"{len(members)} images not restored: {store!r} is not local")
        return
    for member in members:
        fh = tar.extractfile(member)
        if fh is not None:
            store.put(member.name[len(OBJECTS) :], fh.read())  # check_key refuses "..", "/x"
            summary.objects += 1


def _restore_keys(data_dir: Path, tar: tarfile.TarFile, summary: Summary, *, force: bool) -> None:
    allowed = set(KEY_FILES)
    for member in tar.getmembers():
        if not member.name.startswith(KEYS) or not member.isfile():
            continue
        name = member.name[len(KEYS) :]
        folder, _, base = name.rpartition("/")
        if not (name in allowed or (folder == EARLIER_KEYS_DIRNAME and base.endswith(".pub.pem"))):
            continue
        fh = tar.extractfile(member)
        if fh is None:
            continue
        data = fh.read()
        path = data_dir / name
        if path.exists() and path.read_bytes() != data and not force:
            raise BackupError(
                f"{path} exists and differs from the backup's; move it away or add --force."
            )
        make_private_dirs(path.parent)
        staged = path.with_name(f".{base}.restore")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(staged, path)
        summary.keys.append(name)


# ------------------------------------------------------------------------------------- encoding


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Decimal):
        return {"$n": str(value)}
    if isinstance(value, dict | list):
        return {"$j": value}
    return str(value)


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((tag, raw),) = value.items()
    return {
        "$dt": datetime.fromisoformat,
        "$d": date.fromisoformat,
        "$b": base64.b64decode,
        "$n": Decimal,
        "$j": lambda v: v,
    }[tag](raw)


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _sqlite_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()
