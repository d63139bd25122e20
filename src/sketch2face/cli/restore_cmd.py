"""``sketch2face restore FILE``: put a backup back into a (fresh) instance (issue 25).

Refuses an instance that already holds data unless ``--force``; ``--keys-only`` puts back only
the secret key and the provenance signing keys (a lost data folder beside a surviving database).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sketch2face.cli.backup_cmd import add_data_dir, instance_from_args, print_summary


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``restore`` sub-command."""
    p = subparsers.add_parser(
        "restore",
        help="restore a backup made by `sketch2face backup`",
        description="Restore the database (at the backup's schema, then upgraded), the images and "
        "the keys into the instance named by the settings and --data-dir. Stop the app first.",
    )
    p.add_argument("file", type=Path, help="the backup file")
    add_data_dir(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an instance that already holds data (its database rows, images and keys)",
    )
    p.add_argument(
        "--keys-only",
        action="store_true",
        help="put back only secret_key and the provenance signing keys into the data folder",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Restore and say what was put back."""
    from sketch2face.services.backup import restore, restore_keys

    instance = instance_from_args(args)
    if args.keys_only:
        summary = restore_keys(instance.data_dir, args.file, force=args.force)
        print(f"keys restored into {instance.data_dir}: {', '.join(summary.keys) or 'none'}")
        return 0
    summary = restore(instance, args.file, force=args.force)
    print(f"restored {args.file} into {instance.data_dir}")
    print_summary(summary)
    return 0
