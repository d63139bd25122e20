"""Enrol a batch of photos: decode, detect, align, embed, thumbnail, store; report what was skipped.

Every photo is all-or-nothing: its original file, face thumbnail, row and embedding are committed
together, and files written for rows that were not committed are deleted. A batch is either

- **resumable** (default; the CLI): committed every ``chunk_size`` photos. If it stops half way
  (crash, Ctrl-C), running it again skips what is in already (same file hash) and goes on;
- **atomic** (``atomic=True``; web uploads, ``--atomic``): one transaction; any failure leaves the
  gallery as it was.

Skipped, and counted in the report: duplicates (a file whose SHA-256 is in the gallery, or
earlier in the batch), files that are not images, files or images too large, photos with no
face, and (with ``several_faces="skip"``) photos with more than one face. By default a photo with
several faces is enrolled with its largest face and counted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from sketch2face.db.gallery import FaceEmbedding, Gallery, GalleryPhoto
from sketch2face.errors import InvalidImageError
from sketch2face.gallery.errors import EnrolmentConflictError
from sketch2face.gallery.faces import DetectedFace, FaceEncoder
from sketch2face.gallery.store import delete_objects, existing_hashes, touch
from sketch2face.gallery.zipsafe import SourceFile
from sketch2face.imaging import (
    ALLOWED_FORMATS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    decode_image_bytes,
)
from sketch2face.storage import ObjectStore

log = logging.getLogger(__name__)

#: Images are analysed at most this long on their longer side (the original file is kept as is):
#: a face big enough to recognise survives, and a 40-megapixel photo costs no more than a small one.
WORK_MAX_SIDE = 2048
#: Photos waiting to be embedded are flushed before they hold more memory than this (big photos).
PENDING_BYTES = 256 * 1024 * 1024
#: A photo needs at least this many pixels on each side to hold a usable face.
MIN_PHOTO_SIDE = 32

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
}
EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tif",
    "GIF": "gif",
}

# reasons a file is skipped
DUPLICATE = "duplicate"
NOT_IMAGE = "not an image"
TOO_LARGE = "too large"
TOO_SMALL = "too small"
NO_FACE = "no face"
SEVERAL_FACES = "several faces"
REASONS = (DUPLICATE, NOT_IMAGE, TOO_LARGE, TOO_SMALL, NO_FACE, SEVERAL_FACES)


@dataclass(frozen=True)
class EnrolOptions:
    """How a batch is enrolled."""

    #: "largest": enrol the largest face of a photo with several (counted); "skip": skip it
    several_faces: str = "largest"
    atomic: bool = False
    chunk_size: int = 32
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        if self.several_faces not in ("largest", "skip"):
            raise ValueError("several_faces must be 'largest' or 'skip'")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")


@dataclass
class EnrolmentReport:
    """What a batch did: counts per outcome and the skipped files with their reasons."""

    gallery: str
    batch_id: str
    embedder: str
    files: int = 0
    enrolled: int = 0
    #: photos enrolled with the largest of several faces (policy "largest")
    several_faces_enrolled: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, reason: str) -> int:
        """How many files were skipped for ``reason``."""
        return sum(1 for _, r in self.skipped if r == reason)

    @property
    def counts(self) -> dict[str, int]:
        """Skipped files per reason (every reason listed, zeros included)."""
        found = Counter(r for _, r in self.skipped)
        return {reason: found.get(reason, 0) for reason in REASONS}

    def as_json(self, *, max_skipped: int = 1000) -> dict[str, Any]:
        """JSON-able report (the skipped list is capped)."""
        return {
            "gallery": self.gallery,
            "batch_id": self.batch_id,
            "embedder": self.embedder,
            "files": self.files,
            "enrolled": self.enrolled,
            "several_faces_enrolled": self.several_faces_enrolled,
            "skipped": self.counts,
            "skipped_files": [{"file": n, "reason": r} for n, r in self.skipped[:max_skipped]],
            "seconds": round(self.seconds, 2),
            "photos_per_s": round(self.files / self.seconds, 2) if self.seconds > 0 else None,
        }

    def summary(self) -> str:
        """One line for people."""
        parts = [f"{self.enrolled} enrolled"]
        if self.several_faces_enrolled:
            parts.append(f"{self.several_faces_enrolled} of them with several faces (largest used)")
        parts += [f"{n} {reason}" for reason, n in self.counts.items() if n]
        return f"{self.files} files: " + ", ".join(parts)


@dataclass
class _Pending:
    source: SourceFile
    sha256: str
    data: bytes
    fmt: str
    width: int
    height: int
    work_u8: np.ndarray
    work_scale: float  # work pixels per original pixel
    face: DetectedFace
    faces_detected: int


def probe_image(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) from the header; InvalidImageError if not an accepted image,
    ``ValueError("too large")`` if over ``max_pixels``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt, (width, height) = probe.format or "", probe.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"not a readable image ({type(exc).__name__})") from exc
    if fmt not in ALLOWED_FORMATS:
        raise InvalidImageError(f"image format {fmt or 'unknown'} is not accepted")
    if width * height > max_pixels:
        raise ValueError("too large")
    return fmt, width, height


def working_copy(image_u8: np.ndarray) -> tuple[np.ndarray, float]:
    """The image scaled to at most :data:`WORK_MAX_SIDE` pixels on its longer side, and the scale."""
    height, width = image_u8.shape[:2]
    scale = min(1.0, WORK_MAX_SIDE / max(height, width))
    if scale == 1.0:
        return image_u8, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image_u8, size, interpolation=cv2.INTER_AREA), scale


def jpeg_bytes(image_u8: np.ndarray, quality: int = 90) -> bytes:
    """JPEG encoding of an RGB image."""
    buf = io.BytesIO()
    Image.fromarray(image_u8).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _face_json(face: DetectedFace, scale: float) -> dict[str, Any]:
    """The face in original-image pixels (analysis ran on a copy scaled by ``scale``)."""
    return DetectedFace(
        tuple(round(v / scale) for v in face.box),  # type: ignore[arg-type]
        face.landmarks / scale,
    ).as_json()


def enrol_files(
    session: Session,
    store: ObjectStore,
    gallery: Gallery,
    files: Sequence[SourceFile],
    encoder: FaceEncoder,
    *,
    options: EnrolOptions | None = None,
    enrolled_by: str | None = None,
    progress: Callable[[SourceFile, EnrolmentReport], None] | None = None,
    before_commit: Callable[[Session, EnrolmentReport], None] | None = None,
) -> EnrolmentReport:
    """Enrol ``files`` into ``gallery``; returns the report.

    ``progress`` is called after each file; ``before_commit`` just before the atomic batch's one
    commit (to add an audit event to the same transaction). Errors that concern the batch as a
    whole (a damaged archive, storage down, a concurrent enrolment of the same photo) roll back
    what is not committed, delete its files, and propagate.
    """
    options = options or EnrolOptions()
    started = time.perf_counter()
    batch_id = uuid.uuid4().hex
    gallery_id, gallery_name = gallery.id, gallery.name
    report = EnrolmentReport(
        gallery_name, batch_id, f"{encoder.name}@{encoder.version}", files=len(files)
    )
    seen = existing_hashes(session, gallery_id)
    pending: list[_Pending] = []
    written: list[str] = []  # files of rows not committed yet

    def flush() -> None:
        if not pending:
            return
        vectors = encoder.embed([p.work_u8 for p in pending], [p.face for p in pending])
        photos: list[tuple[GalleryPhoto, np.ndarray]] = []
        for item, vector in zip(pending, vectors):
            if not np.isfinite(vector).all():
                report.skipped.append((item.source.name, NO_FACE))
                continue
            ext = EXTENSIONS[item.fmt]
            prefix = f"gallery/g{gallery_id}/{batch_id}/{item.sha256}"
            photo_key, thumb_key = f"{prefix}.{ext}", f"{prefix}.face.jpg"
            written.extend(
                (photo_key, thumb_key)
            )  # before the put: a late failure may have stored it
            store.put(photo_key, item.data, content_type=CONTENT_TYPES[item.fmt])
            thumb = jpeg_bytes(encoder.thumbnail(item.work_u8, item.face))
            store.put(thumb_key, thumb, content_type="image/jpeg")
            photo = GalleryPhoto(
                gallery_id=gallery_id,
                file_name=item.source.name,
                sha256=item.sha256,
                photo_key=photo_key,
                thumb_key=thumb_key,
                content_type=CONTENT_TYPES[item.fmt],
                width=item.width,
                height=item.height,
                faces_detected=item.faces_detected,
                face=_face_json(item.face, item.work_scale),
                batch_id=batch_id,
                enrolled_by=enrolled_by,
            )
            session.add(photo)
            photos.append((photo, vector))
            if item.faces_detected > 1:
                report.several_faces_enrolled += 1
        session.flush()  # photo ids
        session.add_all(
            FaceEmbedding(
                photo_id=photo.id,
                gallery_id=gallery_id,
                embedder=encoder.name,
                embedder_version=encoder.version,
                dim=encoder.dim,
                vector=FaceEmbedding.pack(vector),
            )
            for photo, vector in photos
        )
        report.enrolled += len(photos)
        pending.clear()
        if not options.atomic and photos:
            touch(gallery)
            session.commit()
            written.clear()

    try:
        for source in files:
            _prepare(source, options, encoder, seen, pending, report)
            held = sum(p.work_u8.nbytes + len(p.data) for p in pending)
            if len(pending) >= options.chunk_size or held > PENDING_BYTES:
                flush()
            if progress is not None:
                progress(source, report)
        flush()
        if options.atomic:
            if report.enrolled:
                touch(gallery)
            if before_commit is not None:
                before_commit(session, report)
            session.commit()
            written.clear()
    except sa.exc.IntegrityError as exc:
        session.rollback()
        delete_objects(store, written)
        raise EnrolmentConflictError(
            f"another enrolment into gallery {gallery_name!r} added some of the same photos "
            "first; run this one again to add the rest (photos already in are skipped)."
        ) from exc
    except BaseException:
        session.rollback()
        delete_objects(store, written)
        raise
    report.seconds = time.perf_counter() - started
    log.info("enrolment %s into %s: %s", batch_id, gallery_name, report.summary())
    return report


def _prepare(
    source: SourceFile,
    options: EnrolOptions,
    encoder: FaceEncoder,
    seen: set[str],
    pending: list[_Pending],
    report: EnrolmentReport,
) -> None:
    """Check, decode and detect one file; queue it in ``pending`` or record why it is skipped."""
    if source.size > options.max_image_bytes:
        report.skipped.append((source.name, TOO_LARGE))
        return
    data = source.read()
    if len(data) > options.max_image_bytes:
        report.skipped.append((source.name, TOO_LARGE))
        return
    digest = hashlib.sha256(data).hexdigest()
    if digest in seen:
        report.skipped.append((source.name, DUPLICATE))
        return
    seen.add(digest)  # later copies in this batch are duplicates too
    try:
        fmt, width, height = probe_image(data, options.max_image_pixels)
        if min(width, height) < MIN_PHOTO_SIDE:
            report.skipped.append((source.name, TOO_SMALL))
            return
        image_u8 = decode_image_bytes(
            data, name=source.name, max_pixels=options.max_image_pixels, min_side=MIN_PHOTO_SIDE
        )
    except InvalidImageError:
        report.skipped.append((source.name, NOT_IMAGE))
        return
    except ValueError:
        report.skipped.append((source.name, TOO_LARGE))
        return
    work_u8, scale = working_copy(image_u8)
    faces = encoder.detect(work_u8)
    if not faces:
        report.skipped.append((source.name, NO_FACE))
        return
    if len(faces) > 1 and options.several_faces == "skip":
        report.skipped.append((source.name, SEVERAL_FACES))
        return
    pending.append(
        _Pending(source, digest, data, fmt, width, height, work_u8, scale, faces[0], len(faces))
    )
