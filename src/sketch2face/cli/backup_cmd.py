"""``sketch2face backup --out FILE``: database, stored images and keys in one file (issue 25).

Safe while the app runs (docs/operations.md). The instance is the one ``serve`` would use: the
``SKETCH2FACE_*`` settings, ``--data-dir`` overriding the data folder.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sketch2face.services.backup import Instance, Summary


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """The ``--data-dir`` option shared by backup, restore and doctor."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the instance's data folder (default ./instance or SKETCH2FACE_DATA_DIR); the "
        "database and image store come from SKETCH2FACE_DATABASE_URL / _STORAGE_URL, else the "
        "folder's sketch2face.db and objects/",
    )


def instance_from_args(args: argparse.Namespace) -> Instance:
    """The instance the web settings (environment, ``--data-dir``) name."""
    from sketch2face.web.settings import WebSettings

    settings = WebSettings.from_env()
    if args.data_dir is not None:
        settings = settings.replace(data_dir=args.data_dir)
    return Instance(
        data_dir=settings.data_dir,
        database_url=settings.resolved_database_url,
        storage_url=settings.resolved_storage_url,
    )


def print_summary(summary: Summary) -> None:
    """Rows, images, keys and notes, one line each."""
    rows = ", ".join(f"{n} {c}" for n, c in sorted(summary.rows.items()) if c)
    print(f"  database: schema {summary.revision}; rows: {rows or 'none'}")
    print(f"  images: {summary.objects}")
    print(f"  keys: {', '.join(summary.keys) or 'none'}")
    for note in summary.notes:
        print(f"  note: {note}")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``backup`` sub-command."""
    p = subparsers.add_parser(
        "backup",
        help="back up the instance: database, stored images, secret and signing keys",
        description="Write one .tar.gz (mode 0600: it holds the keys) with a consistent copy of "
        "the database (SQLite online backup; PostgreSQL in one REPEATABLE READ transaction), the "
        "local image store and the keys. Safe while the app runs.",
    )
    p.add_argument("--out", type=Path, required=True, help="the backup file to write")
    add_data_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Make the backup and say what it holds."""
    from sketch2face.services.backup import backup

    instance = instance_from_args(args)
    summary = backup(instance, args.out)
    print(f"backup written to {args.out} ({os.path.getsize(args.out)} bytes)")
    print_summary(summary)
    return 0
