"""Turn a prepared dataset split into the trainer's uint8 tensors (with per-source oversampling)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from sketch2face.attributes import training_vectors
from sketch2face.data.artist_styles import ARTIST_STYLES, style_vectors
from sketch2face.data.dataset import load_split_u8
from sketch2face.data.manifest import MANIFEST_NAME, file_sha256, read_manifest
from sketch2face.data.pseudo_gender import load_pseudo_genders, pseudo_gender_path
from sketch2face.errors import ConfigError, DatasetError
from sketch2face.training.config import DataConfig
from sketch2face.training.trainer import PairTensors

log = logging.getLogger(__name__)


def _parse_oversample(items: tuple[str, ...]) -> dict[str, int]:
    factors: dict[str, int] = {}
    for item in items:
        source, sep, k = item.partition(":")
        if not sep or not k.isdigit() or int(k) < 1:
            raise ConfigError(
                f"data.oversample entry {item!r} must look like 'source:k' with k >= 1"
            )
        factors[source] = int(k)
    return factors


def resize_stack(images_u8: np.ndarray, size_px: int) -> np.ndarray:
    """Resize (N, H, W, 3) uint8 images to ``size_px`` square (area filter when shrinking)."""
    interp = cv2.INTER_AREA if size_px < images_u8.shape[1] else cv2.INTER_CUBIC
    out = np.empty((len(images_u8), size_px, size_px, 3), dtype=np.uint8)
    for i, image in enumerate(images_u8):
        out[i] = cv2.resize(np.asarray(image), (size_px, size_px), interpolation=interp)
    return out


def face_chip_matrices(landmarks_256: np.ndarray, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2, 3) image px -> dlib face chip px for images of ``size_px``, from (N, 5, 2) landmarks
    found at 256 px; and the (N,) mask of rows that have landmarks (the others get identity maps)."""
    from sketch2face.identity.chips import chip_transform

    valid = np.isfinite(landmarks_256).all(axis=(1, 2))
    matrices = np.tile(np.eye(2, 3, dtype=np.float32), (len(landmarks_256), 1, 1))
    scale = size_px / 256.0
    for i in np.flatnonzero(valid):
        points = (landmarks_256[i].astype(np.float64) + 0.5) * scale - 0.5  # pixel-centre aware
        matrices[i] = chip_transform(points)
    return matrices, valid


def with_pseudo_genders(
    root: Path, split: str, ids: list[str], genders: list[int | None]
) -> list[int | None]:
    """Fill rows without a manifest gender (CelebA) from ``cache/gender_pseudo.json`` when it
    exists (``sketch2face gender label``); unchanged otherwise. Manifest labels always win."""
    pseudo = load_pseudo_genders(root)
    if pseudo is None:
        return genders
    out = list(genders)
    missing = filled = 0
    for k, (row_id, gender) in enumerate(zip(ids, genders)):
        if gender in (0, 1):
            continue
        missing += 1
        if row_id in pseudo:
            out[k] = pseudo[row_id]
            filled += 1
    females = sum(1 for k in range(len(out)) if out[k] == 1 and genders[k] not in (0, 1))
    log.info(
        "%s split: %d of %d rows without a gender label got a pseudo label (%d female, %d male) "
        "from %s",
        split,
        filled,
        missing,
        females,
        filled - females,
        pseudo_gender_path(root),
    )
    return out


