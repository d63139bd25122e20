"""Photos to enrol from a ZIP or a folder, read without ZIP bombs or path traversal.

Nothing is ever extracted to disk: members are read into memory one at a time, after the whole
central directory was checked. An archive is refused as a whole (:class:`UnsafeArchiveError`,
nothing enrolled) when it

- is not a ZIP, is encrypted, or cannot be read;
- names a member with an absolute path, a drive letter, a ``..`` component or a NUL, or holds a
  symbolic link (a path traversal attempt even if we would never write it);
- declares more members, more uncompressed bytes in total, or a higher compression ratio for any
  member than :class:`ArchiveLimits` allow (a ZIP bomb). Members cannot lie their way past the
  declared sizes: ``zipfile`` stops at the declared size and checks the CRC.

A single member larger than ``max_member_bytes`` is not an attack: it is skipped and reported as
too large, like a huge file in a folder.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sketch2face.gallery.errors import UnsafeArchiveError
from sketch2face.imaging import MAX_IMAGE_BYTES

#: macOS resource forks, Windows thumbnails and similar: never photos, silently ignored
_IGNORED_PARTS = ("__MACOSX",)
_IGNORED_NAMES = ("thumbs.db", "desktop.ini", ".ds_store")


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits on an uploaded archive (and on each photo file)."""

    max_entries: int = 20_000
    #: a photo file larger than this is skipped as too large (the imaging module's limit)
    max_member_bytes: int = MAX_IMAGE_BYTES
    #: the sum of the members' uncompressed sizes
    max_total_bytes: int = 4 * 1024**3
    #: uncompressed / compressed size of one member; photos (JPEG, PNG) hardly compress at all
    max_ratio: float = 100.0


@dataclass(frozen=True)
class SourceFile:
    """One candidate photo: its name (relative, '/'-separated), size in bytes and a reader."""

    name: str
    size: int
    read: Callable[[], bytes]


def _ignored(name: str) -> bool:
    parts = [p for p in name.split("/") if p]
    if not parts:
        return True
    return (
        any(p in _IGNORED_PARTS for p in parts)
        or any(p.startswith(".") for p in parts)  # hidden files, AppleDouble "._x.jpg"
        or parts[-1].lower() in _IGNORED_NAMES
    )


def _traversal(name: str) -> bool:
    """Whether a member name could point outside an extraction folder."""
    if "\x00" in name:
        return True
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return any(part == ".." for part in re.split(r"[/\\]", name))


def display_name(name: str) -> str:
    """A member or file name as stored and shown: '/'-separated, printable, at most 255 chars."""
    clean = "".join(c if c.isprintable() else "_" for c in name.replace("\\", "/")).strip("/")
    if len(clean) > 255:
        clean = clean[:120] + "..." + clean[-132:]
    return clean or "unnamed"


def zip_entries(
    source: str | os.PathLike[str] | IO[bytes], limits: ArchiveLimits | None = None
) -> list[SourceFile]:
    """The photo candidates in a ZIP (a path or a seekable binary file), checked as a whole first.

    Raises :class:`UnsafeArchiveError` naming the problem; the archive stays open while the
    readers are used (it is closed when they are garbage-collected).
    """
    limits = limits or ArchiveLimits()
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise UnsafeArchiveError(f"the upload is not a readable ZIP file ({exc}).") from exc
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise UnsafeArchiveError(
            f"the ZIP holds {len(infos)} entries; at most {limits.max_entries} are accepted per "
            "upload. Split it, or enrol the folder with `sketch2face gallery add`."
        )
    total = 0
    for info in infos:
        if _traversal(info.filename):
            raise UnsafeArchiveError(
                f"the ZIP entry {display_name(info.filename)!r} points outside the archive "
                "(absolute path or '..'); nothing was enrolled. Re-create the ZIP from the folder."
            )
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                f"the ZIP entry {display_name(info.filename)!r} is a symbolic link; nothing was "
                "enrolled. Re-create the ZIP without links."
            )
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(
                "the ZIP is encrypted; upload an unencrypted ZIP (nothing was enrolled)."
            )
        if info.is_dir():
            continue
        total += info.file_size
        if info.file_size > 1024 * 1024 and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise UnsafeArchiveError(
                f"the ZIP entry {display_name(info.filename)!r} expands {info.file_size} bytes "
                f"from {info.compress_size} (more than {limits.max_ratio:g}:1): refused as a "
                "possible ZIP bomb; nothing was enrolled."
            )
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(
            f"the ZIP expands to {total} bytes; at most {limits.max_total_bytes} are accepted "
            "(a possible ZIP bomb, or too much for one upload); nothing was enrolled."
        )

    def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                with archive.open(info) as fh:
                    return fh.read(limits.max_member_bytes + 1)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
                raise UnsafeArchiveError(
                    f"the ZIP entry {display_name(info.filename)!r} cannot be read ({exc}); "
                    "nothing was enrolled. Re-create the ZIP."
                ) from exc

        return read

    return [
        SourceFile(display_name(info.filename), info.file_size, reader(info))
        for info in sorted(infos, key=lambda i: i.filename)
        if not info.is_dir() and not _ignored(info.filename.replace("\\", "/"))
    ]


def folder_entries(folder: str | os.PathLike[str]) -> list[SourceFile]:
    """The files under ``folder`` (recursively, sorted; hidden files and folders skipped;
    folder links not followed)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if _ignored(rel) or not path.is_file():
                continue
            files.append(
                SourceFile(display_name(rel), path.stat().st_size, lambda p=path: p.read_bytes())
            )
    return files


def is_zip(data_head: bytes) -> bool:
    """Whether bytes start like a ZIP archive (local header or empty archive)."""
    return data_head[:4] in (b"PK\x03\x04", b"PK\x05\x06")
