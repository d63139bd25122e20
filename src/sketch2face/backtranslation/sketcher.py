"""A trained photo -> artist-sketch model, used to draw artist-style sketches of face photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sketch2face.data.artist_styles import ARTIST_STYLES, style_vectors
from sketch2face.data.manifest import file_sha256
from sketch2face.data.sketchify import flatten_illumination, normalize_sketch
from sketch2face.errors import CheckpointError
from sketch2face.models.checkpoint import load_checkpoint
from sketch2face.runtime import resolve_device

#: how drawings are finished after the network (part of model_id, so cached drawings of another
#: version are never reused): v2 = the levels `prepare` gives every sketch
DRAWING_VERSION = "v2"
#: the packaged photo -> sketch model (model card beside it)
DEFAULT_SKETCHER = (
    Path(__file__).resolve().parents[1] / "assets" / "photo2sketch" / "photo2sketch.safetensors"
)


class PhotoSketcher:
    """Draws aligned 256x256 face photos (as ``prepare`` crops them) in FS2K's artist styles.

    The model is a checkpoint of ``configs/photo2sketch_fs2k.toml`` (``data.direction =
    "photo2sketch"``); it runs in eval mode on the moving average of its weights, so one photo and
    style always give the same sketch. Output sketches are greyscale, as ``prepare`` stores them.
    """

    def __init__(
        self, checkpoint: str | os.PathLike[str] = DEFAULT_SKETCHER, *, device: str = "auto"
    ) -> None:
        path = Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(
                f"photo -> sketch model {path} not found; train one with "
                "`sketch2face train --config configs/photo2sketch_fs2k.toml` or give its path."
            )
        ckpt = load_checkpoint(path)
        direction = ckpt.config.get("data", {}).get("direction", "sketch2photo")
        if direction != "photo2sketch" or ckpt.generator_config.attribute_dim != len(ARTIST_STYLES):
            raise CheckpointError(
                f"{path} is a {direction} model with {ckpt.generator_config.attribute_dim} "
                f"condition inputs, not a photo -> sketch model with {len(ARTIST_STYLES)} styles; "
                "give a checkpoint of configs/photo2sketch_fs2k.toml."
            )
        self.path = path
        self.step = ckpt.step
        #: recorded in the manifest of every sketch it draws: which model made it
        self.model_id = f"{path.name}@step{ckpt.step}:{file_sha256(path)[:12]}/{DRAWING_VERSION}"
        self.device = resolve_device(device)
        self.generator = ckpt.build_generator().eval().to(self.device)

    @torch.inference_mode()
    def sketch(self, photos_u8: np.ndarray, style: str, *, batch_size: int = 8) -> np.ndarray:
        """(N, 256, 256, 3) uint8 aligned photos -> (N, 256, 256, 3) uint8 grey sketches, with
        paper and ink levels normalised as ``prepare`` normalises every sketch."""
        if photos_u8.ndim != 4 or photos_u8.shape[-1] != 3 or photos_u8.dtype != np.uint8:
            raise ValueError(f"expected (N, H, W, 3) uint8 photos, got {photos_u8.shape}")
        condition = torch.from_numpy(style_vectors([style]))
        out = np.empty_like(photos_u8)
        for start in range(0, len(photos_u8), batch_size):
            chunk = torch.from_numpy(np.array(photos_u8[start : start + batch_size]))  # a copy
            x = chunk.permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(self.device)
            y = self.generator(x, condition.expand(len(x), -1).to(self.device)).float()
            grey = y.mean(dim=1).clamp(-1.0, 1.0)  # the model draws in grey
            u8 = ((grey + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()
            for k, drawing in enumerate(u8):
                # the levels every sketch gets from `prepare` (real ones, OpenCV ones, and a user's
                # at inference): pure-white paper, full-range ink, no grey haze on the page
                out[start + k] = normalize_sketch(flatten_illumination(drawing))
        return out
