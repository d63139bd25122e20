"""Galleries, photos and embeddings in SQL (+ files in the object store); search permission.

Every function takes the caller's SQLAlchemy session; the caller commits, except where a
function says it commits (removals: rows first, then files, as for generations).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.gallery import FaceEmbedding, Gallery, GalleryPhoto, GallerySearchGrant
from sketch2face.db.models import User, utcnow
from sketch2face.gallery.errors import GalleryExistsError, GalleryNameError, UnknownGalleryError
from sketch2face.gallery.index import Snapshot
from sketch2face.storage import ObjectStore, StorageError

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_DESCRIPTION_CHARS = 2000


def normalise_gallery_name(name: str) -> str:
    """Gallery names are case-insensitive: lower-case, trimmed; raise if not acceptable."""
    clean = (name or "").strip().lower()
    if not NAME_RE.match(clean):
        raise GalleryNameError(
            f"gallery name {name[:70]!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. 'custody-2026')."
        )
    return clean


def get_gallery(session: Session, name: str) -> Gallery:
    """The gallery called ``name``; :class:`UnknownGalleryError` when there is none."""
    try:
        clean = normalise_gallery_name(name)
    except GalleryNameError:
        clean = None
    gallery = session.scalar(sa.select(Gallery).where(Gallery.name == clean)) if clean else None
    if gallery is None:
        known = session.scalars(sa.select(Gallery.name).order_by(Gallery.name).limit(20)).all()
        hint = f" Galleries: {', '.join(known)}." if known else " No gallery is enrolled yet."
        raise UnknownGalleryError(f"there is no gallery called {name[:70]!r}.{hint}")
    return gallery


def create_gallery(
    session: Session, name: str, *, description: str | None = None, created_by: str | None = None
) -> Gallery:
    """Add a gallery (flushed, not committed); :class:`GalleryExistsError` if the name is taken."""
    clean = normalise_gallery_name(name)
    if session.scalar(sa.select(Gallery.id).where(Gallery.name == clean)) is not None:
        raise GalleryExistsError(f"a gallery called {clean!r} exists already.")
    description = (description or "").strip() or None
    if description and (len(description) > MAX_DESCRIPTION_CHARS or "\x00" in description):
        raise GalleryNameError(
            f"the description must be at most {MAX_DESCRIPTION_CHARS} characters, without NUL."
        )
    gallery = Gallery(name=clean, description=description, created_by=created_by)
    session.add(gallery)
    try:
        session.flush()
    except sa.exc.IntegrityError as exc:  # created concurrently
        session.rollback()
        raise GalleryExistsError(f"a gallery called {clean!r} exists already.") from exc
    return gallery


def get_or_create_gallery(
    session: Session, name: str, *, created_by: str | None = None
) -> tuple[Gallery, bool]:
    """The gallery called ``name``, created (and committed) when missing; (gallery, created)."""
    try:
        return get_gallery(session, name), False
    except UnknownGalleryError:
        gallery = create_gallery(session, name, created_by=created_by)
        session.commit()
        return gallery, True


def touch(gallery: Gallery) -> None:
    """Mark a change: the version (the index key) goes up in the caller's transaction."""
    gallery.version = Gallery.version + 1  # SQL-side increment: concurrent writers never collide
    gallery.updated_at = utcnow()


@dataclass(frozen=True)
class GallerySummary:
    """One gallery in a listing."""

    id: int
    name: str
    description: str | None
    photos: int
    faces: int  # embeddings of the encoder in use
    version: int
    created_at: datetime
    updated_at: datetime


