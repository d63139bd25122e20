"""dlib's 150 px face chip: geometry from 5 landmarks, and a differentiable warp in PyTorch.

``dlib.get_face_chip(image, shape_5pt, size=150, padding=0.25)`` is what the face recogniser was
trained on. dlib (image_transforms/interpolation.h) builds it in three steps, reproduced here:

1. ``get_face_chip_details``: a least-squares similarity transform (Umeyama) from a padded 5-point
   template, in chip pixels, to the landmarks;
2. ``chip_details``: that transform is turned into a rectangle (``centered_drect`` around the
   image of the chip point (size/2, size/2), side ``size * scale``) plus an angle;
3. ``extract_image_chips``: chip corners (0, 0), (size-1, 0), (0, size-1) are mapped onto the rotated
   rectangle's corners and sampled bilinearly (pixel centres at integer coordinates; a sample
   whose 2x2 neighbourhood leaves the image is black). Faces more than twice the chip size are
   first reduced with an image pyramid so that bilinear sampling does not alias.

Step 3 maps chip pixels with a scale of (size * scale - 1) / (size - 1), not ``scale``: the
rectangle is one pixel narrower than ``size * scale``. We follow dlib, not the fitted similarity.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sketch2face.facemodels import SHAPE_PREDICTOR_5, dlib_model_path

#: dlib's 5-point template on the unit square (interpolation.h, ``get_face_chip_details``), in the
#: order of shape_predictor_5_face_landmarks: eye corners (image right eye outer, inner; image left
#: eye outer, inner) and the base of the nose.
TEMPLATE5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
#: The recogniser's chip settings (dlib's dnn_face_recognition_ex.cpp).
CHIP_SIZE = 150
CHIP_PADDING = 0.25


@dataclass(frozen=True)
class ChipDetails:
    """dlib's ``chip_details``: the source rectangle (left, top, right, bottom) and its angle."""

    rect: tuple[float, float, float, float]
    angle: float  # radians; the chip's x axis in the image is (cos, sin)
    size: int

    @property
    def scale(self) -> float:
        """Source pixels per chip pixel, as dlib samples them (corner to corner)."""
        return (self.rect[2] - self.rect[0]) / (self.size - 1)


def _similarity_umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity (c*R, t) with dst ~ c*R@src + t (Umeyama 1991, eqs. 34-43).

    The same estimator as dlib's ``find_similarity_transform``, including its reflection guard.
    """
    mean_src, mean_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mean_src, dst - mean_dst
    sigma_src = float((src_c**2).sum(1).mean())
    cov = dst_c.T @ src_c / len(src)  # (2, 2)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(cov) < 0 or (
        np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0
    ):
        s[1, 1] = -1  # numpy sorts singular values descending, so the smaller is last
    rotation = u @ s @ vt
    c = float(np.trace(np.diag(d) @ s) / sigma_src) if sigma_src != 0 else 1.0
    return c * rotation, mean_dst - c * rotation @ mean_src


def face_chip_details(
    landmarks5: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> ChipDetails:
    """Port of ``dlib.get_face_chip_details`` for 5 landmarks given as a (5, 2) array of (x, y)."""
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected (5, 2) finite landmarks, got {points.shape}")
    if size < 2 or padding < 0:
        raise ValueError(f"need size >= 2 and padding >= 0, got {size}, {padding}")
    template = (padding + TEMPLATE5) / (2 * padding + 1) * size  # chip pixel coordinates
    linear, offset = _similarity_umeyama(template, points)  # chip -> image
    angle = math.atan2(linear[1, 0], linear[0, 0])
    scale = math.hypot(linear[0, 0], linear[1, 0])
    cx, cy = linear @ np.array([size / 2.0, size / 2.0]) + offset
    half = (size * scale - 1) / 2  # centered_drect subtracts one from the side first
    return ChipDetails((cx - half, cy - half, cx + half, cy + half), angle, size)


def chip_transform(
    landmarks5: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> np.ndarray:
    """2x3 affine matrix mapping source pixel (x, y) to chip pixel coordinates, as dlib samples.

    Equivalent to ``dlib.get_face_chip(image, shape, size, padding)``'s geometry; pixel centres are
    at integer coordinates in both images.
    """
    details = face_chip_details(landmarks5, size, padding)
    left, top, right, bottom = details.rect
    centre_img = np.array([(left + right) / 2, (top + bottom) / 2])
    k = details.scale
    cos, sin = math.cos(details.angle), math.sin(details.angle)
    chip_to_img = k * np.array([[cos, -sin], [sin, cos]])
    img_to_chip = np.linalg.inv(chip_to_img)
    centre_chip = np.full(2, (size - 1) / 2)
    return np.hstack([img_to_chip, (centre_chip - img_to_chip @ centre_img)[:, None]])


#: pyramid_down<2>::point_down(p) = p / 2 - (1.25, 0.75), as a column to subtract from (2, 3).
_PYRAMID_OFFSET = torch.tensor([[0.0, 0.0, 1.25], [0.0, 0.0, 0.75]], dtype=torch.float64)


def _pyramid_levels(scale: float, size: int) -> int:
    """How many 2x reductions dlib's pyramid applies before sampling (extract_image_chips)."""
    side = size * scale  # drectangle side of the source rectangle (inclusive)
    levels = 0
    while True:
        side = (side - 1) / 2 + 1  # pyramid_down<2>::rect_down halves the rectangle
        if side * side <= size * size:
            return levels
        levels += 1


