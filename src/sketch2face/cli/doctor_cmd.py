"""``sketch2face doctor [--fix]``: crash leftovers and database health (issue 25).

Lists stored images no row references, temporary files of interrupted writes, rows whose images
are missing, SQLite integrity problems and case numbers that looked alike before they were
compared as such; ``--fix`` removes the leftovers (docs/operations.md).
"""

from __future__ import annotations

import argparse

from sketch2face.cli.backup_cmd import add_data_dir, instance_from_args
from sketch2face.services.doctor import DEFAULT_MIN_AGE_S

#: lines listed per kind before "... and N more"
SHOWN = 20


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``doctor`` sub-command."""
    p = subparsers.add_parser(
        "doctor",
        help="list (and --fix remove) crash leftovers; check the database",
        description="Check the instance the settings and --data-dir name: stored images no row "
        "references (orphans), temporary files of interrupted writes, rows whose images are "
        "missing, database integrity (SQLite) and look-alike case numbers. Exit 0: nothing "
        "found (or everything found was fixed); 1: something needs attention.",
    )
    add_data_dir(p)
    p.add_argument(
        "--fix",
        action="store_true",
        help="remove the orphan images and temporary files (missing images and integrity "
        "problems are only reported)",
    )
    p.add_argument(
        "--min-age",
        type=float,
        default=DEFAULT_MIN_AGE_S,
        metavar="SECONDS",
        help="--fix leaves files younger than this: the running app may be about to commit the "
        f"row that names them (default {DEFAULT_MIN_AGE_S})",
    )
    p.set_defaults(func=run)


def _listed(title: str, lines: list[str]) -> None:
    if not lines:
        return
    print(f"{title}: {len(lines)}")
    for line in lines[:SHOWN]:
        print(f"  {line}")
    if len(lines) > SHOWN:
        print(f"  ... and {len(lines) - SHOWN} more")


def run(args: argparse.Namespace) -> int:
    """Examine, report, and with --fix remove the leftovers."""
    from sketch2face.services.doctor import examine, fix

    instance = instance_from_args(args)
    report = examine(instance.database_url, instance.storage_url)
    print(f"image store: {report.store}; {report.stored} images, {report.referenced} referenced")
    if report.integrity:
        _listed("DATABASE INTEGRITY PROBLEMS", report.integrity)
    else:
        print("database integrity: ok")
    _listed(
        "rows whose image is missing or empty",
        [
            f"{m.table} {m.row_id} {m.column}: {m.key}" + (" (empty file)" if m.empty else "")
            for m in report.missing
        ],
    )
    _listed("orphan images (no row references them)", [_leftover(o) for o in report.orphans])
    _listed("temporary files of interrupted writes", [_leftover(t) for t in report.temp_files])
    _listed(
        "case numbers that look alike another case's (rename or merge them)",
        [f"case {case_id}: {number!r}" for case_id, number in report.lookalike_cases],
    )
    for note in report.notes:
        print(f"note: {note}")
    if not report.problems:
        print("nothing to fix")
        return 0
    remaining = bool(report.missing or report.integrity or report.lookalike_cases)
    if args.fix:
        removed, freed, kept = fix(report, min_age_s=args.min_age)
        print(f"removed {removed} files ({freed} bytes)")
        if kept:
            print(f"left {kept} files younger than {args.min_age:g} s (run again later)")
            remaining = True
    elif report.orphans or report.temp_files:
        print("run with --fix to remove the orphan images and temporary files")
        remaining = True
    return 1 if remaining else 0


def _leftover(item) -> str:  # type: ignore[no-untyped-def]
    return f"{item.key} ({item.size} bytes, {item.age_s / 60:.0f} min old)"