def list_galleries(session: Session, embedder: str) -> list[GallerySummary]:
    """Every gallery with its photo and face counts, by name."""
    photos = (
        sa.select(GalleryPhoto.gallery_id, sa.func.count().label("n"))
        .group_by(GalleryPhoto.gallery_id)
        .subquery()
    )
    faces = (
        sa.select(FaceEmbedding.gallery_id, sa.func.count().label("n"))
        .where(FaceEmbedding.embedder == embedder)
        .group_by(FaceEmbedding.gallery_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(Gallery, sa.func.coalesce(photos.c.n, 0), sa.func.coalesce(faces.c.n, 0))
        .outerjoin(photos, photos.c.gallery_id == Gallery.id)
        .outerjoin(faces, faces.c.gallery_id == Gallery.id)
        .order_by(Gallery.name)
    ).all()
    return [
        GallerySummary(
            g.id,
            g.name,
            g.description,
            int(n_photos),
            int(n_faces),
            g.version,
            g.created_at,
            g.updated_at,
        )
        for g, n_photos, n_faces in rows
    ]


def face_count(session: Session, gallery_id: int, embedder: str) -> int:
    """Faces of ``embedder`` enrolled in the gallery."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(FaceEmbedding)
            .where(FaceEmbedding.gallery_id == gallery_id, FaceEmbedding.embedder == embedder)
        )
        or 0
    )


def existing_hashes(session: Session, gallery_id: int) -> set[str]:
    """SHA-256 of every file enrolled in the gallery (duplicates are skipped by these)."""
    return set(
        session.scalars(sa.select(GalleryPhoto.sha256).where(GalleryPhoto.gallery_id == gallery_id))
    )


def load_snapshot(session: Session, gallery_id: int, embedder: str, dim: int) -> Snapshot:
    """The gallery's vectors and version, consistent with each other.

    The version is read before and after the vectors; if an enrolment committed in between (a
    READ COMMITTED database such as PostgreSQL shows it to the second statement), read again.
    """
    for _ in range(5):
        before = session.scalar(sa.select(Gallery.version).where(Gallery.id == gallery_id))
        rows = session.execute(
            sa.select(FaceEmbedding.photo_id, FaceEmbedding.vector)
            .where(FaceEmbedding.gallery_id == gallery_id, FaceEmbedding.embedder == embedder)
            .order_by(FaceEmbedding.photo_id)
        ).all()
        after = session.scalar(sa.select(Gallery.version).where(Gallery.id == gallery_id))
        if before == after and before is not None:
            break
    else:
        raise RuntimeError(f"gallery {gallery_id} kept changing while its vectors were read")
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").astype(np.float32)
    return Snapshot(gallery_id, int(after), embedder, ids, vectors.reshape(len(rows), dim))


def photo_keys(session: Session, gallery_id: int) -> list[str]:
    """Object keys (originals and thumbnails) of every photo of a gallery."""
    rows = session.execute(
        sa.select(GalleryPhoto.photo_key, GalleryPhoto.thumb_key).where(
            GalleryPhoto.gallery_id == gallery_id
        )
    ).all()
    return [key for row in rows for key in row]


def remove_gallery(session: Session, store: ObjectStore, gallery: Gallery) -> int:
    """Delete a gallery with its photos and embeddings (commits), then their files.

    Returns the number of photos removed. Rows go first: a crash afterwards can leave
    unreferenced files (logged), never rows pointing at missing files.
    """
    keys = photo_keys(session, gallery.id)
    gallery_id = gallery.id
    session.execute(sa.delete(FaceEmbedding).where(FaceEmbedding.gallery_id == gallery_id))
    session.execute(sa.delete(GalleryPhoto).where(GalleryPhoto.gallery_id == gallery_id))
    session.execute(sa.delete(Gallery).where(Gallery.id == gallery_id))
    session.commit()
    session.expunge(gallery)  # its row is gone
    delete_objects(store, keys)
    return len(keys) // 2


def remove_photo(
    session: Session, store: ObjectStore, gallery: Gallery, photo: GalleryPhoto
) -> None:
    """Delete one photo and its embeddings (commits; the gallery's version goes up), then files."""
    keys = [photo.photo_key, photo.thumb_key]
    session.execute(sa.delete(FaceEmbedding).where(FaceEmbedding.photo_id == photo.id))
    session.execute(sa.delete(GalleryPhoto).where(GalleryPhoto.id == photo.id))
    touch(gallery)
    session.commit()
    delete_objects(store, keys)


def find_photo(session: Session, gallery: Gallery, file_name: str) -> GalleryPhoto | None:
    """The photo enrolled under ``file_name`` in the gallery (the newest if several)."""
    return session.scalar(
        sa.select(GalleryPhoto)
        .where(GalleryPhoto.gallery_id == gallery.id, GalleryPhoto.file_name == file_name)
        .order_by(GalleryPhoto.id.desc())
        .limit(1)
    )


def delete_objects(store: ObjectStore, keys: list[str]) -> None:
    """Delete files, logging (not raising) failures: the rows are gone already."""
    for key in keys:
        try:
            store.delete(key)
        except StorageError:
            log.exception("could not delete object %s; remove it by hand", key)


# ---------------------------------------------------------------------------- permission
def can_search(session: Session, user: User | None) -> bool:
    """Administrators, and accounts an administrator granted the permission to."""
    if user is None or not user.is_active:
        return False
    if user.is_admin:
        return True
    return session.get(GallerySearchGrant, user.id) is not None


def grant_search(session: Session, user: User, granted_by: str | None) -> bool:
    """Give ``user`` the search permission; False if it had it already (caller commits)."""
    if session.get(GallerySearchGrant, user.id) is not None:
        return False
    session.add(GallerySearchGrant(user_id=user.id, granted_by=granted_by))
    return True


def revoke_search(session: Session, user: User) -> bool:
    """Take the permission away; False if it had none (caller commits)."""
    grant = session.get(GallerySearchGrant, user.id)
    if grant is None:
        return False
    session.delete(grant)
    return True


def grants(session: Session) -> dict[int, GallerySearchGrant]:
    """user id -> grant, for every account holding the permission."""
    return {g.user_id: g for g in session.scalars(sa.select(GallerySearchGrant))}
