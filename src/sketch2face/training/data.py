"""Turn a prepared dataset split into the trainer's uint8 tensors (with per-source oversampling)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from sketch2face.data.dataset import load_split_u8
from sketch2face.data.manifest import MANIFEST_NAME, file_sha256, read_manifest
from sketch2face.errors import ConfigError, DatasetError
from sketch2face.training.config import DataConfig
from sketch2face.training.trainer import PairTensors

log = logging.getLogger(__name__)


def _parse_oversample(items: tuple[str, ...]) -> dict[str, int]:
    factors: dict[str, int] = {}
    for item in items:
        source, sep, k = item.partition(":")
        if not sep or not k.isdigit() or int(k) < 1:
            raise ConfigError(f"data.oversample entry {item!r} must look like 'source:k' with k >= 1")
        factors[source] = int(k)
    return factors


def load_pairs(cfg: DataConfig, split: str) -> PairTensors:
    """Load ``split`` of ``cfg.dataset_dir`` (decoded once into the .npy cache) as PairTensors."""
    root = Path(cfg.dataset_dir)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise DatasetError(
            f"no prepared dataset at {root} (missing {MANIFEST_NAME}); run `sketch2face prepare --out {root} ...` "
            "or set data.dataset_dir."
        )
    arrays = load_split_u8(root, split, mmap=False)
    if len(arrays) == 0:
        raise DatasetError(f"split {split!r} of {root} is empty.")
    sources = {r.id: r.source for r in read_manifest(manifest) if r.split == split}
    row_sources = np.array([sources[i] for i in arrays.ids])
    keep = np.ones(len(arrays), dtype=bool)
    if cfg.sources:
        keep = np.isin(row_sources, list(cfg.sources))
    factors = _parse_oversample(cfg.oversample)
    indices: list[int] = []
    for i in np.flatnonzero(keep):
        indices.extend([int(i)] * factors.get(str(row_sources[i]), 1))
    counts = {s: int((row_sources[keep] == s).sum()) for s in np.unique(row_sources[keep])}
    log.info("%s split: %s pairs per source, %d rows per epoch after oversampling", split, counts, len(indices))
    return PairTensors(
        torch.from_numpy(np.ascontiguousarray(arrays.sketches)),
        torch.from_numpy(np.ascontiguousarray(arrays.photos)),
        manifest_sha256=file_sha256(manifest),
        indices=torch.tensor(indices, dtype=torch.long),
    )
