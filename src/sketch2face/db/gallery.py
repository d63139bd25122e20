"""SQL tables of gallery search: galleries, enrolled photos, face embeddings, search grants.

They share the declarative ``Base`` of ``db/base.py`` (one metadata, one Alembic history:
``db/migrations/versions/*gallery_search*.py``). The database is the source of truth; the vector
index (``gallery/index.py``) is derived from ``gallery_embeddings`` and rebuilt when a gallery's
``version`` changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sketch2face.db.base import Base, utcnow


class Gallery(Base):
    """A named set of enrolled photos (e.g. one force's custody photos)."""

    __tablename__ = "galleries"
    #: ids are never reused (SQLite would reuse the highest after a deletion): index files and
    #: caches are keyed by (id, version)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    #: lower-case, ``[a-z0-9][a-z0-9._-]{0,63}`` (see gallery.store.normalise_gallery_name)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(sa.String(64))
    #: bumped in the same transaction as every enrolment or removal: the vector index of a
    #: version is valid exactly for that version
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    photos: Mapped[list[GalleryPhoto]] = relationship(
        back_populates="gallery", passive_deletes=True, lazy="raise_on_sql"
    )


class GalleryPhoto(Base):
    """One enrolled photo: the original file (object store), its face thumbnail and face data."""

    __tablename__ = "gallery_photos"
    #: ids are never reused: audited search results name photos by id
    __table_args__ = (sa.UniqueConstraint("gallery_id", "sha256"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(
        sa.ForeignKey("galleries.id", ondelete="CASCADE"), index=True
    )
    #: the name in the folder or ZIP (relative path), as the administrator knows the photo
    file_name: Mapped[str] = mapped_column(sa.String(255))
    #: SHA-256 of the file's bytes: the same file is enrolled once per gallery
    sha256: Mapped[str] = mapped_column(sa.String(64))
    photo_key: Mapped[str] = mapped_column(sa.String(255))
    thumb_key: Mapped[str] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(32))
    width: Mapped[int]
    height: Mapped[int]
    #: faces the detector found; the largest one was enrolled
    faces_detected: Mapped[int] = mapped_column(default=1)
    #: {"box": [l, t, r, b], "landmarks": [[x, y] x 5]} of the enrolled face
    face: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: the enrolment batch (one CLI run or one upload), for tracing and resuming
    batch_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    enrolled_by: Mapped[str | None] = mapped_column(sa.String(64))

    gallery: Mapped[Gallery] = relationship(back_populates="photos")


class FaceEmbedding(Base):
    """A face descriptor of an enrolled photo, tagged with the embedder that made it.

    ``gallery_id`` is repeated here so the index loads one gallery's vectors without a join.
    A better embedder adds its own rows beside the old ones (unique per photo and embedder).
    """

    __tablename__ = "gallery_embeddings"
    __table_args__ = (sa.UniqueConstraint("photo_id", "embedder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(
        sa.ForeignKey("gallery_photos.id", ondelete="CASCADE"), index=True
    )
    gallery_id: Mapped[int] = mapped_column(
        sa.ForeignKey("galleries.id", ondelete="CASCADE"), index=True
    )
    embedder: Mapped[str] = mapped_column(sa.String(64))
    embedder_version: Mapped[str] = mapped_column(sa.String(64))
    dim: Mapped[int]
    #: little-endian float32, ``dim`` values
    vector: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @staticmethod
    def pack(vector: np.ndarray) -> bytes:
        """float32 little-endian bytes of a 1-D vector."""
        return np.ascontiguousarray(vector, dtype="<f4").tobytes()

    def unpack(self) -> np.ndarray:
        """The stored vector as float32."""
        return np.frombuffer(self.vector, dtype="<f4").astype(np.float32)


class GallerySearchGrant(Base):
    """The permission to search galleries, granted to one account by an administrator.

    A row, not a role: who granted it and when is kept (and audited); revoking deletes the row.
    Administrators may always search.
    """

    __tablename__ = "gallery_search_grants"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    granted_by: Mapped[str | None] = mapped_column(sa.String(64))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
