"""Evaluation pairs: (sketch, photo) files matched by file stem, or one split of a prepared
dataset's manifest, with each pair's drawing style (``evaluate`` scores them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketch2face.errors import DatasetError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class StemPairs:
    """(sketch, photo) pairs matched by file stem, plus the unmatched files; iterates as pairs."""

    pairs: list[tuple[Path, Path]]
    unmatched_sketches: list[Path] = field(default_factory=list)
    unmatched_photos: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[tuple[Path, Path]]:
        return iter(self.pairs)

    def __getitem__(self, index: int) -> tuple[Path, Path]:
        return self.pairs[index]


def _images_by_stem(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{role} folder {folder} does not exist or is not a folder.")
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if (
            not path.is_file()
            or path.suffix.lower() not in IMAGE_EXTENSIONS
            or path.name.startswith(".")
        ):
            continue
        if path.stem in by_stem:
            raise DatasetError(
                f"{role} folder {folder} has two images with stem {path.stem!r} "
                f"({by_stem[path.stem].name}, {path.name}); keep one so pairs are unambiguous."
            )
        by_stem[path.stem] = path
    return by_stem


def pair_by_stem(sketch_dir: PathLike, photo_dir: PathLike) -> StemPairs:
    """Pair ``sketch_dir/X.*`` with ``photo_dir/X.*`` (same file stem), sorted by stem.

    Raises DatasetError when a folder is missing, a stem is ambiguous, or nothing pairs up.
    """
    sketches = _images_by_stem(Path(sketch_dir), "sketch")
    photos = _images_by_stem(Path(photo_dir), "photo")
    common = sorted(sketches.keys() & photos.keys())
    if not common:
        raise DatasetError(
            f"no sketch in {sketch_dir} ({len(sketches)} images) has a photo with the same file "
            f"stem in {photo_dir} ({len(photos)} images); name each pair alike "
            "(e.g. 0001.png / 0001.jpg)."
        )
    return StemPairs(
        pairs=[(sketches[s], photos[s]) for s in common],
        unmatched_sketches=[sketches[s] for s in sorted(sketches.keys() - photos.keys())],
        unmatched_photos=[photos[s] for s in sorted(photos.keys() - sketches.keys())],
    )


def _manifest_rows(dataset_dir: PathLike, split: str, source: str | None) -> list[Any]:
    from sketch2face.data.manifest import read_manifest

    root = Path(dataset_dir)
    rows = read_manifest(root)
    picked = [r for r in rows if r.split == split and (source is None or r.source == source)]
    if not picked:
        found = sorted({(r.split, r.source) for r in rows})
        raise DatasetError(
            f"{root}: the manifest has no {split!r} pairs of source {source or 'any'!r} "
            f"(present: {found})."
        )
    return picked


def pairs_from_manifest(
    dataset_dir: PathLike, split: str = "test", source: str | None = None
) -> list[tuple[Path, Path]]:
    """(sketch, photo) absolute paths of one split (optionally one source, e.g. ``fs2k``) of a
    prepared dataset's ``manifest.jsonl``."""
    root = Path(dataset_dir)
    return [(root / r.sketch, root / r.photo) for r in _manifest_rows(root, split, source)]


def styles_from_manifest(
    dataset_dir: PathLike, split: str = "test", source: str | None = None
) -> list[str]:
    """The drawing style of each pair :func:`pairs_from_manifest` returns, in the same order
    (``fs2k_style0..2`` for FS2K's artists, ``pencil``/``line`` for OpenCV sketches)."""
    return [str(r.style) for r in _manifest_rows(dataset_dir, split, source)]
