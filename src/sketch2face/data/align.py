"""Face detection and the square face crop shared by photos and sketches.

Every image of the dataset, and every sketch at inference, is framed the same way: a square around
the dlib face box, with enough margin that the whole head and some hair show (FS2K ``photo1``
framing: the face box is about half the crop width), resized to 256x256. When no face is found the
image is padded to a centred square instead.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

#: Output side of every prepared image.
IMAGE_SIZE_PX = 256
#: dlib box width / crop side. Calibrated on FS2K photo1 (250x250 portraits): its median dlib box
#: is 0.57 of the frame, centred 0.07 frames below the middle; 0.52 keeps the whole head in view.
FACE_FRACTION = 0.52
#: The dlib HOG box spans eyebrows..chin; move the crop centre up (in box widths) so the hair shows
#: (0.13 reproduces photo1's vertical framing).
CENTER_SHIFT_UP = 0.13
#: A face crop may move off-centre by this fraction of its side to avoid padding (mirrored borders
#: look unnatural), so faces stay roughly centred while most crops need no padding at all.
MAX_NUDGE = 0.08
#: Width (output px) over which a photo's edge pixels fade into the neutral pad colour.
FADE_PX = 20.0
#: Detection runs on a copy whose longer side is this many pixels: bounded cost (~20-40 ms) for
#: any input size, and faces of small inputs (CelebA 178x218) become large enough for HOG.
DETECT_LONG_SIDE_PX = 320


@dataclass(frozen=True)
class CropBox:
    """A square crop in source-image pixel coordinates (may extend past the image borders)."""

    x0: float
    y0: float
    side: float


def box_from_face(left: float, top: float, right: float, bottom: float) -> CropBox:
    """Square crop around a face rectangle, with the project's standard margin."""
    width = max(right - left, 1.0)
    height = max(bottom - top, 1.0)
    size = (width + height) / 2.0
    cx = (left + right) / 2.0
    cy = (top + bottom) / 2.0 - CENTER_SHIFT_UP * size
    side = size / FACE_FRACTION
    return CropBox(cx - side / 2.0, cy - side / 2.0, side)


def nudge_inside(box: CropBox, height: int, width: int, *, max_shift: float = MAX_NUDGE) -> CropBox:
    """Shift a crop box (by at most ``max_shift`` of its side per axis) to need less padding."""
    limit = max_shift * box.side

    def shift(start: float, extent: int) -> float:
        if box.side >= extent:  # cannot fit: centre the overhang instead
            wanted = (extent - box.side) / 2.0
        else:
            wanted = min(max(start, 0.0), extent - box.side)
        return start + float(np.clip(wanted - start, -limit, limit))

    return CropBox(shift(box.x0, width), shift(box.y0, height), box.side)


def centered_square_box(height: int, width: int) -> CropBox:
    """The fallback: the whole image, centred in a square (pad the short side)."""
    side = float(max(height, width))
    return CropBox((width - side) / 2.0, (height - side) / 2.0, side)