def _pyramid_down(images: Tensor) -> Tensor:
    """dlib's ``pyramid_down<2>``: a 5x5 [1 4 6 4 1] Gaussian, kept at every other pixel.

    Unpadded, so reduced pixel j is centred on source pixel 2j + 2 and the size is (W - 3) // 2,
    both as in dlib.
    """
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=images.dtype, device=images.device)
    kernel = (taps[:, None] * taps[None, :] / 256.0).expand(images.shape[1], 1, 5, 5)
    return F.conv2d(images, kernel, stride=2, groups=images.shape[1])


def warp_chips(
    images: Tensor,
    matrices: Tensor | np.ndarray,
    size: int = CHIP_SIZE,
    *,
    fill: float = 0.0,
    antialias: bool = True,
) -> Tensor:
    """Differentiable dlib face chips: (N, 3, H, W) images and (N, 2, 3) ``chip_transform``s.

    Works in any value range (the warp is linear); ``fill`` is the value outside the image, black
    as in dlib: 0.0 for [0, 255] images, -1.0 for [-1, 1]. With ``antialias``, faces more than
    twice the chip size are first reduced by dlib's 2x Gaussian pyramid (dlib also truncates each
    level to uint8; we do not). Returns (N, C, size, size), bilinear; gradients flow to
    ``images`` (the matrices are treated as constants).
    """
    # The geometry is tiny: do it on the CPU in float64 (no device syncs, no float64 on MPS).
    matrices_cpu = torch.as_tensor(matrices).detach().to("cpu", torch.float64)
    if images.ndim != 4 or matrices_cpu.shape != (images.shape[0], 2, 3):
        raise ValueError(
            f"expected (N, C, H, W) images and (N, 2, 3) matrices, got {tuple(images.shape)} "
            f"and {tuple(matrices_cpu.shape)}"
        )
    linear_inv = torch.linalg.inv(matrices_cpu[:, :, :2])
    chip_to_img = torch.cat([linear_inv, -linear_inv @ matrices_cpu[:, :, 2:]], dim=2)  # (N, 2, 3)
    scales = torch.linalg.det(linear_inv).abs().sqrt()  # source pixels per chip pixel
    levels = [_pyramid_levels(float(s), size) if antialias else 0 for s in scales]

    def warp(source: Tensor, affine: Tensor, level: int) -> Tensor:
        source = source - fill
        for _ in range(level):
            source = _pyramid_down(source)
            # dlib maps a point to the reduced image as p / 2 - (1.25, 0.75) (rect_down), which
            # is off its own filter centre (2j + 2) by half a source pixel; we copy the quirk.
            affine = affine / 2.0 - _PYRAMID_OFFSET
        return _sample(source, affine, size) + fill

    if len(set(levels)) <= 1:
        return warp(images, chip_to_img, levels[0] if levels else 0)
    out = images.new_empty(images.shape[0], images.shape[1], size, size)
    for level in sorted(set(levels)):
        index = [i for i, lv in enumerate(levels) if lv == level]
        out[index] = warp(images[index], chip_to_img[index], level)
    return out


