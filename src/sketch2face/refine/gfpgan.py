"""GFPGAN v1.3/v1.4 face restoration, loaded through spandrel, with our own offline dlib alignment.

Flow for one generated face (after TencentARC/GFPGAN ``GFPGANer.enhance`` + facexlib
``FaceRestoreHelper``): dlib 68 landmarks -> 5 points -> similarity warp to the FFHQ 512 template ->
GFPGANv1Clean -> inverse warp -> soft-mask paste onto a 2x bicubic upscale of the input.
Nothing is ever downloaded: the weights come from a path or ``SKETCH2FACE_GFPGAN_WEIGHTS``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from sketch2face.errors import CheckpointError, Sketch2FaceError, WeightsNotFoundError
from sketch2face.facemodels import SHAPE_PREDICTOR_68, dlib_model_path
from sketch2face.imaging import tensor_to_u8, u8_to_tensor
from sketch2face.refine.base import Refiner, RefineResult, upscale_bicubic
from sketch2face.runtime import autocast, cpu_supports_bf16, resolve_device

logger = logging.getLogger(__name__)

#: Environment variable naming the GFPGAN ``.pth`` (or ``.safetensors``) file.
WEIGHTS_ENV_VAR = "SKETCH2FACE_GFPGAN_WEIGHTS"
#: GFPGANv1Clean works on 512x512 FFHQ-aligned crops (``out_size=512`` in v1.3/v1.4).
NETWORK_SIZE_PX = 512
#: facexlib's 5-point FFHQ template for a 512 crop: left eye, right eye, nose tip, left and right
#: mouth corner, in image coordinates
#: (``FaceRestoreHelper(face_size=512, template_3points=False)``).
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)
#: facexlib pads the warped crop with BGR (135, 133, 132); the same grey in RGB.
BORDER_RGB = (132, 133, 135)
#: "auto" = bf16 where the hardware has native bf16 (CUDA, AVX-512-BF16/AMX CPUs), else fp32.
#: No fp16: spandrel marks GFPGAN ``supports_half=False``.
PRECISIONS = ("fp32", "bf16", "auto")

NO_WEIGHTS_NOTICE = (
    "refinement skipped: no GFPGAN weights configured "
    f"(pass --gfpgan-weights PATH or set {WEIGHTS_ENV_VAR} to GFPGANv1.4.pth)"
)


# --- weights ---------------------------------------------------------------------------------


#: GFPGANv1Clean constructor arguments of the official v1.3 / v1.4 release (GFPGANer, arch='clean');
#: tests and benchmarks build randomly initialised networks of this exact layout.
OFFICIAL_V14_KWARGS = dict(
    out_size=512,
    num_style_feat=512,
    channel_multiplier=2,
    decoder_load_path=None,
    fix_decoder=False,
    num_mlp=8,
    input_is_latent=True,
    different_w=True,
    narrow=1,
    sft_half=True,
)


def resolve_weights_path(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The weights path: ``path`` if given, else ``$SKETCH2FACE_GFPGAN_WEIGHTS``, else None."""
    if path is not None and str(path).strip():
        return Path(path).expanduser()
    env = os.environ.get(WEIGHTS_ENV_VAR, "").strip()
    return Path(env).expanduser() if env else None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely (``weights_only``) and unwrap ``params_ema`` / ``params``."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip, safetensors and OS errors all mean "unreadable"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({first_line}); expected the official "
            "GFPGANv1.3.pth or GFPGANv1.4.pth file."
        ) from exc
    if not isinstance(raw, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(raw).__name__}, not a state dict; it is not GFPGAN weights "
            "(expected GFPGANv1.3.pth or GFPGANv1.4.pth)."
        )
    # GFPGANer: prefer the EMA weights, as the official inference does.
    for key in ("params_ema", "params"):
        if isinstance(raw.get(key), Mapping):
            raw = raw[key]
            break
    state = {str(k): v for k, v in raw.items()}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} is not GFPGAN weights (it is not a flat dict of tensors); expected "
            "GFPGANv1.3.pth or GFPGANv1.4.pth."
        )
    return state


