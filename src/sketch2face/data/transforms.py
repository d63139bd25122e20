"""Paired augmentation: one random draw applied identically to the sketch and its photo.

pix2pix's recipe (``get_params`` then ``get_transform``): resize 256 -> 286, random 256 crop, random
horizontal flip. Works on uint8 numpy arrays with OpenCV (no PIL per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TransformParams:
    """One augmentation draw: crop offset in the resized image, and whether to mirror."""

    load_size_px: int
    crop_x: int
    crop_y: int
    flip: bool


class PairedTransform:
    """Random resized crop + horizontal flip, drawn once per pair and applied to both images."""

    def __init__(
        self, *, load_size_px: int = 286, crop_size_px: int = 256, flip: bool = True
    ) -> None:
        if load_size_px < crop_size_px:
            raise ValueError(f"load_size_px {load_size_px} must be >= crop_size_px {crop_size_px}")
        self.load_size_px = load_size_px
        self.crop_size_px = crop_size_px
        self.flip = flip

    def get_params(self, rng: np.random.Generator) -> TransformParams:
        """Draw the crop offset and the flip for one pair."""
        slack = self.load_size_px - self.crop_size_px
        return TransformParams(
            load_size_px=self.load_size_px,
            crop_x=int(rng.integers(0, slack + 1)),
            crop_y=int(rng.integers(0, slack + 1)),
            flip=bool(self.flip and rng.random() < 0.5),
        )

    def apply(self, image_u8: np.ndarray, params: TransformParams) -> np.ndarray:
        """Apply one drawn set of parameters to an HxWx3 uint8 image."""
        out = image_u8
        if out.shape[0] != params.load_size_px or out.shape[1] != params.load_size_px:
            out = cv2.resize(
                np.ascontiguousarray(out),
                (params.load_size_px, params.load_size_px),
                interpolation=cv2.INTER_LINEAR,
            )
        size = self.crop_size_px
        out = out[params.crop_y : params.crop_y + size, params.crop_x : params.crop_x + size]
        if params.flip:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def __call__(
        self, sketch_u8: np.ndarray, photo_u8: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment a pair with one shared draw."""
        params = self.get_params(rng)
        return self.apply(sketch_u8, params), self.apply(photo_u8, params)
