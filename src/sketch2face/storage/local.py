"""``LocalStore``: objects as files under one folder, written atomically."""

from __future__ import annotations

from pathlib import Path

from sketch2face.imaging import atomic_write_bytes
from sketch2face.private_files import make_private_dirs, warn_if_shared
from sketch2face.storage.base import ObjectNotFoundError, StorageError, check_key


class LocalStore:
    """Object store in a local folder; each key is a relative file path below ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        existed = self.root.exists()
        try:
            make_private_dirs(self.root)  # images of evidence: the owner's only (0700)
        except OSError as exc:
            raise StorageError(f"cannot create the storage folder {self.root}: {exc}") from exc
        if existed:
            warn_if_shared(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Write ``data`` via temp file + rename, so readers never see a half-written object.

        Folders are created 0700; the file is 0600 (``atomic_write_bytes`` writes via mkstemp).
        """
        path = self._path(key)
        try:
            make_private_dirs(path.parent)
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} under {self.root}: {exc}") from exc

    def get(self, key: str) -> bytes:
        """Return the object's bytes."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no object {key!r} in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} under {self.root}: {exc}") from exc

    def delete(self, key: str) -> None:
        """Remove the object and any folders left empty by it (up to the root)."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} under {self.root}: {exc}") from exc
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break  # not empty (or already gone): stop climbing
            parent = parent.parent

    def exists(self, key: str) -> bool:
        """Whether the object file exists."""
        return self._path(key).is_file()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"
