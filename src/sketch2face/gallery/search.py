"""One query image -> the top K enrolled faces, with distance and similarity score.

:class:`GallerySearcher` is the service the web app and the CLI share: the face encoder (loaded on
first use) and the per-process index cache. Audit is the caller's job (it knows who asked).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.gallery import Gallery, GalleryPhoto
from sketch2face.errors import ConfigError
from sketch2face.gallery import CAVEAT
from sketch2face.gallery.enrol import working_copy
from sketch2face.gallery.errors import EmptyGalleryError, NoFaceError
from sketch2face.gallery.faces import DetectedFace, FaceEncoder
from sketch2face.gallery.index import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_EXACT_BELOW,
    ExactIndex,
    GalleryIndexes,
)
from sketch2face.gallery.score import similarity
from sketch2face.gallery.store import get_gallery, load_snapshot

DEFAULT_TOP_K = 10
MAX_TOP_K = 100


@dataclass(frozen=True)
class GalleryConfig:
    """Gallery settings, from ``SKETCH2FACE_GALLERY_*`` environment variables (docs/web.md)."""

    #: approximate index backend for large galleries: faiss (default), usearch or exact
    index_backend: str = DEFAULT_BACKEND
    #: galleries smaller than this are searched exactly
    exact_below: int = DEFAULT_EXACT_BELOW
    #: largest enrolment upload (a ZIP or several photos) accepted by the web app
    max_upload_bytes: int = 512 * 1024 * 1024
    #: most files in one web upload (ZIP members or photos)
    max_files: int = 5000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GalleryConfig:
        """Read ``SKETCH2FACE_GALLERY_INDEX``, ``..._EXACT_BELOW``, ``..._MAX_UPLOAD_BYTES``,
        ``..._MAX_FILES``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if raw := env.get("SKETCH2FACE_GALLERY_INDEX", "").strip():
            if raw not in BACKENDS:
                raise ConfigError(
                    f"SKETCH2FACE_GALLERY_INDEX={raw!r}: choose one of {', '.join(BACKENDS)}."
                )
            values["index_backend"] = raw
        for name, attr in (
            ("EXACT_BELOW", "exact_below"),
            ("MAX_UPLOAD_BYTES", "max_upload_bytes"),
            ("MAX_FILES", "max_files"),
        ):
            if raw := env.get(f"SKETCH2FACE_GALLERY_{name}", "").strip():
                try:
                    values[attr] = int(raw)
                except ValueError as exc:
                    raise ConfigError(
                        f"SKETCH2FACE_GALLERY_{name}={raw!r} is not an integer."
                    ) from exc
        return cls(**values)


@dataclass(frozen=True)
class QueryFace:
    """The face a search used: how many were found, whether the whole image stood in, its vector."""

    faces_detected: int
    whole_image: bool
    face: DetectedFace
    vector: np.ndarray
    thumbnail_u8: np.ndarray


