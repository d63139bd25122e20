"""``Sketch2Face``: the one object that turns sketches into faces.

The CLI (``generate``, ``evaluate``), the HTTP API, the web pages and the benchmarks all call it:

    pipe = Sketch2Face.from_pretrained()           # the packaged default model
    result = pipe(["sketch.png"], refine=False)    # GenerationResult
    Image.fromarray(result.faces[0]).save("face.png")

Inference mode (a deliberate difference from the reference pix2pix ``test.py``, which keeps dropout
on and uses per-batch BatchNorm statistics): the generator runs in **eval mode** (running BatchNorm
statistics, no dropout), so a sketch always gives the same face, independent of the batch it is in.
Passing ``seed`` switches dropout on (pix2pix's noise source) with that seed: each seed gives a
reproducible *variation* of the likeness, which an investigator can use to show alternatives.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from tqdm import tqdm

from sketch2face.attributes import FaceAttributes
from sketch2face.errors import CheckpointError, InvalidAttributesError
from sketch2face.imaging import ImageInput, batch_to_u8, load_image
from sketch2face.models.checkpoint import load_checkpoint
from sketch2face.models.unet import GeneratorConfig, UNetGenerator
from sketch2face.refine.base import Refiner
from sketch2face.runtime import resolve_device, torch_seed

log = logging.getLogger(__name__)

#: The packaged default model (generator + discriminator, fp16), used when no checkpoint is given.
DEFAULT_CHECKPOINT = Path(__file__).parent / "assets" / "default" / "sketch2face.safetensors"
CHECKPOINT_ENV_VAR = "SKETCH2FACE_CHECKPOINT"
MODEL_SIZE_PX = 256


@dataclass(frozen=True)
class GenerationResult:
    """Outputs of one pipeline call, one entry per input sketch."""

    inputs: list[np.ndarray]  # prepared 256x256 uint8 sketches the network saw
    faces: list[np.ndarray]  # 256x256 uint8 RGB generated faces
    refined: list[np.ndarray | None]  # 512x512 uint8 refined faces, or None when not refined
    face_found: list[bool]  # whether a face was detected on the sketch (else centred pad)
    timings_ms: dict[str, float] = field(default_factory=dict)  # totals: prepare, generate, refine
    notices: list[str] = field(default_factory=list)
    model_version: str = ""


class GeneratorBackend(Protocol):
    """Runs the generator: (N, 3, 256, 256) float32 in [-1, 1] -> same shape."""

    name: str

    def run(
        self, batch_t: torch.Tensor, attributes: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        """Generate one batch."""
        ...


class TorchBackend:
    """Eager PyTorch (fp32), eval mode; dropout switched on only for seeded variations."""

    name = "torch"

    def __init__(self, generator: UNetGenerator, device: torch.device) -> None:
        self.generator = generator.eval().to(device)
        self.device = device
        self._lock = threading.Lock()  # toggling dropout mutates module state

    def run(
        self, batch_t: torch.Tensor, attributes: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        x = batch_t.to(self.device)
        attrs = attributes.to(self.device) if attributes is not None else None
        with self._lock, torch.inference_mode():
            if seed is None:
                return self.generator(x, attrs).float().cpu()
            dropouts = [m for m in self.generator.modules() if isinstance(m, torch.nn.Dropout)]
            try:
                for m in dropouts:
                    m.train()
                with torch_seed(seed):
                    return self.generator(x, attrs).float().cpu()
            finally:
                for m in dropouts:
                    m.eval()


class AutoBackend:
    """CPU default: onnxruntime for canonical faces (measured 1.6-4.7x faster than eager PyTorch on
    2 cores, same pixels within 1 level: benchmarks/README.md), eager PyTorch for seeded variations,
    which need dropout at inference."""

    name = "auto(onnx+torch)"

    def __init__(self, generator: UNetGenerator, device: torch.device) -> None:
        from sketch2face.export import OnnxBackend

        self.torch = TorchBackend(generator, device)
        self.onnx = OnnxBackend.from_generator(generator, spin=False)

    def run(
        self, batch_t: torch.Tensor, attributes: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        backend: GeneratorBackend = self.torch if seed is not None else self.onnx
        return backend.run(batch_t, attributes, seed)


def resolve_checkpoint(checkpoint: str | os.PathLike[str] | None) -> Path:
    """Explicit path, else ``$SKETCH2FACE_CHECKPOINT``, else the packaged default."""
    if checkpoint:
        return Path(checkpoint)
    env = os.environ.get(CHECKPOINT_ENV_VAR)
    if env:
        return Path(env)
    if not DEFAULT_CHECKPOINT.is_file():
        raise CheckpointError(
            f"the packaged default model is missing ({DEFAULT_CHECKPOINT}); reinstall sketch2face "
            f"or pass --checkpoint / set {CHECKPOINT_ENV_VAR}."
        )
    return DEFAULT_CHECKPOINT


class Sketch2Face:
    """Sketch -> face pipeline: prepare (crop, 256, normalise) -> generator -> optional refiner."""

    def __init__(
        self,
        backend: GeneratorBackend,
        generator_config: GeneratorConfig,
        *,
        refiner: Refiner | None = None,
        refiner_notice: str | None = None,
        model_version: str = "unversioned",
        detect_faces: bool = True,
        model_size_px: int = MODEL_SIZE_PX,
    ) -> None:
        self.backend = backend
        self.generator_config = generator_config
        self.refiner = refiner
        self.refiner_notice = refiner_notice
        self.model_version = model_version
        self.detect_faces = detect_faces
        #: resolution the generator was trained at; inputs are resized to it and outputs back to 256
        self.model_size_px = model_size_px
        self._cropper: Any = None

    @classmethod
    def from_pretrained(
        cls,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        refiner: Refiner | None = None,
        gfpgan_weights: str | os.PathLike[str] | None = None,
        backend: str = "auto",
    ) -> Sketch2Face:
        """Load a checkpoint (None = packaged default) and, if weights are configured, GFPGAN.

        ``gfpgan_weights`` (or ``$SKETCH2FACE_GFPGAN_WEIGHTS``) enables refinement; without them
        ``refine=True`` calls return the generated face with a notice.
        """
        path = resolve_checkpoint(checkpoint)
        ckpt = load_checkpoint(path)
        generator = ckpt.build_generator()
        dev = resolve_device(device or "auto")
        if backend == "auto":
            backend = "auto" if dev.type == "cpu" and _has_onnxruntime() else "torch"
        if backend == "auto":
            runner: GeneratorBackend = AutoBackend(generator, dev)
        elif backend == "torch":
            runner = TorchBackend(generator, dev)
        elif backend == "onnx":
            from sketch2face.export import OnnxBackend

            runner = OnnxBackend.from_generator(generator)
        else:
            raise ValueError(f"unknown backend {backend!r}; use 'auto', 'torch' or 'onnx'")
        notice = None
        if refiner is None:
            from sketch2face.refine.gfpgan import load_refiner

            refiner, notice = load_refiner(
                gfpgan_weights, strict=gfpgan_weights is not None, device=str(dev)
            )
        size_px = int(ckpt.config.get("data", {}).get("image_size_px", MODEL_SIZE_PX))
        version = f"pix2pix-unet-ngf{ckpt.generator_config.ngf}-{size_px}px-step{ckpt.step}"
        log.info("loaded %s from %s (%s backend on %s)", version, path, runner.name, dev)
        return cls(
            runner,
            ckpt.generator_config,
            refiner=refiner,
            refiner_notice=notice,
            model_version=version,
            model_size_px=size_px,
        )

    # ------------------------------------------------------------------ preparation
    def prepare(self, sketch: ImageInput, *, prepared: bool = False) -> tuple[np.ndarray, bool]:
        """Turn any sketch input into the 256x256 normalised model input (as in training)."""
        if prepared:
            image = load_image(sketch)
            if image.shape[:2] != (MODEL_SIZE_PX, MODEL_SIZE_PX):
                raise ValueError(
                    f"prepared sketches must be {MODEL_SIZE_PX}x{MODEL_SIZE_PX}, got {image.shape[:2]}"
                )
            return image, True
        from sketch2face.data.align import FaceCropper
        from sketch2face.data.preprocess import prepare_sketch

        if self._cropper is None and self.detect_faces:
            self._cropper = FaceCropper()
        out = prepare_sketch(sketch, self._cropper, detect=self.detect_faces)
        return out.image_u8, out.face_found

    @property
    def supports_attributes(self) -> bool:
        """True when the generator is conditioned on skin tone / hair colour / gender."""
        return self.generator_config.attribute_dim > 0

    def encode_attributes(
        self, attributes: Mapping[str, Any] | None, n: int
    ) -> torch.Tensor | None:
        """(n, ATTRIBUTE_DIM) condition vectors (None for an unconditioned model)."""
        try:
            parsed = FaceAttributes.from_request(attributes)
        except ValueError as exc:
            raise InvalidAttributesError(str(exc)) from exc
        if not self.supports_attributes:
            return None
        vec = parsed.to_vector()
        if vec.shape[0] != self.generator_config.attribute_dim:
            raise CheckpointError(
                f"the model expects {self.generator_config.attribute_dim} attribute values, this version "
                f"of sketch2face makes {vec.shape[0]}; use a matching checkpoint."
            )
        return torch.from_numpy(vec).unsqueeze(0).repeat(n, 1)

    @staticmethod
    def _resize(image_u8: np.ndarray, size_px: int) -> np.ndarray:
        """Area filter down, bicubic up; a no-op at the same size."""
        if image_u8.shape[0] == size_px:
            return image_u8
        interp = cv2.INTER_AREA if size_px < image_u8.shape[0] else cv2.INTER_CUBIC
        return cv2.resize(image_u8, (size_px, size_px), interpolation=interp)

    # ------------------------------------------------------------------ call
    def __call__(
        self,
        sketches: ImageInput | Sequence[ImageInput],
        *,
        refine: bool = False,
        seed: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        batch_size: int = 8,
        progress: bool = False,
        prepared: bool = False,
    ) -> GenerationResult:
        """Generate one face per sketch. ``prepared=True``: inputs are already 256x256 model inputs."""
        items = list(sketches) if isinstance(sketches, (list, tuple)) else [sketches]
        notices: list[str] = []
        attrs_t = self.encode_attributes(attributes, 1)  # validates once; (1, D) or None
        if attributes and attrs_t is None and not FaceAttributes.from_request(attributes).is_empty:
            notices.append("this model is not attribute-conditioned: skin/hair/gender were ignored")
        t0 = time.perf_counter()
        inputs: list[np.ndarray] = []
        found: list[bool] = []
        for item in tqdm(items, desc="prepare", disable=not progress or len(items) < 2):
            image, ok = self.prepare(item, prepared=prepared)
            inputs.append(image)
            found.append(ok)
        t1 = time.perf_counter()
        faces: list[np.ndarray] = []
        for start in tqdm(
            range(0, len(inputs), batch_size),
            desc="generate",
            disable=not progress or len(inputs) <= batch_size,
        ):
            chunk = [
                self._resize(x, self.model_size_px) for x in inputs[start : start + batch_size]
            ]
            batch_t = (
                torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            )
            batch_attrs = attrs_t.repeat(len(chunk), 1) if attrs_t is not None else None
            out = self.backend.run(batch_t, batch_attrs, seed)
            faces.extend(self._resize(face, MODEL_SIZE_PX) for face in batch_to_u8(out))
        t2 = time.perf_counter()
        refined: list[np.ndarray | None] = [None] * len(faces)
        if refine:
            if self.refiner is None:
                notices.append(self.refiner_notice or "refinement skipped: no refiner configured")
            else:
                refined = [
                    self.refiner.refine(face)
                    for face in tqdm(faces, desc="refine", disable=not progress or len(faces) < 2)
                ]
        t3 = time.perf_counter()
        timings = {"prepare": (t1 - t0) * 1e3, "generate": (t2 - t1) * 1e3}
        if refine and self.refiner is not None:
            timings["refine"] = (t3 - t2) * 1e3
        return GenerationResult(inputs, faces, refined, found, timings, notices, self.model_version)


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None
