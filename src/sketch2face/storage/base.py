"""The ``ObjectStore`` protocol and ``open_store(url)``: the one way the app reaches images."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from sketch2face.errors import ConfigError, Sketch2FaceError

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


def open_store(url: str | Path, *, options: Mapping[str, str | None] | None = None) -> ObjectStore:
    """Open a store from a URL: a folder path, ``file:///abs/path`` or ``s3://bucket/prefix``.

    ``options`` carries S3 settings (``endpoint_url``, ``region``, ``access_key_id``,
    ``secret_access_key``); unset ones fall back to boto3's usual credential chain.
    """
    text = str(url)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and text[1:3] in (":\\", ":/")):
        from sketch2face.storage.local import LocalStore

        path = unquote(parsed.path) if parsed.scheme == "file" else text
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"storage URL {text!r}: file URLs must look like file:///abs/path.")
        return LocalStore(Path(path))
    if parsed.scheme == "s3":
        from sketch2face.storage.s3 import S3Store

        if not parsed.netloc:
            raise ConfigError(f"storage URL {text!r} names no bucket; use s3://bucket/prefix.")
        return S3Store(parsed.netloc, parsed.path.strip("/"), **dict(options or {}))
    raise ConfigError(
        f"storage URL {text!r} has unsupported scheme {parsed.scheme!r}; use a folder path, "
        "file:///path or s3://bucket/prefix."
    )
