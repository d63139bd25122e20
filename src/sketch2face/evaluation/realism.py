"""Set-level artefact and realism measures: grid (checkerboard) energy and a two-sample classifier.

Both compare a set of images (generated faces, or a baseline) with the set of real photos they are
scored against, so they need no reference network and no downloaded weights:

* :func:`grid_artifact_ratio`: how much more spectral energy than real photos the images have at
  the frequencies where stride-2 ``ConvTranspose`` decoders leave checkerboard / grid patterns
  (1.0 = no more than real photos).
* :func:`realism_accuracy`: cross-validated accuracy of a small logistic regression that tells the
  images from the real photos on cheap image statistics (0.5 = indistinguishable to it, 1.0 =
  trivially separable). A *low* value does not prove realism (the features are simple); a high
  value proves a systematic, measurable difference.
* :func:`realism_distance`: the Fréchet distance between Gaussians fitted to the same features
  (standardised by the real photos'), an FID on simple statistics. Unlike the accuracy it does not
  saturate at 1.0 once every system is separable, so it still ranks models (0 = same statistics;
  biased upward on small sets, so compare systems on the same pairs).

Each is built from a per-image function (:func:`grid_energy_score`, :func:`realism_features`) so
callers can stream images and keep only a float / a short vector per image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np

_LUMA_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float64)

#: Smallest side :func:`grid_energy_score` accepts (grid peaks are side/8 bins apart).
GRID_MIN_SIZE_PX = 64
#: Half-width of the square block of bins that holds one grid peak (3x3: a periodic Hann window
#: spreads an on-bin sinusoid over exactly its bin and the two neighbours in each direction).
GRID_PEAK_HALF_WIDTH = 1
#: The neighbourhood of a peak: bins with Chebyshev distance GRID_RING_INNER < d <= GRID_RING_OUTER.
GRID_RING_INNER = 2
GRID_RING_OUTER = 6
#: Added to both block and ring mean power (luma^2 units) so flat images give a ratio of 1, not 0/0.
_GRID_EPS = 1e-6

GRID_METHOD = (
    "per image: BT.601 luma, mean removed, 2D periodic Hann window, power |FFT|^2; at each of the 63 "
    "grid frequencies (u, v) = (i*H/8, j*W/8), i, j in 0..7, not both 0 (period 2/4/8 patterns), "
    "score = (mean power in the 3x3 bins around (u, v) + eps) / (mean power in the bins at "
    "Chebyshev distance 3..6 around it + eps), indices modulo the size; image score = mean over the "
    "63 frequencies; grid_artifact_ratio = mean image score of the system's images / mean image "
    "score of the real photos (1.0 = no more grid energy than real photos)"
)

#: Radial power-spectrum bins (linear in frequency, 0 < f <= 0.5 cycles/pixel).
RADIAL_BINS = 12
#: Gradient-magnitude histogram edges (Sobel 3x3 on luma, 0..255 scale).
GRADIENT_EDGES = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, math.inf)
FEATURE_NAMES = (
    *(f"log_radial_power_{i}" for i in range(RADIAL_BINS)),
    *(f"{stat}_{ch}" for ch in "rgb" for stat in ("mean", "std", "skew")),
    *(f"grad_hist_{i}" for i in range(len(GRADIENT_EDGES) - 1)),
)
#: Folds and repetitions of the cross-validation; fewer images per class than
#: REALISM_MIN_PER_CLASS gives NaN (undefined).
REALISM_FOLDS = 5
REALISM_REPEATS = 5
REALISM_MIN_PER_CLASS = 4
#: L2 penalty of the logistic regression (on standardised features; intercept not penalised).
REALISM_L2 = 1.0

REALISM_METHOD = (
    f"{len(FEATURE_NAMES)} features per image (log mean luma power in {RADIAL_BINS} radial "
    "frequency bins, mean/std/skewness of R, G, B, 10-bin Sobel gradient-magnitude histogram); "
    f"L2 logistic regression (lambda {REALISM_L2}, standardised on the training folds); "
    f"stratified {REALISM_FOLDS}-fold cross-validation with pair i of both sets in the same fold, "
    f"repeated {REALISM_REPEATS} times; realism_accuracy = held-out accuracy telling the system's "
    "images from the real photos (0.5 = indistinguishable to it, 1.0 = trivially separable); "
    "realism_distance = Fréchet distance between Gaussians fitted to the same features, "
    "standardised by the real photos' (0 = same mean and covariance; ranks systems even when "
    "every one is separable; biased upward on small sets)"
)


def _luma(image_u8: np.ndarray) -> np.ndarray:
    image = np.asarray(image_u8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    return image.astype(np.float64) @ _LUMA_BT601


@functools.lru_cache(maxsize=8)
def _hann2d(height: int, width: int) -> np.ndarray:
    """Periodic (DFT-even) Hann window: an on-bin sinusoid leaks into exactly +-1 bin."""

    def hann(n: int) -> np.ndarray:
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)

    window = np.outer(hann(height), hann(width))
    window.setflags(write=False)
    return window


def _power_spectrum(luma: np.ndarray) -> np.ndarray:
    centred = (luma - luma.mean()) * _hann2d(*luma.shape)
    spectrum = np.fft.fft2(centred)
    return spectrum.real**2 + spectrum.imag**2


@functools.lru_cache(maxsize=8)
def _grid_indices(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(block rows, block cols, ring rows, ring cols) index arrays of shape (63, n_offsets)."""
    us = [round(i * height / 8) for i in range(8)]
    vs = [round(j * width / 8) for j in range(8)]
    peaks = np.array([(u, v) for u in us for v in vs if (u, v) != (0, 0)])
    span = np.arange(-GRID_RING_OUTER, GRID_RING_OUTER + 1)
    du, dv = (a.ravel() for a in np.meshgrid(span, span, indexing="ij"))
    cheb = np.maximum(np.abs(du), np.abs(dv))
    block = cheb <= GRID_PEAK_HALF_WIDTH
    ring = cheb > GRID_RING_INNER

    def rows_cols(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = (peaks[:, :1] + du[mask][None, :]) % height
        cols = (peaks[:, 1:] + dv[mask][None, :]) % width
        return rows, cols

    return (*rows_cols(block), *rows_cols(ring))


def grid_energy_score(image_u8: np.ndarray) -> float:
    """Mean excess spectral power of one image at the period-2/4/8 grid frequencies.

    Definition (exact): Y = BT.601 luma (float, 0..255) of the HxW image, mean removed, multiplied
    by the 2D periodic Hann window w(y, x) = h_H(y) h_W(x), h_N(n) = 0.5 - 0.5 cos(2 pi n / N);
    P = |FFT2|^2. For each of the 63 grid frequencies (u, v) = (round(i H / 8), round(j W / 8)),
    i, j in 0..7 except (0, 0) -- every frequency a pattern repeating every 2, 4 or 8 pixels can
    put energy at, e.g. (H/2, W/2) for a stride-2 checkerboard -- take
    ``r(u, v) = (mean P over the 3x3 bins centred there + 1e-6)
    / (mean P over the bins at Chebyshev distance 3..6 from it + 1e-6)``
    (bin indices wrap modulo H and W, the DFT being periodic; distance 2 is a guard band). The
    score is the mean of r over the 63 frequencies: about 1 where the spectrum is locally smooth,
    much larger with a grid pattern. Images must be at least 64 px on each side.
    """
    luma = _luma(image_u8)
    height, width = luma.shape
    if min(height, width) < GRID_MIN_SIZE_PX:
        raise ValueError(
            f"grid_energy_score needs images of at least {GRID_MIN_SIZE_PX}x{GRID_MIN_SIZE_PX} px, "
            f"got {width}x{height}"
        )
    power = _power_spectrum(luma)
    block_r, block_c, ring_r, ring_c = _grid_indices(height, width)
    block = power[block_r, block_c].mean(axis=1)
    ring = power[ring_r, ring_c].mean(axis=1)
    return float(np.mean((block + _GRID_EPS) / (ring + _GRID_EPS)))


def grid_artifact_ratio(
    generated_u8_list: Sequence[np.ndarray], real_u8_list: Sequence[np.ndarray]
) -> float:
    """Grid (checkerboard) energy of the generated images relative to the real photos.

    ``mean(grid_energy_score(g) for g in generated) / mean(grid_energy_score(r) for r in real)``,
    see :func:`grid_energy_score` for the exact per-image definition (luma, mean removed, periodic
    Hann window, power spectrum; mean over the 63 frequencies (i H/8, j W/8) != DC of the 3x3-bin
    power around each over the power of its 3..6-bin neighbourhood). 1.0 means no more energy at
    the period-2/4/8 grid frequencies than real photos have; stride-2 transposed-convolution
    checkerboards push it well above 1.
    """
    return grid_ratio_from_scores(
        [grid_energy_score(g) for g in generated_u8_list],
        [grid_energy_score(r) for r in real_u8_list],
    )


def grid_ratio_from_scores(
    generated_scores: Sequence[float], real_scores: Sequence[float]
) -> float:
    """:func:`grid_artifact_ratio` from per-image :func:`grid_energy_score` values."""
    if len(generated_scores) == 0 or len(real_scores) == 0:
        raise ValueError("grid_artifact_ratio needs at least one generated and one real image")
    return float(np.mean(generated_scores) / np.mean(real_scores))


# --- realism proxy ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _radial_bins(height: int, width: int) -> np.ndarray:
    """Bin index (0..RADIAL_BINS-1, or -1 = unused) of every FFT bin by radial frequency."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    index = np.ceil(radius / 0.5 * RADIAL_BINS).astype(np.int64) - 1  # (0, 0.5/12] -> 0, ...
    index[(radius <= 0) | (radius > 0.5)] = -1
    return index


def realism_features(image_u8: np.ndarray) -> np.ndarray:
    """The classifier's per-image features (``FEATURE_NAMES``, float64).

    log10 mean luma power in RADIAL_BINS linear radial-frequency bins (same windowed spectrum as the
    grid score, normalised by the pixel count), per-channel mean / std / skewness (0..1 scale),
    and the fraction of pixels in each gradient-magnitude bin (Sobel 3x3 on luma, GRADIENT_EDGES).
    """
    image = np.asarray(image_u8)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    luma = _luma(image)
    height, width = luma.shape
    power = _power_spectrum(luma) / (height * width)
    bins = _radial_bins(height, width)
    valid = bins >= 0
    sums = np.bincount(bins[valid], weights=power[valid], minlength=RADIAL_BINS)
    counts = np.bincount(bins[valid], minlength=RADIAL_BINS)
    radial = np.log10(sums / np.maximum(counts, 1) + 1e-8)

    # exact moments from each channel's 256-bin histogram (much faster than on the pixels)
    levels = np.arange(256, dtype=np.float64) / 255.0
    hist = np.stack([np.bincount(image[:, :, c].ravel(), minlength=256) for c in range(3)]).astype(
        np.float64
    )
    hist /= hist.sum(axis=1, keepdims=True)
    mean = hist @ levels
    centred = levels[None, :] - mean[:, None]
    std = np.sqrt(np.sum(hist * centred**2, axis=1))
    third = np.sum(hist * centred**3, axis=1)
    skew = np.where(std > 1e-8, third / np.maximum(std, 1e-8) ** 3, 0.0)
    moments = np.stack([mean, std, skew], axis=1).ravel()  # r: mean std skew, g: ..., b: ...

    gx = cv2.Sobel(luma, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(luma, cv2.CV_64F, 0, 1, ksize=3)
    hist, _ = np.histogram(np.hypot(gx, gy), bins=np.array(GRADIENT_EDGES))
    gradients = hist / hist.sum()
    return np.concatenate([radial, moments, gradients])


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method; x has a leading column of ones."""
    weights = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0  # intercept
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ weights, -30, 30)))
        gradient = x.T @ (p - y) + penalty * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return weights