def load_pairs(cfg: DataConfig, split: str, *, face_chips: bool = False) -> PairTensors:
    """Load ``split`` of ``cfg.dataset_dir`` (decoded once into the .npy cache) as PairTensors.

    With ``data.direction = "photo2sketch"`` the pairs are turned round (``sketches`` holds the
    model's inputs, the photos; ``photos`` its targets, the sketches) and the condition vectors are
    the rows' artist styles; keep ``data.sources = ["fs2k"]`` then, the only artist sketches.

    With ``face_chips`` the photos' 5 landmarks (cached by ``prepare``) become per-row face-chip
    warps for the identity and face-perceptual losses.
    """
    root = Path(cfg.dataset_dir)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise DatasetError(
            f"no prepared dataset at {root} (missing {MANIFEST_NAME}); run `sketch2face prepare --out {root} ...` "
            "or set data.dataset_dir."
        )
    arrays = load_split_u8(root, split, mmap=True)
    if len(arrays) == 0:
        raise DatasetError(f"split {split!r} of {root} is empty.")
    rows_by_id = {r.id: r for r in read_manifest(manifest) if r.split == split}
    all_sources = np.array([rows_by_id[i].source for i in arrays.ids])
    all_styles = np.array([rows_by_id[i].style for i in arrays.ids])
    keep = np.ones(len(arrays), dtype=bool)
    if cfg.sources:
        keep = np.isin(all_sources, list(cfg.sources))
    if cfg.exclude_styles:
        keep &= ~np.isin(all_styles, list(cfg.exclude_styles))
    kept = np.flatnonzero(keep)
    if len(kept) == 0:
        raise DatasetError(
            f"split {split!r} of {root} has no rows of sources {list(cfg.sources)} outside the "
            f"excluded styles {list(cfg.exclude_styles)}; sources there: {sorted(set(all_sources))}."
        )
    # At the dataset's own size the images stay memory-mapped (the OS pages in the rows a batch
    # reads), so a split of many sources need not fit in RAM; only a resized run, or the refiner's
    # validation (whose inputs are stage one's faces), copies, and then only the rows it uses.
    resize = cfg.image_size_px != arrays.sketches.shape[1]
    refine_val = cfg.direction == "refine" and split != cfg.train_split
    stored = kept if resize or refine_val else np.arange(len(arrays))
    position = np.full(len(arrays), -1)
    position[stored] = np.arange(len(stored))
    factors = _parse_oversample(cfg.oversample)
    indices: list[int] = []
    for row in kept:
        indices.extend([int(position[row])] * factors.get(str(all_sources[row]), 1))
    row_sources = all_sources[stored]
    counts = {str(s): int((all_sources[kept] == s).sum()) for s in np.unique(all_sources[kept])}
    log.info(
        "%s split: %s pairs per source, %d rows per epoch after oversampling",
        split,
        counts,
        len(indices),
    )
    ids = [arrays.ids[i] for i in stored]
    stage_one = stage_one_rows = None
    if refine_val:
        # the refiner is judged on what it will see: stage one's faces of the validation sketches
        # (training degrades the photos instead, afresh each step, in the trainer)
        sketches = stage_one_faces(
            root, split, ids, arrays.sketches, cfg.stage_one_checkpoint, rows=kept
        )
        photos = np.asarray(arrays.photos[kept])
        if resize:
            sketches = resize_stack(np.asarray(sketches), cfg.image_size_px)
            photos = resize_stack(photos, cfg.image_size_px)
    elif resize:
        sketches = resize_stack(np.asarray(arrays.sketches[kept]), cfg.image_size_px)
        photos = resize_stack(np.asarray(arrays.photos[kept]), cfg.image_size_px)
    else:
        sketches, photos = arrays.sketches, arrays.photos
    if cfg.direction == "refine" and not refine_val and cfg.stage_one_pairs > 0:
        faces, face_rows = _stage_one_pairs(
            cfg, root, split, arrays.ids, arrays.sketches, kept, all_sources
        )
        stage_one = _as_tensor(faces)
        stage_one_rows = torch.full((len(stored),), -1, dtype=torch.long)
        stage_one_rows[torch.from_numpy(position[face_rows])] = torch.arange(len(face_rows))
    if cfg.direction == "photo2sketch":
        # the reverse model: photo in, the artist's sketch out, conditioned on the drawing style
        sketches, photos = photos, sketches
        # rows left out (other sources) are never drawn: any style fills their slot
        vectors = style_vectors(
            [str(all_styles[r]) if keep[r] else ARTIST_STYLES[0] for r in stored]
        )
    else:
        genders = [rows_by_id[i].attributes.get("gender") for i in ids]
        # an artist-style row has its photo's pseudo label, kept under the row it was drawn from
        label_ids = [rows_by_id[i].attributes.get("from", i) for i in ids]
        genders = with_pseudo_genders(root, split, label_ids, genders)
        # measured on the 256-px photos, before any resize
        vectors = training_vectors(arrays.photos[stored] if resize else arrays.photos, genders)
    chips: dict[str, torch.Tensor] = {}
    if face_chips:
        from sketch2face.data.landmarks import load_split_landmarks

        landmarks = load_split_landmarks(root, split)[stored]
        matrices, valid = face_chip_matrices(landmarks, cfg.image_size_px)
        chips = {"chip_matrices": torch.from_numpy(matrices), "chip_valid": torch.from_numpy(valid)}
        log.info(
            "%s split: %d of %d photos have face landmarks",
            split,
            int(valid[position[kept]].sum()),
            len(kept),
        )
    return PairTensors(
        _as_tensor(sketches),
        _as_tensor(photos),
        manifest_sha256=file_sha256(manifest),
        indices=torch.tensor(indices, dtype=torch.long),
        attributes=torch.from_numpy(vectors),
        sources=tuple(str(s) for s in row_sources),
        stage_one=stage_one,
        stage_one_rows=stage_one_rows,
        **chips,
    )


