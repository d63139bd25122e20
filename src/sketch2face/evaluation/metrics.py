"""Image and identity metrics for generated faces against their real photos.

SSIM (the headline number) is computed exactly like ``tf.image.ssim(a, b, max_val=255)`` on RGB,
the most likely definition behind the reference project's 0.74: an 11x11 Gaussian window with
sigma 1.5, K1 = 0.01, K2 = 0.03, population (not sample) covariances, the SSIM map taken over the
'valid' region only (5 px border dropped), averaged over pixels and then over the R, G, B channels.
In scikit-image that is::

    structural_similarity(a, b, channel_axis=2, data_range=255, gaussian_weights=True,
                          sigma=1.5, use_sample_covariance=False)

(skimage's window is 2*int(3.5*sigma + 0.5) + 1 = 11 taps and it crops (11-1)//2 = 5 px per
side, i.e. the same valid region). ``ssim_gray`` applies the same window to the BT.601 luma
Y = 0.299 R + 0.587 G + 0.114 B (float, not rounded), the MATLAB ``rgb2gray`` convention of most
face-sketch papers.

``ssim_regions`` splits the same SSIM map into the face (an ellipse over brows..chin and forehead,
placed by the crop framing of :mod:`sketch2face.data.align`) and the rest of the frame (hair,
background, shoulders), whose pixels a sketch barely constrains: it shows where SSIM is won or lost.

Identity uses dlib's ResNet face descriptor (128-D, ``dlib_face_recognition_resnet_model_v1``).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from skimage.metrics import structural_similarity

from sketch2face.data.align import CENTER_SHIFT_UP, FACE_FRACTION
from sketch2face.facemodels import FACE_RECOGNITION_RESNET, SHAPE_PREDICTOR_5, dlib_model_path

#: Exact SSIM settings (see the module docstring).
SSIM_KWARGS = {
    "data_range": 255,
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "K1": 0.01,
    "K2": 0.03,
}
SSIM_METHOD = (
    "skimage structural_similarity on RGB uint8: gaussian 11x11 window sigma 1.5, "
    "K1 0.01, K2 0.03, "
    "data_range 255, population covariance, valid region, mean over channels "
    "(= tf.image.ssim(max_val=255)); ssim_gray: same on BT.601 luma"
)
#: PSNR of identical images (MSE 0) is reported as this cap instead of infinity (JSON has no inf).
PSNR_MAX_DB = 100.0
#: dlib's documented threshold: descriptors closer than 0.6 (euclidean) are the same person.
DLIB_SAME_PERSON_DISTANCE = 0.6
EMBEDDING_DIM = 128
_LUMA_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def _check_pair(a_u8: np.ndarray, b_u8: np.ndarray) -> None:
    if a_u8.shape != b_u8.shape:
        raise ValueError(f"images differ in shape: {a_u8.shape} vs {b_u8.shape}; resize one first")
    if a_u8.ndim != 3 or a_u8.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB images, got {a_u8.shape}")
    if min(a_u8.shape[:2]) < 11:
        raise ValueError(
            f"images of {a_u8.shape[1]}x{a_u8.shape[0]} are smaller than the 11 px SSIM window"
        )


def ssim(a_u8: np.ndarray, b_u8: np.ndarray) -> float:
    """RGB SSIM in [-1, 1] (1 = identical), tf.image.ssim-compatible; see the module docstring."""
    _check_pair(a_u8, b_u8)
    return float(structural_similarity(a_u8, b_u8, channel_axis=2, **SSIM_KWARGS))


#: SSIM's 'valid' border: half the 11-tap window (see the module docstring).
SSIM_BORDER_PX = 5
#: The face ellipse in face-box sides (the box is FACE_FRACTION of the crop, centred
#: CENTER_SHIFT_UP box sides below the crop centre): semi-axes 0.53 x 0.71 box, centre raised
#: 0.075 box, so it spans the forehead to the chin and cheek to cheek but not the hair.
FACE_ELLIPSE_SEMI_AXES = (0.53, 0.71)
FACE_ELLIPSE_RAISE = 0.075


@functools.cache
def face_ellipse_mask(size_px: int) -> np.ndarray:
    """(size, size) bool mask of the face region of an aligned crop (see FACE_ELLIPSE_*); built
    once per size (every scored pair asks for it) and read-only, since it is shared."""
    box = FACE_FRACTION * size_px
    cx = size_px / 2.0
    cy = size_px / 2.0 + (CENTER_SHIFT_UP - FACE_ELLIPSE_RAISE) * box
    ax, ay = (f * box for f in FACE_ELLIPSE_SEMI_AXES)
    yy, xx = np.mgrid[0:size_px, 0:size_px] + 0.5
    mask = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    mask.flags.writeable = False
    return mask


def ssim_regions(a_u8: np.ndarray, b_u8: np.ndarray) -> tuple[float, float, float]:
    """(whole frame, face ellipse, rest of the frame) RGB SSIM from one SSIM map.

    The whole-frame figure equals :func:`ssim` exactly; the two regions partition its valid
    region, so the whole is their area-weighted mean.
    """
    _check_pair(a_u8, b_u8)
    height, width = a_u8.shape[:2]
    if height != width:
        raise ValueError(f"region SSIM needs square aligned crops, got {width}x{height}")
    _, full = structural_similarity(a_u8, b_u8, channel_axis=2, full=True, **SSIM_KWARGS)
    b = SSIM_BORDER_PX
    valid = full[b:-b, b:-b].mean(axis=2)
    face = face_ellipse_mask(height)[b:-b, b:-b]
    return float(valid.mean()), float(valid[face].mean()), float(valid[~face].mean())


def to_luma(image_u8: np.ndarray) -> np.ndarray:
    """BT.601 luma as float64 in [0, 255] (not rounded)."""
    return image_u8.astype(np.float64) @ _LUMA_BT601


def ssim_gray(a_u8: np.ndarray, b_u8: np.ndarray) -> float:
    """SSIM on BT.601 luma with the same Gaussian window as :func:`ssim`."""
    _check_pair(a_u8, b_u8)
    return float(structural_similarity(to_luma(a_u8), to_luma(b_u8), **SSIM_KWARGS))


#: a dark stroke narrower than 2 * LINE_WIDTH_PX + 1 px (at the 256-px evaluation size) counts as a
#: drawn line, a wider one as shading (the same as the training loss's loss.dark_line_width_px)
LINE_WIDTH_PX = 3
DRAWN_LINES_METHOD = (
    f"black top-hat of the BT.601 luma (grey closing with a {2 * LINE_WIDTH_PX + 1}x"
    f"{2 * LINE_WIDTH_PX + 1} square, minus the luma): how much darker each pixel is than its "
    f"surround at strokes narrower than {2 * LINE_WIDTH_PX + 1} px; drawn_lines = mean over the image of "
    "max(0, the image's - the real photo's at the same pixel), grey levels: dark lines the photo "
    "does not have (pencil strokes, drawn outlines); 0 = none"
)


def dark_line_strength(image_u8: np.ndarray) -> np.ndarray:
    """HxW float64: thin-dark-line strength (black top-hat of the luma, grey levels)."""
    import cv2  # the metrics above need only numpy / scikit-image

    luma = to_luma(image_u8)
    kernel = np.ones((2 * LINE_WIDTH_PX + 1,) * 2, np.uint8)
    closed = cv2.morphologyEx(luma, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    return closed - luma


def drawn_lines(image_u8: np.ndarray, photo_u8: np.ndarray) -> float:
    """Mean strength (grey levels) of the thin dark lines ``image_u8`` has beyond its photo's at the
    same pixel (:data:`DRAWN_LINES_METHOD`): a sketch's strokes left in a face score high, a
    photo 0."""
    _check_pair(image_u8, photo_u8)
    excess = dark_line_strength(image_u8) - dark_line_strength(photo_u8)
    return float(np.maximum(excess, 0.0).mean())


def psnr(a_u8: np.ndarray, b_u8: np.ndarray) -> float:
    """PSNR in dB over all pixels and channels, data range 255; identical -> PSNR_MAX_DB."""
    _check_pair(a_u8, b_u8)
    mse = float(np.mean((a_u8.astype(np.float64) - b_u8.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_MAX_DB
    return min(PSNR_MAX_DB, 10.0 * math.log10(255.0**2 / mse))


@dataclass(frozen=True)
class FaceEmbedding:
    """A 128-D dlib descriptor and whether a face was detected (else the whole image was used)."""

    vector: np.ndarray
    face_found: bool


class FaceEmbedder:
    """dlib HOG detector + 5-point landmarks + ResNet descriptor (offline, CPU).

    If no face is detected (common for poor generations at 256 px), the whole image is used as the
    face box: our inputs are already 256x256 face crops, so the landmarks are still placed on the
    face and the 150 px face chip dlib extracts is comparable. ``face_found`` records which it was.

    The descriptor comes from the PyTorch port of dlib's network on dlib's own chip geometry
    (:mod:`sketch2face.identity`): equal to ``compute_face_descriptor`` to float rounding (tested),
    and about 7x faster on CPU than the dlib-bin wheel. ``num_jitters > 1`` uses dlib itself.
    """

    def __init__(self, *, num_jitters: int = 1) -> None:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_5)))
        self._encoder = (
            dlib.face_recognition_model_v1(str(dlib_model_path(FACE_RECOGNITION_RESNET)))
            if num_jitters > 1
            else None
        )
        from sketch2face.identity.embedder import FaceEmbedder as ChipEmbedder

        # the one chip + network path of sketch2face.identity (also used by the gallery)
        self._chips = ChipEmbedder() if self._encoder is None else None
        self.num_jitters = num_jitters
        self._lock = threading.Lock()

    def embed(self, image_u8: np.ndarray) -> FaceEmbedding:
        """The 128-D descriptor of the largest face (or of the whole image when none is found)."""
        vectors, found = self.embed_many([image_u8])
        return FaceEmbedding(vectors[0], found[0])

    def _shape(self, image_u8: np.ndarray) -> tuple[Any, bool]:
        """dlib's 5-point shape of the largest face (whole-image box when none) and face_found."""
        if image_u8.ndim != 3 or image_u8.shape[2] != 3 or image_u8.dtype != np.uint8:
            raise ValueError(
                f"expected an HxWx3 uint8 RGB image, got {image_u8.shape} {image_u8.dtype}"
            )
        height, width = image_u8.shape[:2]
        with self._lock:
            rects = list(self._detector(image_u8, 0))
            if not rects:
                rects = list(self._detector(image_u8, 1))
            if rects:
                best = max(rects, key=lambda r: r.width() * r.height())
                box = self._dlib.rectangle(best.left(), best.top(), best.right(), best.bottom())
            else:
                box = self._dlib.rectangle(0, 0, width - 1, height - 1)
            return self._predictor(image_u8, box), bool(rects)

    def embed_many(self, images_u8: list[np.ndarray]) -> tuple[np.ndarray, list[bool]]:
        """(N, 128) float32 descriptors and the per-image face_found flags.

        Landmarks are found image by image; the network then runs once over all chips (batched),
        which is several times faster than one network call per image."""
        images = [np.ascontiguousarray(img) for img in images_u8]
        shapes = [self._shape(img) for img in images]
        found = [face_found for _, face_found in shapes]
        if not images:
            return np.zeros((0, EMBEDDING_DIM), np.float32), found
        if self._encoder is not None:
            with self._lock:
                vectors = [
                    np.asarray(
                        self._encoder.compute_face_descriptor(img, shape, self.num_jitters),
                        np.float32,
                    )
                    for img, (shape, _) in zip(images, shapes)
                ]
            return np.stack(vectors), found
        assert self._chips is not None
        points = [
            np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64) for shape, _ in shapes
        ]
        chunk = 256  # bounds the chips held at once (~70 MB)
        return np.concatenate(
            [
                self._chips.embed_u8(images[i : i + chunk], points[i : i + chunk])
                for i in range(0, len(images), chunk)
            ]
        ), found


