"""Object storage for images: one :class:`ObjectStore` interface, local folder or S3-compatible."""

from sketch2face.storage.base import ObjectNotFoundError, ObjectStore, StorageError
from sketch2face.storage.factory import open_store

__all__ = ["ObjectNotFoundError", "ObjectStore", "StorageError", "open_store"]