def crop_square(
    image_u8: np.ndarray,
    box: CropBox,
    *,
    size_px: int = IMAGE_SIZE_PX,
    border: str = "neutral",
) -> np.ndarray:
    """Cut ``box`` out of ``image_u8`` and resize it to ``size_px`` square.

    Args:
        border: how to fill what lies outside the image: ``"neutral"`` (photos: the edge pixels
            fade within :data:`FADE_PX` into the mean edge colour; neither streaks nor mirrored
            ghosts, which synthetic sketches would otherwise draw), ``"white"`` (sketches: paper),
            ``"replicate"`` or ``"reflect"``.
    """
    scale = size_px / box.side
    # Affine map source -> output; one warp does crop, pad and resize together.
    matrix = np.array([[scale, 0.0, -box.x0 * scale], [0.0, scale, -box.y0 * scale]], np.float64)
    shrinking = scale < 1.0
    src = image_u8
    if shrinking and scale < 0.5:
        # Pre-shrink with INTER_AREA so warpAffine does not alias on big inputs.
        factor = 0.5 / scale
        new_w = max(1, round(image_u8.shape[1] / factor))
        new_h = max(1, round(image_u8.shape[0] / factor))
        src = cv2.resize(image_u8, (new_w, new_h), interpolation=cv2.INTER_AREA)
        fx = new_w / image_u8.shape[1]
        fy = new_h / image_u8.shape[0]
        matrix = matrix @ np.array([[1 / fx, 0, 0], [0, 1 / fy, 0], [0, 0, 1]], np.float64)
    if border == "neutral":
        return _neutral_fade(src, matrix, size_px, shrinking)
    if border == "white":
        mode, value = cv2.BORDER_CONSTANT, (255, 255, 255)
    elif border == "replicate":
        mode, value = cv2.BORDER_REPLICATE, (0, 0, 0)
    elif border == "reflect":
        mode, value = cv2.BORDER_REFLECT_101, (0, 0, 0)
    else:
        raise ValueError(
            f"border must be 'neutral', 'white', 'reflect' or 'replicate', not {border!r}"
        )
    return cv2.warpAffine(
        np.ascontiguousarray(src),
        matrix,
        (size_px, size_px),
        # warpAffine has no INTER_AREA (it runs as linear): big reductions were pre-shrunk above.
        flags=cv2.INTER_LINEAR if shrinking else cv2.INTER_CUBIC,
        borderMode=mode,
        borderValue=value,
    )


def _neutral_fade(src: np.ndarray, matrix: np.ndarray, size_px: int, shrinking: bool) -> np.ndarray:
    flags = cv2.INTER_LINEAR if shrinking else cv2.INTER_CUBIC
    out = cv2.warpAffine(
        np.ascontiguousarray(src),
        matrix,
        (size_px, size_px),
        flags=flags,
        borderMode=cv2.BORDER_REPLICATE,
    )
    inside = cv2.warpAffine(
        np.full(src.shape[:2], 255, np.uint8),
        matrix,
        (size_px, size_px),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if inside.min() >= 128:
        return out
    outside = (inside < 128).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 3)  # px to the nearest image pixel
    alpha = np.clip(distance / FADE_PX, 0.0, 1.0)[:, :, None]
    edges = np.concatenate([src[0], src[-1], src[:, 0], src[:, -1]]).astype(np.float32)
    neutral = edges.mean(axis=0)
    blended = out.astype(np.float32) * (1.0 - alpha) + neutral * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


class FaceCropper:
    """Holds the dlib HOG face detector (slow to create: build once, reuse for every image)."""

    def __init__(self, *, upsample_on_miss: bool = True) -> None:
        import dlib  # local import: only the data stage needs dlib

        self._detector = dlib.get_frontal_face_detector()
        self._lock = threading.Lock()
        self.upsample_on_miss = upsample_on_miss

    def detect(self, image_u8: np.ndarray) -> CropBox | None:
        """Return the crop box around the largest face, or None when no face is found."""
        height, width = image_u8.shape[:2]
        scale = DETECT_LONG_SIDE_PX / max(height, width)
        work_u8 = cv2.resize(
            image_u8,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        gray = cv2.cvtColor(work_u8, cv2.COLOR_RGB2GRAY)
        rects = self._run(gray, 0)
        if not rects and self.upsample_on_miss:
            rects = self._run(gray, 1)
        if not rects:
            return None
        best = max(rects, key=lambda r: r.width() * r.height())
        box = box_from_face(best.left(), best.top(), best.right(), best.bottom())
        box = CropBox(box.x0 / scale, box.y0 / scale, box.side / scale)
        return nudge_inside(box, height, width)

    def _run(self, gray: np.ndarray, upsample: int) -> list:  # type: ignore[type-arg]
        with self._lock:  # dlib objects are not documented as thread-safe
            return list(self._detector(gray, upsample))


_default_cropper: FaceCropper | None = None


def default_cropper() -> FaceCropper:
    """A process-wide FaceCropper, created on first use."""
    global _default_cropper
    if _default_cropper is None:
        _default_cropper = FaceCropper()
    return _default_cropper