def _sample(source: Tensor, chip_to_img: Tensor, size: int) -> Tensor:
    """Bilinear sampling of chip pixels at ``chip_to_img`` (float64, CPU) source positions."""
    height, width = source.shape[-2:]
    # align_corners=False normalises pixel centre x to (2x + 1) / W - 1 on both sides.
    to_norm = torch.tensor(
        [[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0], [0, 0, 1]],
        dtype=torch.float64,
    )
    from_norm = torch.tensor(
        [[size / 2.0, 0.0, (size - 1) / 2.0], [0.0, size / 2.0, (size - 1) / 2.0], [0, 0, 1]],
        dtype=torch.float64,
    )
    bottom = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64)
    full = torch.cat([chip_to_img, bottom.expand(len(chip_to_img), 1, 3)], dim=1)  # (N, 3, 3)
    theta = (to_norm @ full @ from_norm)[:, :2].to(source.device, source.dtype)
    grid = F.affine_grid(theta, [source.shape[0], source.shape[1], size, size], align_corners=False)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class _Landmarker:
    """dlib's HOG face detector + 5-point shape predictor; one call at a time (dlib objects)."""

    def __init__(self) -> None:
        import dlib  # imported lazily: only data preparation and evaluation need it

        self.dlib: Any = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_5)))
        self.lock = threading.Lock()

    def __call__(self, image_u8: np.ndarray) -> np.ndarray | None:
        with self.lock:
            # Upsampling once finds faces under ~80 px but costs 4x: try it only when needed.
            rects = list(self.detector(image_u8, 0)) or list(self.detector(image_u8, 1))
            if not rects:
                return None
            largest = max(rects, key=lambda r: r.width() * r.height())
            shape = self.predictor(image_u8, largest)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)

    def in_whole_image(self, image_u8: np.ndarray) -> np.ndarray:
        """The 5 points placed with the whole image as the face box (for aligned crops in which
        the detector finds no face)."""
        height, width = image_u8.shape[:2]
        with self.lock:
            shape = self.predictor(image_u8, self.dlib.rectangle(0, 0, width - 1, height - 1))
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)


@cache
def _landmarker() -> _Landmarker:
    return _Landmarker()


def detect_landmarks5(image_u8: np.ndarray) -> np.ndarray | None:
    """(5, 2) dlib landmarks (x, y) of the largest face in an HxWx3 uint8 RGB image, or None."""
    image_u8 = np.ascontiguousarray(image_u8)
    if image_u8.ndim != 3 or image_u8.shape[2] != 3 or image_u8.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got {image_u8.shape} {image_u8.dtype}"
        )
    return _landmarker()(image_u8)


def whole_image_landmarks5(image_u8: np.ndarray) -> np.ndarray:
    """(5, 2) dlib landmarks placed with the whole HxWx3 uint8 RGB image as the face box: the
    fallback for aligned face crops (e.g. generated faces) in which the detector finds no face."""
    return _landmarker().in_whole_image(np.ascontiguousarray(image_u8))


def own_chip_transforms(images_u8: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 2, 3) float32 image px -> chip px warps from the 5 landmarks dlib finds on each HxWx3
    uint8 image itself, the whole image serving as the face box where it finds no face.

    This is how the evaluation (and a gallery search) aligns a generated face: by the face's own
    landmarks, not by those of the photo it should match. A network trained on chips cut at the
    photo's landmarks can move a feature and still be scored as if it had not."""
    matrices = []
    for image_u8 in images_u8:
        points = detect_landmarks5(image_u8)
        if points is None:
            points = whole_image_landmarks5(image_u8)
        matrices.append(chip_transform(points))
    return np.stack(matrices).astype(np.float32)
