"""``open_store(url)``: choose and open the :class:`ObjectStore` backend a storage URL names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from sketch2face.errors import ConfigError
from sketch2face.storage.base import ObjectStore
from sketch2face.storage.local import LocalStore
from sketch2face.storage.s3 import S3Store  # boto3 is imported only when an S3Store is built


def _is_windows_drive_path(text: str, scheme: str) -> bool:
    """Whether ``urlparse`` mistook a drive letter (``C:\\x``, ``C:/x``) for a URL scheme."""
    return len(scheme) == 1 and text[1:3] in (":\\", ":/")


def open_store(url: str | Path, *, options: Mapping[str, str | None] | None = None) -> ObjectStore:
    """Open a store from a URL: a folder path, ``file:///abs/path`` or ``s3://bucket/prefix``.

    ``options`` carries S3 settings (``endpoint_url``, ``region``, ``access_key_id``,
    ``secret_access_key``); unset ones fall back to boto3's usual credential chain. Opening an
    S3 store without boto3 installed raises :class:`~sketch2face.errors.ConfigError`.
    """
    text = str(url)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file") or _is_windows_drive_path(text, parsed.scheme):
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"storage URL {text!r}: file URLs must look like file:///abs/path.")
        path = unquote(parsed.path) if parsed.scheme == "file" else text
        return LocalStore(Path(path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"storage URL {text!r} names no bucket; use s3://bucket/prefix.")
        return S3Store(parsed.netloc, parsed.path.strip("/"), **dict(options or {}))
    raise ConfigError(
        f"storage URL {text!r} has unsupported scheme {parsed.scheme!r}; use a folder path, "
        "file:///path or s3://bucket/prefix."
    )