def load_gfpgan_network(path: str | os.PathLike[str]) -> torch.nn.Module:
    """Load official GFPGAN v1.3/v1.4 weights into spandrel's GFPGANv1Clean (CPU, eval mode).

    Raises:
        WeightsNotFoundError: the file does not exist.
        CheckpointError: the file is unreadable or holds another architecture's weights.
    """
    weights = Path(path).expanduser()
    if not weights.is_file():
        raise WeightsNotFoundError(
            f"GFPGAN weights not found at {weights}; download GFPGANv1.4.pth (or v1.3) from the "
            f"TencentARC/GFPGAN releases on a connected machine, then pass its path with "
            f"--gfpgan-weights or set {WEIGHTS_ENV_VAR}."
        )
    try:
        import spandrel
    except ImportError as exc:
        raise Sketch2FaceError(
            "GFPGAN refinement needs the 'refine' extra (spandrel, torchvision); install it with "
            "`pip install 'sketch2face[refine]'`."
        ) from exc
    state = _read_state_dict(weights)
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError as exc:
        raise CheckpointError(
            f"{weights} is not GFPGAN weights (detected no known architecture from its "
            f"{len(state)} keys); expected GFPGANv1.3.pth or GFPGANv1.4.pth."
        ) from exc
    except (RuntimeError, KeyError, ValueError, TypeError, AssertionError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{weights} could not be loaded as GFPGAN weights ({first_line}); the file may be "
            "truncated or from another variant. Use GFPGANv1.3.pth or GFPGANv1.4.pth "
            "(GFPGANv1Clean, 512 px)."
        ) from exc
    arch_id = descriptor.architecture.id
    if arch_id != "GFPGAN":
        raise CheckpointError(
            f"{weights} is not GFPGAN weights (detected {arch_id}); pass GFPGANv1.3.pth or "
            f"GFPGANv1.4.pth with --gfpgan-weights or {WEIGHTS_ENV_VAR}."
        )
    network = descriptor.model
    network.eval()
    network.requires_grad_(False)
    return network


# --- alignment -------------------------------------------------------------------------------


class FaceLandmarker:
    """dlib HOG detector + 68-point predictor -> the 5 points of the FFHQ template (offline)."""

    def __init__(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_68)))
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe

    def points68(self, image_u8: np.ndarray, *, retry_upsampled: bool = True) -> np.ndarray | None:
        """(68, 2) float32 dlib points of the largest face, or None. ``retry_upsampled`` runs the
        detector once more on a 2x upsampled image when it finds nothing (small faces)."""
        import dlib

        with self._lock:
            rects = list(self._detector(image_u8, 0))
            if not rects and retry_upsampled:
                rects = list(self._detector(image_u8, 1))
            if not rects:
                return None
            best = max(rects, key=lambda r: r.width() * r.height())
            shape = self._predictor(
                image_u8, dlib.rectangle(best.left(), best.top(), best.right(), best.bottom())
            )
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float32)

    def five_points(self, image_u8: np.ndarray) -> np.ndarray | None:
        """(5, 2) float32 [left eye, right eye, nose tip, left mouth, right mouth], or None.

        Eye centres are the mean of the six eye-contour points (68-point indices 36-41 for the eye
        on the image's left, 42-47 for the other); nose 33 (base of the nose); mouth corners 48 and
        54. This matches the RetinaFace 5 points facexlib aligns with: on the FFHQ-aligned test
        face, point 33 lands 3 px from the template's nose while the tip (30) is 39 px above it, and
        dlib's own 5-point model gives eye corners, not centres.
        """
        pts = self.points68(image_u8)
        if pts is None:
            return None
        return np.stack(
            [pts[36:42].mean(axis=0), pts[42:48].mean(axis=0), pts[33], pts[48], pts[54]]
        ).astype(np.float32)


_default_landmarker: FaceLandmarker | None = None
_landmarker_lock = threading.Lock()


def default_landmarker() -> FaceLandmarker:
    """A process-wide FaceLandmarker (loading the 68-point model takes ~1 s)."""
    global _default_landmarker
    with _landmarker_lock:
        if _default_landmarker is None:
            _default_landmarker = FaceLandmarker()
        return _default_landmarker


