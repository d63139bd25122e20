"""Domain exceptions. Every message says what is wrong and how to fix it."""

from __future__ import annotations


class Sketch2FaceError(Exception):
    """Base class for all errors raised on purpose by sketch2face."""


class InvalidImageError(Sketch2FaceError, ValueError):
    """An input is not a decodable image, is empty, too large, or of an unsupported type."""


class DatasetError(Sketch2FaceError):
    """A dataset source or output folder is missing, inconsistent or would be overwritten."""


class CheckpointError(Sketch2FaceError):
    """A checkpoint file is missing, corrupt, or was written for another architecture."""


class WeightsNotFoundError(Sketch2FaceError, FileNotFoundError):
    """Optional pretrained weights (GFPGAN, VGG, LPIPS backbone) were not given or not found."""


class ConfigError(Sketch2FaceError, ValueError):
    """A configuration file or override is invalid."""


class InvalidAttributesError(Sketch2FaceError, ValueError):
    """Requested witness attributes (skin tone, hair colour, gender) are not understood."""


class ProvenanceError(Sketch2FaceError, ValueError):
    """A file cannot be signed or checked: unreadable key, not a PNG/PDF, corrupt input."""


class AppealSheetError(Sketch2FaceError, ValueError):
    """An appeal sheet cannot be made: missing contact line, description too long for the page."""
