"""Owner-only instance data: folders 0700 and files 0600, given when they are created.

The database, the stored sketches and faces and the secret key are nobody's business but the
service account's. The mode is passed to ``mkdir``/``open`` itself, so no file is ever readable by
others for a moment (the umask can only take permissions away). Existing folders and files are
left as they are, with a warning when others can read them: an operator may have shared them on
purpose (a backup group), and changing that silently would be a surprise.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each with mode 0700; existing ones are kept."""
    missing = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # made by a concurrent process in between
            pass


def create_private_file(path: Path) -> bool:
    """Create an empty file with mode 0600 unless it exists; returns whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def warn_if_shared(path: Path) -> None:
    """Log a warning (with the fix) when other users may read or enter ``path``."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        wanted = PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE
        log.warning(
            "%s is readable by other users (mode %04o); instance data should be the service "
            "account's only: chmod %o %s",
            path,
            mode,
            wanted,
            path,
        )
