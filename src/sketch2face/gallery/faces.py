"""Faces for the gallery: detect, align (the recogniser's chip), embed, and a face thumbnail.

Everything the gallery needs from a face recogniser goes through the :class:`FaceEncoder`
protocol, so a better recogniser can replace dlib's without touching enrolment, storage or
search: it brings its own ``name``/``version`` (stored with every embedding, so vectors of
different recognisers are never compared), ``dim`` and distance scale.

:class:`DlibFaceEncoder` is the default: dlib's HOG face detector and 5-point landmarks,
then the 150 px chip and dlib's ResNet descriptor through the project's PyTorch port
(``sketch2face.identity``; equal to dlib's own to float rounding). Distances are Euclidean;
dlib's authors use 0.6 as "same person" on their benchmark.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import cv2
import numpy as np

#: Faces are detected on a copy no longer than this on its longer side (HOG cost grows with the
#: pixel count; a 12-megapixel photo takes seconds at full size). Landmarks are then placed on
#: the full-resolution image.
DETECT_MAX_SIDE = 1024
THUMBNAIL_PX = 160
#: margin around the face in the thumbnail, as dlib's chip padding (0.25 is the recogniser's)
THUMBNAIL_PADDING = 0.45


@dataclass(frozen=True)
class DetectedFace:
    """One face: its box (left, top, right, bottom) and dlib's 5 landmarks (x, y)."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray  # (5, 2) float64

    @property
    def area(self) -> int:
        """Box area in pixels."""
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])

    def as_json(self) -> dict[str, Any]:
        """JSON-able description (stored with the photo)."""
        return {
            "box": [int(v) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


class FaceEncoder(Protocol):
    """What the gallery needs from a face recogniser."""

    #: stored with every embedding; vectors are compared only within one name
    name: str
    version: str
    dim: int

    def detect(self, image_u8: np.ndarray) -> list[DetectedFace]:
        """Every face in an HxWx3 uint8 RGB image, largest first (empty: none)."""
        ...

    def whole_image_face(self, image_u8: np.ndarray) -> DetectedFace:
        """The face of an image that *is* a face crop (a generated likeness) when detection
        fails: the whole image as the box, landmarks placed in it."""
        ...

    def embed(self, images_u8: Sequence[np.ndarray], faces: Sequence[DetectedFace]) -> np.ndarray:
        """(N, dim) float32 descriptors, one per (image, face) pair."""
        ...

    def thumbnail(self, image_u8: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The aligned face with some margin, ``THUMBNAIL_PX`` square, uint8 RGB."""
        ...


class DlibFaceEncoder:
    """dlib HOG detector + 5-point landmarks + dlib ResNet (PyTorch port), on the CPU.

    Thread-safe: dlib calls are serialised; the ResNet runs under torch's own thread settings.
    """

    name = "dlib_resnet_v1"
    #: chip geometry and implementation; bump when either changes what a vector means
    version = "chip150-pad0.25/torch-port-1"
    dim = 128

    def __init__(self, device: str = "cpu", *, batch_size: int = 16) -> None:
        import dlib

        from sketch2face.facemodels import SHAPE_PREDICTOR_5, dlib_model_path

        self._dlib: Any = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_5)))
        self._lock = threading.Lock()
        self._device = device
        self._batch_size = batch_size
        self._embedder: Any = None

    def _model(self) -> Any:
        if self._embedder is None:
            from sketch2face.identity.embedder import FaceEmbedder

            self._embedder = FaceEmbedder(self._device, batch_size=self._batch_size)
        return self._embedder

    def _landmarks(self, image_u8: np.ndarray, rect: Any) -> np.ndarray:
        shape = self._predictor(image_u8, rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)

    def detect(self, image_u8: np.ndarray) -> list[DetectedFace]:
        image_u8 = _check_rgb(image_u8)
        height, width = image_u8.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        small = (
            image_u8
            if scale == 1.0
            else cv2.resize(
                image_u8,
                (round(width * scale), round(height * scale)),
                interpolation=cv2.INTER_AREA,
            )
        )
        faces = []
        with self._lock:
            # Upsampling once finds faces under ~80 px but costs 4x: only when nothing was found
            # (and only on images small enough that such faces are plausible).
            rects = list(self._detector(small, 0))
            if not rects and max(small.shape[:2]) <= 640:
                rects = list(self._detector(small, 1))
            for r in rects:
                box = (
                    round(r.left() / scale),
                    round(r.top() / scale),
                    round(r.right() / scale),
                    round(r.bottom() / scale),
                )
                rect = self._dlib.rectangle(*box)
                faces.append(DetectedFace(box, self._landmarks(image_u8, rect)))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def whole_image_face(self, image_u8: np.ndarray) -> DetectedFace:
        image_u8 = _check_rgb(image_u8)
        height, width = image_u8.shape[:2]
        box = (0, 0, width - 1, height - 1)
        with self._lock:
            points = self._landmarks(image_u8, self._dlib.rectangle(*box))
        return DetectedFace(box, points)

    def embed(self, images_u8: Sequence[np.ndarray], faces: Sequence[DetectedFace]) -> np.ndarray:
        if len(images_u8) != len(faces):
            raise ValueError(f"{len(faces)} faces for {len(images_u8)} images")
        if not images_u8:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._model().embed_u8(list(images_u8), [f.landmarks for f in faces])
        return np.asarray(vectors, dtype=np.float32)

    def thumbnail(self, image_u8: np.ndarray, face: DetectedFace) -> np.ndarray:
        return aligned_thumbnail(image_u8, face)


def aligned_thumbnail(
    image_u8: np.ndarray,
    face: DetectedFace,
    size: int = THUMBNAIL_PX,
    padding: float = THUMBNAIL_PADDING,
) -> np.ndarray:
    """The face rotated upright and scaled as dlib's chip, with a wider margin (uint8 RGB)."""
    from sketch2face.identity.chips import chip_transform

    matrix = chip_transform(face.landmarks, size=size, padding=padding)
    # Shrinking a large face a lot: blur first so the bilinear sampling does not alias.
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # chip px per source px
    source = image_u8
    if scale < 0.5:
        sigma = 0.5 / scale
        source = cv2.GaussianBlur(image_u8, (0, 0), sigmaX=sigma)
    return cv2.warpAffine(
        source,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def _check_rgb(image_u8: np.ndarray) -> np.ndarray:
    image_u8 = np.ascontiguousarray(image_u8)
    if image_u8.ndim != 3 or image_u8.shape[2] != 3 or image_u8.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got {image_u8.shape} {image_u8.dtype}"
        )
    return image_u8


@cache
def default_encoder() -> DlibFaceEncoder:
    """The process-wide default encoder (loading dlib's models takes about a second)."""
    return DlibFaceEncoder()
