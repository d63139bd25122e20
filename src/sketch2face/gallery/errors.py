"""Gallery errors: each says what is wrong and what to do; the web layer maps them to 4xx."""

from __future__ import annotations

from sketch2face.errors import Sketch2FaceError


class GalleryError(Sketch2FaceError):
    """Base class; ``status`` is the HTTP status the web app answers with."""

    status = 400


class GalleryNameError(GalleryError, ValueError):
    """A gallery name is not acceptable."""


class UnknownGalleryError(GalleryError, LookupError):
    """No gallery of that name."""

    status = 404


class GalleryExistsError(GalleryError):
    """A gallery of that name exists already."""

    status = 409


class EmptyGalleryError(GalleryError):
    """The gallery has no enrolled faces (for the encoder in use)."""

    status = 409


class NoFaceError(GalleryError, ValueError):
    """No face was found on a query image."""

    status = 422


class UnsafeArchiveError(GalleryError, ValueError):
    """An uploaded archive is refused as a whole (ZIP bomb, path traversal, not a ZIP...)."""


class EnrolmentConflictError(GalleryError):
    """Another enrolment into the same gallery committed the same photo first."""

    status = 409