_default_embedder: FaceEmbedder | None = None
_embedder_lock = threading.Lock()


def default_embedder() -> FaceEmbedder:
    """A process-wide FaceEmbedder (loading the dlib ResNet takes ~1 s)."""
    global _default_embedder
    with _embedder_lock:
        if _default_embedder is None:
            _default_embedder = FaceEmbedder()
        return _default_embedder


def identity_similarity(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Cosine similarity of two face descriptors, in [-1, 1]."""
    a = np.asarray(emb_a, dtype=np.float64).ravel()
    b = np.asarray(emb_b, dtype=np.float64).ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom > 0 else 0.0


def identity_distance(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Euclidean distance of two descriptors (dlib: < 0.6 means the same person)."""
    return float(
        np.linalg.norm(
            np.asarray(emb_a, np.float64).ravel() - np.asarray(emb_b, np.float64).ravel()
        )
    )


def is_same_person(emb_a: np.ndarray, emb_b: np.ndarray) -> bool:
    """dlib's convention: euclidean distance below DLIB_SAME_PERSON_DISTANCE."""
    return identity_distance(emb_a, emb_b) < DLIB_SAME_PERSON_DISTANCE


def rank_k(
    generated_embs: np.ndarray,
    real_embs: np.ndarray,
    k: int,
    *,
    face_found: Sequence[bool] | np.ndarray | None = None,
) -> float:
    """Fraction of generated faces whose own real photo (i <-> i) is among their k nearest
    (the mean of :func:`rank_hits`)."""
    return float(np.mean(rank_hits(generated_embs, real_embs, k, face_found=face_found)))


def rank_hits(
    generated_embs: np.ndarray,
    real_embs: np.ndarray,
    k: int,
    *,
    face_found: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """Per generated face: is its own real photo (i <-> i) among its k nearest? (N,) bool.

    Generated face i is ranked against all real photos j by euclidean descriptor distance; its
    rank is ``#{j : d(i, j) < d(i, i)} + #{j < i : d(i, j) == d(i, i)}`` (ties broken by index,
    exactly like ``argmin``), and it is a hit when that rank is below ``k``. ``k`` larger than the
    gallery counts every face as a hit. ``face_found`` (optional, one flag per generated face):
    a face the recogniser did not detect counts as a miss whatever its distances.
    """
    gen = np.asarray(generated_embs, dtype=np.float64)
    real = np.asarray(real_embs, dtype=np.float64)
    if gen.ndim != 2 or gen.shape != real.shape:
        raise ValueError(
            f"expected two (N, D) arrays of equal shape, got {gen.shape} and {real.shape}"
        )
    if len(gen) == 0:
        raise ValueError("rank_k needs at least one pair")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = len(gen)
    # (N, N) squared distances, generated i against real j
    dist = (gen**2).sum(1)[:, None] + (real**2).sum(1)[None, :] - 2.0 * gen @ real.T
    own = np.diag(dist)[:, None]
    earlier = np.arange(n)[None, :] < np.arange(n)[:, None]
    rank = np.sum(dist < own, axis=1) + np.sum((dist == own) & earlier, axis=1)
    hits = rank < k
    if face_found is not None:
        found = np.asarray(face_found, dtype=bool)
        if found.shape != (n,):
            raise ValueError(f"face_found needs {n} flags, got shape {found.shape}")
        hits &= found
    return hits


def rank1(generated_embs: np.ndarray, real_embs: np.ndarray) -> float:
    """Fraction of generated faces whose nearest real photo (euclidean) is their own (i <-> i)."""
    return rank_k(generated_embs, real_embs, 1)


#: Why LPIPS / FID are not computed; reported under ``unavailable`` in every EvalReport.
LPIPS_UNAVAILABLE = (
    "needs backbone weights; none available offline (the `lpips` package is not installed and its "
    "AlexNet/VGG backbone is downloaded at first use)"
)
FID_UNAVAILABLE = (
    "needs Inception-v3 weights; none available offline (pass --inception-weights when an FID "
    "implementation is added)"
)


def lpips_unavailable_reason(weights_path: str | None = None) -> str:
    """The reason LPIPS cannot be computed here (hook for a future implementation)."""
    try:
        import lpips  # noqa: F401
    except ImportError:
        if weights_path:
            return (
                f"`lpips` package not installed (weights {weights_path} given); pip install lpips"
            )
        return LPIPS_UNAVAILABLE
    if not weights_path:
        return "needs backbone weights (--lpips-weights PATH); none available offline"
    return "LPIPS with user-given backbone weights is not implemented yet"


def fid_unavailable_reason(weights_path: str | None = None) -> str:
    """The reason FID cannot be computed here (hook for a future implementation)."""
    if weights_path:
        return f"FID is not implemented yet (Inception weights {weights_path} given)"
    return FID_UNAVAILABLE
