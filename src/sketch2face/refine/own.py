"""The project's own refiner: the second stage, trained here (issue 22), 256 px in, 256 px out.

It is a checkpoint written by the project's trainer with ``data.direction = "refine"``: a U-Net of
stage one's architecture (no attribute input) that maps a stage-one face (N, 3, 256, 256) in
[-1, 1] to the refined face of the same shape. It runs in eval mode on the moving average of its
weights, through the same backends as stage one (``sketch2face.backends``: onnxruntime on a CPU,
PyTorch elsewhere), so a face always refines to the same pixels.

The packaged refiner is ``assets/refiner/refiner.safetensors`` (model card beside it);
``$SKETCH2FACE_REFINER`` or ``--refiner PATH`` name another.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from sketch2face.backends import GeneratorBackend, make_backend
from sketch2face.errors import CheckpointError
from sketch2face.imaging import batch_to_u8, u8_to_tensor
from sketch2face.models.checkpoint import Checkpoint, load_checkpoint
from sketch2face.refine.base import RefineResult
from sketch2face.runtime import resolve_device

log = logging.getLogger(__name__)

#: the packaged refiner, the default second stage (when the file is there)
DEFAULT_REFINER = Path(__file__).resolve().parents[1] / "assets" / "refiner" / "refiner.safetensors"
#: environment variable naming another refiner checkpoint (``none`` turns refinement off)
REFINER_ENV_VAR = "SKETCH2FACE_REFINER"
#: the ``data.direction`` of a refiner checkpoint (training/config.py DIRECTIONS)
REFINE_DIRECTION = "refine"
#: the refiner works on stage one's 256x256 faces
REFINER_SIZE_PX = 256
#: what the refiner reports when it kept the unrefined face
FALLBACK_NOTICE = "Refinement failed on this face; the unrefined (stage one) face is kept."

_HOW_TO_FIX = (
    "give --refiner (or SKETCH2FACE_REFINER) a checkpoint trained with "
    'data.direction = "refine", such as the packaged assets/refiner/refiner.safetensors'
)
_WRONG_DIRECTION = {
    "sketch2photo": "a sketch -> photo model (stage one: pass it as --checkpoint instead)",
    "photo2sketch": "a photo -> sketch model (back-translation), not a refiner",
}


def check_refiner_checkpoint(ckpt: Checkpoint) -> None:
    """Raise CheckpointError saying what is wrong and how to fix it unless ``ckpt`` is a refiner:
    ``data.direction == "refine"``, three colour channels in and out, no attribute input."""
    direction = str(ckpt.config.get("data", {}).get("direction", "sketch2photo"))
    if direction != REFINE_DIRECTION:
        what = _WRONG_DIRECTION.get(direction, f"a {direction!r} model")
        raise CheckpointError(f"{ckpt.path} is {what}, not a face refiner; {_HOW_TO_FIX}.")
    cfg = ckpt.generator_config
    if cfg.attribute_dim != 0 or cfg.in_channels != 3 or cfg.out_channels != 3:
        raise CheckpointError(
            f"{ckpt.path} says it is a refiner, but its network takes {cfg.in_channels} channels "
            f"and {cfg.attribute_dim} attribute values and gives {cfg.out_channels} channels "
            "(a refiner maps an RGB face to an RGB face, with no attributes); the file is "
            f"damaged or was written by another version. {_HOW_TO_FIX[0].upper()}{_HOW_TO_FIX[1:]}."
        )


def load_refiner_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and check a refiner checkpoint; CheckpointError naming the file and the fix."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"refiner checkpoint {file} not found; {_HOW_TO_FIX}.")
    try:
        ckpt = load_checkpoint(file)
    except CheckpointError as exc:
        raise CheckpointError(f"the refiner could not be read: {exc} Then {_HOW_TO_FIX}.") from exc
    check_refiner_checkpoint(ckpt)
    return ckpt


class OwnRefiner:
    """The project's refiner behind the ``Refiner`` protocol: a 256x256 face in, the refined
    256x256 face out (other sizes are resized to 256 and back).

    Build it with :meth:`from_checkpoint`; the constructor takes any backend that runs a
    (N, 3, 256, 256) batch in [-1, 1] (``backend.run(batch, None, None)``), which keeps the
    fallback testable without a network.
    """

    name = "sketch2face-refiner"

    def __init__(
        self,
        backend: GeneratorBackend,
        *,
        version: str = "sketch2face-refiner",
        path: Path | None = None,
    ) -> None:
        self.backend = backend
        #: what made the refined faces: the checkpoint's name, step and weights' SHA-256 prefix
        self.version = version
        self.path = path
        self.last_timing_ms: float | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str] = DEFAULT_REFINER,
        *,
        device: str | torch.device | None = "cpu",
        backend: str = "auto",
    ) -> OwnRefiner:
        """Load a refiner checkpoint (moving-average weights, eval mode) on ``device``.

        Raises:
            CheckpointError: the file is missing, unreadable, or not a refiner (a sketch -> photo
                or photo -> sketch model), with what to give instead.
        """
        from sketch2face.data.manifest import file_sha256

        ckpt = load_refiner_checkpoint(path)
        generator = ckpt.build_generator()  # the moving average when the checkpoint has one
        dev = device if isinstance(device, torch.device) else resolve_device(device or "auto")
        runner = make_backend(generator, dev, backend, seeded=False)
        version = f"{REFINE_DIRECTION}-unet-ngf{ckpt.generator_config.ngf}-step{ckpt.step}"
        version += f"@{file_sha256(ckpt.path)[:12]}"
        log.info("loaded refiner %s from %s (%s backend)", version, ckpt.path, runner.name)
        return cls(runner, version=version, path=ckpt.path)

    def refine(self, face_u8: np.ndarray) -> np.ndarray:
        """Refine one HxWx3 uint8 face; the same size back. Never loses the image: when the
        network fails, the unrefined face comes back (``refine_detailed`` says so)."""
        return self.refine_detailed(face_u8).image_u8

    def refine_detailed(self, face_u8: np.ndarray) -> RefineResult:
        """Refine one face; ``fell_back`` is True when the network failed and the image is the
        unrefined face. ValueError for something that is not an HxWx3 uint8 image."""
        face_u8 = np.ascontiguousarray(face_u8)
        if face_u8.ndim != 3 or face_u8.shape[2] != 3 or face_u8.dtype != np.uint8:
            raise ValueError(
                f"expected an HxWx3 uint8 RGB face, got {face_u8.shape} {face_u8.dtype}"
            )
        start = time.perf_counter()
        height, width = face_u8.shape[:2]
        fell_back = False
        try:
            x = _resized(face_u8, REFINER_SIZE_PX, REFINER_SIZE_PX)
            out = self.backend.run(u8_to_tensor(x).unsqueeze(0), None, None)
            if tuple(out.shape) != (1, 3, REFINER_SIZE_PX, REFINER_SIZE_PX):
                raise RuntimeError(f"the refiner gave a {tuple(out.shape)} output")
            image_u8 = _resized(batch_to_u8(out)[0], width, height)
        except Exception as exc:  # any backend failure: keep the face (never lose the image)
            log.warning("the refiner failed on a face (%s); keeping the unrefined face", exc)
            image_u8 = face_u8.copy()
            fell_back = True
        total_ms = 1000 * (time.perf_counter() - start)
        self.last_timing_ms = total_ms
        return RefineResult(
            image_u8, face_found=True, fell_back=fell_back, timings_ms={"total": total_ms}
        )


def _resized(image_u8: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image_u8`` at width x height (area filter down, bicubic up; unchanged at that size)."""
    if image_u8.shape[1] == width and image_u8.shape[0] == height:
        return image_u8
    interp = cv2.INTER_AREA if width < image_u8.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(image_u8, (width, height), interpolation=interp)