def estimate_alignment(points5: np.ndarray, size_px: int = NETWORK_SIZE_PX) -> np.ndarray:
    """2x3 similarity transform (rotation, uniform scale, shift): image points -> template."""
    template = FFHQ_TEMPLATE_512 * (size_px / 512.0)
    # facexlib uses LMEDS: robust to one bad landmark on a poorly generated face.
    matrix, _ = cv2.estimateAffinePartial2D(points5.astype(np.float32), template, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("could not estimate a similarity transform from the landmarks")
    return matrix.astype(np.float64)


def paste_back(
    background_u8: np.ndarray, restored_u8: np.ndarray, align_matrix: np.ndarray, upscale: int
) -> np.ndarray:
    """Inverse-warp the restored crop onto the upscaled image with a soft, eroded mask.

    Follows facexlib ``paste_faces_to_input_image`` (erode to remove black borders, then an edge
    band of ~1/20 of the face size, Gaussian-blurred), except for the pixel-centre offset:
    with OpenCV's convention an upscale by s maps x to s*x + (s-1)/2 (facexlib adds s/2).
    """
    height, width = background_u8.shape[:2]
    inverse = cv2.invertAffineTransform(align_matrix) * upscale
    inverse[:, 2] += 0.5 * (upscale - 1)
    face_h, face_w = restored_u8.shape[:2]
    inv_restored = cv2.warpAffine(restored_u8, inverse, (width, height), flags=cv2.INTER_LINEAR)
    inv_mask = cv2.warpAffine(
        np.ones((face_h, face_w), np.float32), inverse, (width, height), flags=cv2.INTER_LINEAR
    )
    kernel = max(1, int(2 * upscale))
    inv_mask = cv2.erode(inv_mask, np.ones((kernel, kernel), np.uint8))
    edge_px = int(float(inv_mask.sum()) ** 0.5) // 20
    if edge_px > 0:
        inv_mask = cv2.erode(inv_mask, np.ones((2 * edge_px, 2 * edge_px), np.uint8))
        inv_mask = cv2.GaussianBlur(inv_mask, (2 * edge_px + 1, 2 * edge_px + 1), 0)
    soft = inv_mask[:, :, None]
    blended = soft * inv_restored.astype(np.float32) + (1.0 - soft) * background_u8.astype(
        np.float32
    )
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


# --- the refiner -----------------------------------------------------------------------------


class GFPGANRefiner:
    """GFPGAN v1.3/v1.4 refiner: 256x256 generated face -> 512x512 restored face.

    Build it with :meth:`from_weights` (official ``.pth``). The constructor takes any module with
    GFPGANv1Clean's call signature ``network(x, return_rgb=..., randomize_noise=...) -> (image, _)``
    on 1x3x512x512 tensors in [-1, 1], which keeps the alignment code testable without weights.
    """

    name = "gfpgan"

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        weights_path: Path | None = None,
        device: str | torch.device | None = "cpu",
        precision: str = "fp32",
        upscale: int = 2,
        randomize_noise: bool = False,
        landmarker: FaceLandmarker | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
        if upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {upscale}")
        self.network = network.eval()
        self.weights_path = weights_path
        self.precision = precision
        self.upscale = upscale
        # GFPGANer leaves StyleGAN noise random; we default to the checkpoint's fixed noise
        # buffers so the same face always refines to the same pixels.
        self.randomize_noise = randomize_noise
        self._landmarker = landmarker
        self._lock = threading.Lock()
        self.device = resolve_device(device)
        self.to(self.device)
        self.last_timing_ms: float | None = None

    @property
    def compute_dtype(self) -> torch.dtype:
        """The autocast dtype the network runs in (float32 = no autocast)."""
        if self.precision == "bf16":
            return torch.bfloat16
        if self.precision == "auto":
            if self.device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
            return torch.bfloat16 if cpu_supports_bf16() else torch.float32
        return torch.float32

    @classmethod
    def from_weights(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | None = "cpu",
        precision: str = "fp32",
        **kwargs: Any,
    ) -> GFPGANRefiner:
        """Load official GFPGAN weights from ``path`` or ``$SKETCH2FACE_GFPGAN_WEIGHTS``."""
        weights = resolve_weights_path(path)
        if weights is None:
            raise WeightsNotFoundError(
                "no GFPGAN weights given; pass a path (--gfpgan-weights) or set "
                f"{WEIGHTS_ENV_VAR} to GFPGANv1.4.pth (downloaded once on a connected machine)."
            )
        network = load_gfpgan_network(weights)
        return cls(network, weights_path=weights, device=device, precision=precision, **kwargs)

    def to(self, device: str | torch.device) -> GFPGANRefiner:
        """Move the network to ``device``; returns self."""
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.network.to(self.device)
        return self

    @property
    def landmarker(self) -> FaceLandmarker:
        """The dlib landmarker (created on first use)."""
        if self._landmarker is None:
            self._landmarker = default_landmarker()
        return self._landmarker

    def refine(self, face_u8: np.ndarray) -> np.ndarray:
        """Refine one HxWx3 uint8 face; returns (upscale*H)x(upscale*W)x3 uint8."""
        return self.refine_detailed(face_u8).image_u8

    def refine_detailed(self, face_u8: np.ndarray) -> RefineResult:
        """Refine one face and report whether it was aligned, whether it fell back, and timings."""
        face_u8 = np.ascontiguousarray(face_u8)
        if face_u8.ndim != 3 or face_u8.shape[2] != 3 or face_u8.dtype != np.uint8:
            raise ValueError(
                f"expected an HxWx3 uint8 RGB face, got {face_u8.shape} {face_u8.dtype}"
            )
        height, width = face_u8.shape[:2]
        out_size = (width * self.upscale, height * self.upscale)
        start = time.perf_counter()
        background_u8 = upscale_bicubic(face_u8, self.upscale)

        points = self.landmarker.five_points(face_u8)
        matrix = None
        if points is not None:
            try:
                matrix = estimate_alignment(points)
            except ValueError:
                matrix = None
        if matrix is not None:
            crop_u8 = cv2.warpAffine(
                face_u8,
                matrix,
                (NETWORK_SIZE_PX, NETWORK_SIZE_PX),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=BORDER_RGB,
            )
        else:
            # The generator output is already a face crop: restore the whole image.
            logger.debug("no face landmarks found; restoring the whole %dx%d image", width, height)
            crop_u8 = cv2.resize(
                face_u8, (NETWORK_SIZE_PX, NETWORK_SIZE_PX), interpolation=cv2.INTER_CUBIC
            )
        aligned_at = time.perf_counter()

        fell_back = False
        try:
            restored_u8 = self.restore_aligned(crop_u8)
        except RuntimeError as exc:  # GFPGANer: a failed face keeps its unrestored pixels
            logger.warning("GFPGAN failed on a face (%s); keeping the bicubic upscale", exc)
            restored_u8 = None
            fell_back = True
        restored_at = time.perf_counter()

        if restored_u8 is None:
            image_u8 = background_u8
        elif matrix is not None:
            image_u8 = paste_back(background_u8, restored_u8, matrix, self.upscale)
        elif restored_u8.shape[1::-1] == out_size:
            image_u8 = restored_u8
        else:
            shrink = out_size[0] < restored_u8.shape[1]
            interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
            image_u8 = cv2.resize(restored_u8, out_size, interpolation=interp)
        end = time.perf_counter()
        timings = {
            "align": 1000 * (aligned_at - start),
            "restore": 1000 * (restored_at - aligned_at),
            "paste": 1000 * (end - restored_at),
            "total": 1000 * (end - start),
        }
        self.last_timing_ms = timings["total"]
        return RefineResult(
            image_u8, face_found=matrix is not None, fell_back=fell_back, timings_ms=timings
        )

    def restore_aligned(self, crop_u8: np.ndarray) -> np.ndarray:
        """Run the network on one 512x512x3 uint8 aligned crop; returns 512x512x3 uint8."""
        x = u8_to_tensor(crop_u8).unsqueeze(0).to(self.device)  # (1, 3, 512, 512) in [-1, 1]
        with self._lock, torch.inference_mode(), autocast(self.device, self.compute_dtype):
            output = self.network(x, return_rgb=False, randomize_noise=self.randomize_noise)
        image_t = output[0] if isinstance(output, (tuple, list)) else output
        return tensor_to_u8(image_t.float())


def load_refiner(
    path: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    device: str | torch.device | None = "cpu",
    precision: str = "fp32",
) -> tuple[Refiner | None, str | None]:
    """Load the GFPGAN refiner if weights are configured: ``(refiner, None)`` or ``(None, notice)``.

    With no path and no ``$SKETCH2FACE_GFPGAN_WEIGHTS`` this returns ``(None, NO_WEIGHTS_NOTICE)``.
    A configured but missing/broken file also returns ``(None, notice)`` (with the error text)
    unless ``strict`` is True, in which case the WeightsNotFoundError / CheckpointError is raised
    (use it when the user passed the path explicitly). Never downloads anything.
    """
    weights = resolve_weights_path(path)
    if weights is None:
        return None, NO_WEIGHTS_NOTICE
    try:
        return GFPGANRefiner.from_weights(weights, device=device, precision=precision), None
    except Sketch2FaceError as exc:
        if strict:
            raise
        logger.warning("GFPGAN refiner unavailable: %s", exc)
        return None, f"refinement skipped: {exc}"
