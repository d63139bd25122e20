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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from sketch2face.attributes import FaceAttributes

# the backends moved to sketch2face.backends (shared with the refiner); importable from here too
from sketch2face.backends import AutoBackend as AutoBackend
from sketch2face.backends import GeneratorBackend as GeneratorBackend
from sketch2face.backends import TorchBackend as TorchBackend
from sketch2face.backends import make_backend
from sketch2face.errors import CheckpointError, InvalidAttributesError
from sketch2face.imaging import ImageInput, batch_to_u8, load_image
from sketch2face.models.checkpoint import load_checkpoint
from sketch2face.models.unet import GeneratorConfig
from sketch2face.refine.backdrop import check_backdrop, on_backdrop
from sketch2face.refine.base import Refiner, refine_detailed
from sketch2face.refine.own import FALLBACK_NOTICE
from sketch2face.runtime import resolve_device

log = logging.getLogger(__name__)

#: The packaged default model (generator + discriminator, fp16), used when no checkpoint is given.
DEFAULT_CHECKPOINT = Path(__file__).parent / "assets" / "default" / "sketch2face.safetensors"
CHECKPOINT_ENV_VAR = "SKETCH2FACE_CHECKPOINT"
MODEL_SIZE_PX = 256


@dataclass(frozen=True)
class GenerationResult:
    """Outputs of one pipeline call, one entry per input sketch."""

    inputs: list[np.ndarray]  # prepared 256x256 uint8 sketches the network saw
    faces: list[np.ndarray]  # 256x256 uint8 RGB stage-one faces (the generator's)
    #: the refined faces (the second stage's: 256x256 from the project's refiner, 512x512 from
    #: GFPGAN), or None per item when not refined (turned off, no refiner, or it failed)
    refined: list[np.ndarray | None]
    face_found: list[bool]  # whether a face was detected on the sketch (else centred pad)
    timings_ms: dict[str, float] = field(default_factory=dict)  # totals: prepare, generate, refine
    notices: list[str] = field(default_factory=list)
    model_version: str = ""  # stage one's model
    refiner_version: str = ""  # the second stage's model when it refined a face, else ""
    #: the backdrop asked for (``refine.backdrop.BACKDROPS``): "photo" (the networks' own) or
    #: "studio"
    backdrop: str = "photo"
    #: with ``backdrop="studio"``: each item's face as shown, on the studio backdrop (made from
    #: the refined face when there is one, else stage one's); empty with "photo". ``faces`` and
    #: ``refined`` stay as the networks made them (provenance: what each stage did).
    studio: list[np.ndarray] = field(default_factory=list)

    def shown(self, i: int) -> np.ndarray:
        """THE face of item ``i``: on the studio backdrop when one was asked for, else the refined
        face when there is one, else stage one's."""
        if self.studio:
            return self.studio[i]
        refined = self.refined[i]
        return refined if refined is not None else self.faces[i]


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
    """Sketch -> face pipeline: prepare (crop, 256, normalise) -> generator (stage one) -> refiner
    (the second stage, on by default when one is loaded: ``refine.resolve``)."""

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
        refiner: Refiner | str | os.PathLike[str] | None = None,
        gfpgan_weights: str | os.PathLike[str] | None = None,
        backend: str = "auto",
    ) -> Sketch2Face:
        """Load a checkpoint (None = packaged default) and the second stage.

        ``refiner``: a ``Refiner`` object used as is, or the path of a refiner checkpoint
        (``"none"`` turns refinement off); otherwise :func:`sketch2face.refine.resolve.resolve_refiner`
        picks GFPGAN weights (``gfpgan_weights`` / ``$SKETCH2FACE_GFPGAN_WEIGHTS``),
        ``$SKETCH2FACE_REFINER`` or the packaged refiner. Without any, ``refine=True`` calls return
        stage one's face with a notice.
        """
        path = resolve_checkpoint(checkpoint)
        ckpt = load_checkpoint(path)
        direction = ckpt.config.get("data", {}).get("direction", "sketch2photo")
        if direction != "sketch2photo":
            raise CheckpointError(
                f"{path} is a {direction} model, not a sketch -> photo model; pass it as "
                f"{'--refiner' if direction == 'refine' else 'the model it is'} and leave "
                "--checkpoint out (the packaged default) or give a sketch -> photo checkpoint."
            )
        dev = resolve_device(device or "auto")
        runner = make_backend(ckpt.build_generator(), dev, backend)
        notice = None
        if refiner is None or isinstance(refiner, (str, os.PathLike)):
            from sketch2face.refine.resolve import resolve_refiner

            choice = resolve_refiner(
                refiner, gfpgan_weights=gfpgan_weights, device=dev, backend=backend
            )
            loaded, notice = choice.refiner, choice.notice
        else:
            loaded = refiner
        size_px = int(ckpt.config.get("data", {}).get("image_size_px", MODEL_SIZE_PX))
        version = f"pix2pix-unet-ngf{ckpt.generator_config.ngf}-{size_px}px-step{ckpt.step}"
        log.info(
            "loaded %s from %s (%s backend on %s); refiner: %s",
            version,
            path,
            runner.name,
            dev,
            getattr(loaded, "version", getattr(loaded, "name", None)) or notice,
        )
        return cls(
            runner,
            ckpt.generator_config,
            refiner=loaded,
            refiner_notice=notice,
            model_version=version,
            model_size_px=size_px,
        )

    @property
    def refiner_version(self) -> str:
        """What the second stage is (its version, else its name); "" without one."""
        if self.refiner is None:
            return ""
        return str(getattr(self.refiner, "version", None) or self.refiner.name)

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
        refine: bool = True,
        seed: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        batch_size: int = 8,
        progress: bool = False,
        prepared: bool = False,
        backdrop: str = "photo",
    ) -> GenerationResult:
        """Generate one face per sketch. ``prepared=True``: inputs are already 256x256 model inputs.

        ``refine`` (default True) runs the second stage on every face when a refiner is loaded
        (``result.refined``); without one, or where it fails, the item's refined face is None and
        a notice says why. ``refine=False``: stage one only.

        ``backdrop``: ``"photo"`` (default) shows the background the networks painted;
        ``"studio"`` puts the face shown (refined, else stage one's) on a plain studio backdrop,
        last, using the prepared sketch (``result.studio``, ``result.shown``); stage one's and the
        refined faces stay as made. Anything else is a ValueError before any work.
        """
        check_backdrop(backdrop)
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
                refined = self._refine_all(faces, notices, progress=progress)
        t3 = time.perf_counter()
        studio: list[np.ndarray] = []
        if backdrop != "photo":
            for i, face in enumerate(faces):
                shown = refined[i] if refined[i] is not None else face
                placed = on_backdrop(shown, inputs[i], backdrop)
                studio.append(placed if placed is not None else shown)
        t4 = time.perf_counter()
        timings = {"prepare": (t1 - t0) * 1e3, "generate": (t2 - t1) * 1e3}
        if refine and self.refiner is not None:
            timings["refine"] = (t3 - t2) * 1e3
        if studio:
            timings["backdrop"] = (t4 - t3) * 1e3
        return GenerationResult(
            inputs,
            faces,
            refined,
            found,
            timings,
            notices,
            self.model_version,
            self.refiner_version if any(r is not None for r in refined) else "",
            backdrop,
            studio,
        )

    def _refine_all(
        self, faces: list[np.ndarray], notices: list[str], *, progress: bool = False
    ) -> list[np.ndarray | None]:
        """The refined face of each stage-one face; None (and a notice) where the refiner fell
        back, so a failure never passes stage one's face off as refined."""
        assert self.refiner is not None
        refined: list[np.ndarray | None] = []
        for face in tqdm(faces, desc="refine", disable=not progress or len(faces) < 2):
            result = refine_detailed(self.refiner, face)
            refined.append(None if result.fell_back else result.image_u8)
            if result.fell_back and FALLBACK_NOTICE not in notices:
                notices.append(FALLBACK_NOTICE)
        return refined