@dataclass(frozen=True)
class SearchHit:
    """One candidate, best first."""

    rank: int
    photo_id: int
    file_name: str
    distance: float
    score: float

    def as_json(self) -> dict[str, Any]:
        """JSON-able candidate."""
        return {
            "rank": self.rank,
            "photo_id": self.photo_id,
            "file_name": self.file_name,
            "distance": round(self.distance, 4),
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class SearchOutcome:
    """What a search found, with what it searched and how."""

    gallery: str
    gallery_id: int
    gallery_version: int
    gallery_faces: int
    top_k: int
    method: str  # exact | faiss | usearch
    embedder: str
    query: QueryFace
    hits: list[SearchHit]
    notices: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    caveat: str = CAVEAT

    def as_json(self) -> dict[str, Any]:
        """JSON-able outcome (without images)."""
        return {
            "gallery": self.gallery,
            "gallery_version": self.gallery_version,
            "gallery_faces": self.gallery_faces,
            "top_k": self.top_k,
            "method": self.method,
            "embedder": self.embedder,
            "query": {
                "faces_detected": self.query.faces_detected,
                "whole_image": self.query.whole_image,
            },
            "results": [h.as_json() for h in self.hits],
            "notices": list(self.notices),
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
            "caveat": self.caveat,
        }


def check_top_k(value: int | str | None) -> int:
    """The number of candidates asked for: 1 to :data:`MAX_TOP_K` (default 10)."""
    if value is None or value == "":
        return DEFAULT_TOP_K
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_TOP_K:
        raise ValueError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {text[:20]!r}.")
    return int(text)


class GallerySearcher:
    """The face encoder and the index cache, shared by every search of a process."""

    def __init__(
        self, indexes: GalleryIndexes, encoder: FaceEncoder | Callable[[], FaceEncoder]
    ) -> None:
        self.indexes = indexes
        self._encoder = encoder

    @property
    def encoder(self) -> FaceEncoder:
        """The encoder (created on first use when a factory was given)."""
        if callable(self._encoder) and not hasattr(self._encoder, "embed"):
            self._encoder = self._encoder()
        return self._encoder  # type: ignore[return-value]

    def analyse(self, image_u8: np.ndarray, *, allow_whole_image: bool = False) -> QueryFace:
        """Find, align and embed the query's face (the largest if several).

        No face: :class:`NoFaceError`, unless ``allow_whole_image`` (a generated likeness is a
        face crop already), then the whole image is used as the face box.
        """
        encoder = self.encoder
        work_u8, _ = working_copy(image_u8)
        faces = encoder.detect(work_u8)
        whole = False
        if not faces:
            if not allow_whole_image:
                raise NoFaceError(
                    "no face was found on the query image; use a photo in which the face is "
                    "upright, frontal and at least about 80 pixels wide."
                )
            faces, whole = [encoder.whole_image_face(work_u8)], True
        vector = encoder.embed([work_u8], [faces[0]])[0]
        if not np.isfinite(vector).all():
            raise NoFaceError(
                "the face on the query image could not be encoded; use another photo."
            )
        return QueryFace(
            len(faces) if not whole else 0,
            whole,
            faces[0],
            vector,
            encoder.thumbnail(work_u8, faces[0]),
        )

    def search(
        self,
        session: Session,
        gallery_name: str,
        image_u8: np.ndarray,
        *,
        top_k: int = DEFAULT_TOP_K,
        allow_whole_image: bool = False,
        exact: bool = False,
    ) -> SearchOutcome:
        """Search ``gallery_name`` for the face on ``image_u8``.

        Raises :class:`UnknownGalleryError`, :class:`EmptyGalleryError`, :class:`NoFaceError`.
        """
        top_k = check_top_k(top_k)
        t0 = time.perf_counter()
        gallery = get_gallery(session, gallery_name)
        encoder = self.encoder
        version = session.scalar(sa.select(Gallery.version).where(Gallery.id == gallery.id))
        loader = lambda: load_snapshot(session, gallery.id, encoder.name, encoder.dim)  # noqa: E731
        if exact:
            snapshot = loader()
            index = ExactIndex(snapshot.ids, snapshot.vectors)
            version = snapshot.version
        else:
            index = self.indexes.get(gallery.id, int(version or 0), encoder.name, loader)
        if len(index) == 0:
            raise EmptyGalleryError(
                f"gallery {gallery.name!r} has no enrolled faces yet; enrol photos first "
                f"(`sketch2face gallery add DIR --gallery {gallery.name}` or the admin page)."
            )
        t1 = time.perf_counter()
        query = self.analyse(image_u8, allow_whole_image=allow_whole_image)
        t2 = time.perf_counter()
        ids, distances = index.search(query.vector[None], top_k)
        found = [(int(i), float(d)) for i, d in zip(ids[0], distances[0]) if i >= 0]
        names = dict(
            session.execute(
                sa.select(GalleryPhoto.id, GalleryPhoto.file_name).where(
                    GalleryPhoto.id.in_([i for i, _ in found])
                )
            ).all()
        )
        hits = [
            SearchHit(rank, photo_id, names[photo_id], distance, float(similarity(distance)))
            for rank, (photo_id, distance) in enumerate(
                ((i, d) for i, d in found if i in names), start=1
            )
        ]
        t3 = time.perf_counter()
        notices = []
        if query.whole_image:
            notices.append(
                "No face was detected on the query; the whole image was used as the face."
            )
        elif query.faces_detected > 1:
            notices.append(
                f"{query.faces_detected} faces were found on the query; the largest was searched."
            )
        if len(index) < top_k:
            notices.append(f"The gallery holds only {len(index)} faces.")
        return SearchOutcome(
            gallery=gallery.name,
            gallery_id=gallery.id,
            gallery_version=int(version or 0),
            gallery_faces=len(index),
            top_k=top_k,
            method=index.kind,
            embedder=f"{encoder.name}@{encoder.version}",
            query=query,
            hits=hits,
            notices=notices,
            timings_ms={
                "index": (t1 - t0) * 1e3,
                "face": (t2 - t1) * 1e3,
                "search": (t3 - t2) * 1e3,
            },
        )
