"""Evaluation: SSIM/PSNR/identity metrics and the EvalReport of a pipeline on sketch/photo pairs."""

from sketch2face.evaluation.evaluate import (
    EvalReport,
    StemPairs,
    evaluate_pairs,
    pair_by_stem,
    pairs_from_manifest,
)
from sketch2face.evaluation.metrics import (
    FaceEmbedder,
    default_embedder,
    identity_distance,
    identity_similarity,
    psnr,
    rank1,
    ssim,
    ssim_gray,
)

__all__ = [
    "EvalReport",
    "FaceEmbedder",
    "StemPairs",
    "default_embedder",
    "evaluate_pairs",
    "identity_distance",
    "identity_similarity",
    "pair_by_stem",
    "pairs_from_manifest",
    "psnr",
    "rank1",
    "ssim",
    "ssim_gray",
]
