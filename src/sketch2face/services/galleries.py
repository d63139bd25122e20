"""Gallery photo look-ups for the gallery pages: which photos still exist and a gallery's photos
page by page. No HTTP here; gallery creation, enrolment and permissions live in
``sketch2face.gallery``."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.gallery import Gallery, GalleryPhoto
from sketch2face.services.listing import Listing


def existing_photo_ids(session: Session, photo_ids: Iterable[int]) -> set[int]:
    """The ids among ``photo_ids`` whose gallery photo is still enrolled (an empty input asks
    the database nothing)."""
    ids = list(photo_ids)
    if not ids:
        return set()
    return set(session.scalars(sa.select(GalleryPhoto.id).where(GalleryPhoto.id.in_(ids))))


def photo_listing(gallery: Gallery) -> Listing[GalleryPhoto]:
    """The photos of ``gallery``, newest enrolment (highest id) first."""
    stmt = sa.select(GalleryPhoto).where(GalleryPhoto.gallery_id == gallery.id)
    return Listing(stmt, (GalleryPhoto.id.desc(),))