def _stage_one_pairs(
    cfg: DataConfig,
    root: Path,
    split: str,
    split_ids: Sequence[str],
    split_sketches: np.ndarray,
    kept: np.ndarray,
    all_sources: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage one's faces for the pairs (b) of the refiner's training split: only the ``kept`` rows
    whose source is in ``data.stage_one_sources`` (every kept row when empty), at most
    ``data.stage_one_max_rows`` of them. Returns the faces,
    at ``data.image_size_px``, and the split rows they belong to, in the same order."""
    chosen = kept
    if cfg.stage_one_sources:
        chosen = kept[np.isin(all_sources[kept], list(cfg.stage_one_sources))]
        missing = sorted(set(cfg.stage_one_sources) - set(all_sources[chosen].tolist()))
        if len(chosen) == 0:
            raise DatasetError(
                f"split {split!r} of {root} has no rows of data.stage_one_sources "
                f"{list(cfg.stage_one_sources)} for pairs (b); sources there: "
                f"{sorted(set(all_sources[kept].tolist()))}."
            )
        if missing:
            log.warning("%s split: no rows of stage_one_sources %s", split, missing)
    if 0 < cfg.stage_one_max_rows < len(chosen):
        # evenly spread, so every source and style of the chosen rows keeps its share
        spread = np.linspace(0, len(chosen) - 1, cfg.stage_one_max_rows).round().astype(int)
        chosen = chosen[np.unique(spread)]
    faces = stage_one_faces(
        root,
        split,
        [split_ids[r] for r in chosen],
        split_sketches,
        cfg.stage_one_checkpoint,
        rows=chosen,
    )
    if cfg.image_size_px != faces.shape[1]:
        faces = resize_stack(np.asarray(faces), cfg.image_size_px)
    log.info(
        "%s split: pairs (b) can be drawn for %d of %d rows (sources %s); the others are always "
        "pairs (a)",
        split,
        len(chosen),
        len(kept),
        list(cfg.stage_one_sources) or "all",
    )
    return faces, chosen


def stage_one_faces(
    root: Path,
    split: str,
    ids: Sequence[str],
    sketches_u8: np.ndarray,
    checkpoint: str = "",
    *,
    rows: np.ndarray | None = None,
    batch_size: int = 16,
    chunk_rows: int = 512,
) -> np.ndarray:
    """Stage one's 256x256 faces of ``sketches_u8[rows]`` (every row when ``rows`` is None), the
    rows ``ids`` of ``split``, computed once and cached in ``<dataset>/cache/stage_one/`` per
    model file and row list; returned memory-mapped.

    ``sketches_u8`` may be the split's memory map: the rows are read ``chunk_rows`` at a time and
    the faces written straight into the cache file, so neither is ever held whole in memory.
    """
    import hashlib

    from sketch2face.pipeline import Sketch2Face, resolve_checkpoint
    from sketch2face.refine.base import NoRefiner

    picked = np.arange(len(sketches_u8)) if rows is None else np.asarray(rows)
    if len(picked) != len(ids):
        raise ValueError(f"{len(ids)} ids for {len(picked)} sketches")
    shape = (len(picked), *sketches_u8.shape[1:])
    model = resolve_checkpoint(checkpoint or None)
    rows_key = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
    cache = root / "cache" / "stage_one" / f"{split}_{file_sha256(model)[:12]}_{rows_key}.npy"
    if cache.is_file():
        faces = np.load(cache, mmap_mode="r")
        if faces.shape == shape:
            return faces
    pipe = Sketch2Face.from_pretrained(model, refiner=NoRefiner())
    log.info(
        "%s split: stage one's faces of %d sketches (%s), cached in %s",
        split,
        len(picked),
        model,
        cache,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    # written under another name and renamed when complete: an interrupted run leaves no cache
    partial = cache.with_name(cache.stem + ".partial.npy")
    faces = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
    with tqdm(total=len(picked), desc=f"stage one ({split})", unit="face") as bar:
        for start in range(0, len(picked), chunk_rows):
            chunk = picked[start : start + chunk_rows]
            sketches = list(np.asarray(sketches_u8[chunk]))
            out = pipe(sketches, prepared=True, refine=False, batch_size=batch_size).faces
            faces[start : start + len(chunk)] = np.stack(out)
            bar.update(len(chunk))
    faces.flush()
    del faces
    partial.replace(cache)
    return np.load(cache, mmap_mode="r")


def _as_tensor(images_u8: np.ndarray) -> torch.Tensor:
    """A uint8 tensor over ``images_u8`` without a copy (a read-only memory map included: the
    trainer only ever reads the images, so torch's warning about non-writable arrays is moot)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(images_u8)
