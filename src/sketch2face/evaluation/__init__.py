"""Evaluation: SSIM/PSNR/identity metrics, baselines, artefact/realism measures and the EvalReport."""

from sketch2face.evaluation.baselines import (
    MeanFace,
    compute_mean_face,
    create_mean_face,
    load_mean_face,
    mean_face_path,
    resolve_mean_face,
    save_mean_face,
    unsharp_mask,
)
from sketch2face.evaluation.evaluate import EvalReport, comparison_sheet, evaluate_pairs
from sketch2face.evaluation.metrics import (
    FaceEmbedder,
    default_embedder,
    identity_distance,
    identity_similarity,
    psnr,
    rank1,
    rank_k,
    ssim,
    ssim_gray,
    ssim_regions,
)
from sketch2face.evaluation.pairs import StemPairs, pair_by_stem, pairs_from_manifest
from sketch2face.evaluation.realism import (
    grid_artifact_ratio,
    grid_energy_score,
    realism_accuracy,
    realism_distance,
    realism_features,
)
from sketch2face.evaluation.stages import compare_stages

__all__ = [
    "EvalReport",
    "FaceEmbedder",
    "MeanFace",
    "StemPairs",
    "compare_stages",
    "comparison_sheet",
    "compute_mean_face",
    "create_mean_face",
    "default_embedder",
    "evaluate_pairs",
    "grid_artifact_ratio",
    "grid_energy_score",
    "identity_distance",
    "identity_similarity",
    "load_mean_face",
    "mean_face_path",
    "pair_by_stem",
    "pairs_from_manifest",
    "psnr",
    "rank1",
    "rank_k",
    "realism_accuracy",
    "realism_distance",
    "realism_features",
    "resolve_mean_face",
    "save_mean_face",
    "ssim",
    "ssim_gray",
    "ssim_regions",
    "unsharp_mask",
]