def _fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    ids = np.empty(n, dtype=np.int64)
    ids[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return ids


def _feature_arrays(generated: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both per-image feature sets as float64 (N, F) / (M, F) arrays with the same F."""
    gen = np.asarray(generated, dtype=np.float64)
    ref = np.asarray(real, dtype=np.float64)
    if gen.ndim != 2 or ref.ndim != 2 or gen.shape[1] != ref.shape[1]:
        raise ValueError(f"expected (N, F) feature arrays, got {gen.shape} and {ref.shape}")
    return gen, ref


def realism_accuracy_from_features(
    generated_features: np.ndarray,
    real_features: np.ndarray,
    *,
    folds: int = REALISM_FOLDS,
    repeats: int = REALISM_REPEATS,
    l2: float = REALISM_L2,
    seed: int = 0,
) -> float:
    """:func:`realism_accuracy` from per-image :func:`realism_features` rows."""
    gen, real = _feature_arrays(generated_features, real_features)
    smallest = min(len(gen), len(real))
    if smallest < REALISM_MIN_PER_CLASS:
        return float("nan")
    k = min(folds, smallest)
    x = np.concatenate([gen, real])
    y = np.concatenate([np.ones(len(gen)), np.zeros(len(real))])
    correct = total = 0
    for repeat in range(repeats):
        # the same permutation for equally long sets: pair i of both sets lands in the same fold
        fold = np.concatenate(
            [_fold_ids(len(gen), k, seed + repeat), _fold_ids(len(real), k, seed + repeat)]
        )
        for f in range(k):
            train, test = fold != f, fold == f
            mu = x[train].mean(axis=0)
            sd = x[train].std(axis=0)
            sd[sd < 1e-12] = 1.0
            xs = (x - mu) / sd
            design = np.concatenate([np.ones((len(xs), 1)), xs], axis=1)
            weights = _fit_logistic(design[train], y[train], l2)
            predicted = (design[test] @ weights) > 0
            correct += int(np.sum(predicted == (y[test] > 0.5)))
            total += int(np.sum(test))
    return correct / total


def realism_distance_from_features(
    generated_features: np.ndarray, real_features: np.ndarray
) -> float:
    """:func:`realism_distance` from per-image :func:`realism_features` rows (N, F) and (M, F).

    Both sets are standardised with the real photos' per-feature mean and std, then
    ``|mu_g - mu_r|^2 + tr(C_g + C_r - 2 (C_g C_r)^(1/2))`` with population covariances; the trace of
    the matrix square root is the sum of the square roots of the eigenvalues of ``C_g C_r`` (real
    and non-negative in exact arithmetic; rounding noise is clipped). NaN below
    ``REALISM_MIN_PER_CLASS`` images per set.
    """
    gen, real = _feature_arrays(generated_features, real_features)
    if min(len(gen), len(real)) < REALISM_MIN_PER_CLASS:
        return float("nan")
    mu, sd = real.mean(axis=0), real.std(axis=0)
    sd[sd < 1e-12] = 1.0
    gen, real = (gen - mu) / sd, (real - mu) / sd
    cov_g = np.cov(gen, rowvar=False, bias=True)
    cov_r = np.cov(real, rowvar=False, bias=True)
    eigenvalues = np.linalg.eigvals(cov_g @ cov_r).real
    cross = float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))
    mean_term = float(np.sum((gen.mean(axis=0) - real.mean(axis=0)) ** 2))
    return max(0.0, mean_term + float(np.trace(cov_g) + np.trace(cov_r)) - 2.0 * cross)


def realism_distance(generated: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> float:
    """Fréchet distance between the :func:`realism_features` of ``generated`` and ``real`` images
    (standardised by the real photos'; 0 = the same mean and covariance)."""
    return realism_distance_from_features(_feature_matrix(generated), _feature_matrix(real))


def _feature_matrix(images: Sequence[np.ndarray]) -> np.ndarray:
    if len(images) == 0:
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.stack([realism_features(image) for image in images])


def realism_accuracy(
    generated: Sequence[np.ndarray],
    real: Sequence[np.ndarray],
    *,
    folds: int = REALISM_FOLDS,
    repeats: int = REALISM_REPEATS,
    seed: int = 0,
) -> float:
    """Cross-validated accuracy of a two-sample classifier telling ``generated`` from ``real``.

    Features: :func:`realism_features` (radial power spectrum, colour moments, gradient-magnitude
    histogram). Classifier: L2 logistic regression (lambda ``REALISM_L2``) on features standardised
    with the training folds' statistics. Validation: stratified ``folds``-fold cross-validation
    (image i of each set in the same fold when the sets are equally long, so a generated face and
    its real photo are never split between training and testing), repeated ``repeats`` times with
    different fold assignments; the result is the held-out accuracy over all repeats.

    0.5 = indistinguishable to this classifier (values a little below 0.5 happen by chance),
    1.0 = trivially separable. NaN when either set has fewer than ``REALISM_MIN_PER_CLASS`` images.
    """
    return realism_accuracy_from_features(
        _feature_matrix(generated),
        _feature_matrix(real),
        folds=folds,
        repeats=repeats,
        seed=seed,
    )
