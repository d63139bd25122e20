"""The one way images become model inputs: face crop to 256x256 and (for sketches) normalisation.

``prepare_sketch`` is called by ``prepare`` for every dataset sketch and by the generation pipeline
for every user sketch, so training and inference see identically processed inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sketch2face.data.align import (
    IMAGE_SIZE_PX,
    CropBox,
    FaceCropper,
    centered_square_box,
    crop_square,
    default_cropper,
)
from sketch2face.data.sketchify import flatten_illumination, normalize_sketch
from sketch2face.imaging import ImageInput, load_image


@dataclass(frozen=True)
class PreparedImage:
    """A 256x256x3 uint8 image and whether a face was found (False: centred pad fallback)."""

    image_u8: np.ndarray
    face_found: bool


def prepare_sketch(
    image: ImageInput,
    cropper: FaceCropper | None = None,
    *,
    box: CropBox | None = None,
    detect: bool = True,
) -> PreparedImage:
    """Turn an arbitrary sketch into the normalised 256x256 model input.

    Any size, RGBA (on white), grayscale or a photo of a drawing on unevenly lit paper. The face is
    detected on the sketch itself (dlib HOG finds faces on most drawings) unless ``box`` is given
    (a pair aligned with its photo); with no face the sketch is padded to a centred white square.
    Then illumination is flattened and ink/paper levels normalised. Deterministic.

    Args:
        image: anything :func:`sketch2face.imaging.load_image` accepts.
        cropper: a reusable :class:`FaceCropper`; the process-wide one when None.
        box: crop box to use instead of detecting (e.g. the face box of the paired photo).
        detect: False skips detection (box or centred pad only).
    """
    image_u8 = load_image(image)
    box, face_found = resolve_box(image_u8, cropper, box=box, detect=detect)
    # Flatten on an edge-replicated crop (a white pad beside shadowed paper would read as a bright
    # paper level and darken the border), then paint the padded area white.
    crop_u8 = crop_square(image_u8, box, size_px=IMAGE_SIZE_PX, border="replicate")
    gray = cv2.cvtColor(crop_u8, cv2.COLOR_RGB2GRAY)
    sketch_u8 = normalize_sketch(flatten_illumination(gray))
    if not _box_inside(box, *image_u8.shape[:2]):
        outside = crop_square(
            np.zeros_like(image_u8[:, :, :1].repeat(3, axis=2)), box, border="white"
        )
        np.maximum(sketch_u8, outside, out=sketch_u8)
    return PreparedImage(sketch_u8, face_found)


def resolve_box(
    image_u8: np.ndarray, cropper: FaceCropper | None, *, box: CropBox | None, detect: bool
) -> tuple[CropBox, bool]:
    """The given box, else a detected face box, else the centred square; and whether a face was found."""
    if box is not None:
        return box, True
    found = (cropper or default_cropper()).detect(image_u8) if detect else None
    if found is not None:
        return found, True
    return centered_square_box(*image_u8.shape[:2]), False


def _box_inside(box: CropBox, height: int, width: int) -> bool:
    return (
        box.x0 >= 0 and box.y0 >= 0 and box.x0 + box.side <= width and box.y0 + box.side <= height
    )


def prepare_photo(
    image: ImageInput,
    cropper: FaceCropper | None = None,
    *,
    box: CropBox | None = None,
    detect: bool = True,
) -> PreparedImage:
    """Crop a face photo to 256x256 like :func:`prepare_sketch` (mirrored-edge pad, colour kept)."""
    image_u8 = load_image(image)
    box, face_found = resolve_box(image_u8, cropper, box=box, detect=detect)
    return PreparedImage(crop_square(image_u8, box, size_px=IMAGE_SIZE_PX), face_found)
