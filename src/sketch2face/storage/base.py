"""The ``ObjectStore`` protocol, storage errors and object-key checks.

Backends live in :mod:`~sketch2face.storage.local` and :mod:`~sketch2face.storage.s3`;
:func:`sketch2face.storage.factory.open_store` picks one from a URL. This module imports neither.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from sketch2face.errors import Sketch2FaceError

#: Keys are relative, slash-separated, and made only of these characters, so a key can never
#: escape the store (no "..", no absolute paths, no backslashes).
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class StorageError(Sketch2FaceError):
    """The object store could not be reached or refused an operation."""


class ObjectNotFoundError(StorageError, KeyError):
    """No object is stored under the requested key."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key; raise ``ValueError`` otherwise."""
    if not _KEY_RE.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}: use letters, digits, '_', '-', '.' and '/'.")
    return key


@runtime_checkable
class ObjectStore(Protocol):
    """Put/get/delete/exists of immutable byte objects by key."""

    url: str

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key`` (replacing it); never leaves a partial object."""
        ...

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; raise :class:`ObjectNotFoundError` if there are none."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...
