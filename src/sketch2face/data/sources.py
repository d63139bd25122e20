"""One adapter per corpus: FS2K, CUHK-style pair folders, plain photo folders -> work items.

Adapters only list files and decide ids, splits and attributes; decoding and cropping happen in
:mod:`sketch2face.data.prepare` (in worker processes).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketch2face.data.manifest import hash_fraction, split_for
from sketch2face.data.sketchify import pick_style
from sketch2face.errors import DatasetError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: CelebA file names: ``<identity>_<celeba id>.jpg``.
CELEBA_NAME = re.compile(r"^(?P<identity>\d+)_(?P<image>\d+)$")
#: Built-in CUHK rule: photo ``f-005-01`` pairs with sketch ``F2-005-01-sz1``.
CUHK_PHOTO = re.compile(r"^(?P<sex>[fm])\d?-(?P<num>\d+)-(?P<idx>\d+)$", re.IGNORECASE)
CUHK_SKETCH = re.compile(r"^(?P<sex>[fm])2-(?P<num>\d+)-(?P<idx>\d+)-sz\d+$", re.IGNORECASE)
DEFAULT_TEST_FRACTION = 0.05


@dataclass(frozen=True)
class WorkItem:
    """One pair to build: a photo and either a drawn sketch file or a style to synthesise."""

    id: str
    source: str
    style: str
    split: str
    photo_path: Path
    sketch_path: Path | None = None  # None: synthesise ``style`` from the photo
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """An input that was left out, and why."""

    path: str
    reason: str
    detail: str = ""


@dataclass
class SourceListing:
    """What an adapter found: the items and the skipped inputs."""

    items: list[WorkItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _require_dir(path: Path, what: str, flag: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} folder {path} does not exist; check the {flag} path.")
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by extension), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _find_by_stem(folder: Path, stem: str) -> Path | None:
    for suffix in (".jpg", ".png", ".jpeg", ".JPG", ".PNG"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def fs2k_items(root: str | Path, *, val_fraction: float = 0.05) -> SourceListing:
    """FS2K: official train/test split (+ a hashed val subset of train) and its attributes."""
    root = _require_dir(Path(root), "FS2K", "--fs2k")
    listing = SourceListing()
    seen: set[str] = set()
    any_anno = False
    for anno_name, official in (("anno_train.json", "train"), ("anno_test.json", "test")):
        anno_path = root / anno_name
        if not anno_path.is_file():
            logger.warning("FS2K: %s missing; its %s pairs are not used", anno_path, official)
            continue
        any_anno = True
        try:
            entries = json.loads(anno_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{anno_path}: cannot read the FS2K annotations ({exc}).") from exc
        for entry in entries:
            name = str(entry.get("image_name", ""))
            match = re.fullmatch(r"photo(\d+)/image(\d+)", name)
            if not match:
                listing.skipped.append(Skipped(f"{anno_path}:{name}", "bad annotation name"))
                continue
            group, number = match.groups()
            item_id = f"fs2k-p{group}-{number}"
            if item_id in seen:
                listing.skipped.append(Skipped(name, "duplicate id", f"{item_id} listed twice"))
                continue
            seen.add(item_id)
            photo = _find_by_stem(root / "photo" / f"photo{group}", f"image{number}")
            sketch = _find_by_stem(root / "sketch" / f"sketch{group}", f"sketch{number}")
            if photo is None or sketch is None:
                missing = "photo" if photo is None else "sketch"
                listing.skipped.append(
                    Skipped(name, "missing pair", f"no {missing} file for {name}")
                )
                continue
            split = official
            if official == "train" and hash_fraction(f"val:{item_id}") < val_fraction:
                split = "val"
            attributes = {k: v for k, v in entry.items() if k != "image_name"}
            listing.items.append(
                WorkItem(
                    id=item_id,
                    source="fs2k",
                    style=f"fs2k_style{entry.get('style', 'x')}",
                    split=split,
                    photo_path=photo,
                    sketch_path=sketch,
                    attributes=attributes,
                )
            )
    if not any_anno:
        raise DatasetError(
            f"{root} has neither anno_train.json nor anno_test.json; point --fs2k at the FS2K root."
        )
    if not listing.items:
        raise DatasetError(
            f"{root}: no FS2K pairs found (expected photo/photoN and sketch/sketchN)."
        )
    return listing


def _pair_key(stem: str, pattern: re.Pattern[str]) -> str | None:
    match = pattern.search(stem)
    if not match:
        return None
    if "key" in pattern.groupindex:
        return match.group("key")
    return "-".join(g.lower() for g in match.groups())


def cuhk_items(
    photo_dir: str | Path,
    sketch_dir: str | Path,
    *,
    pair_pattern: str | None = None,
    source: str = "cuhk",
    val_fraction: float = 0.05,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> SourceListing:
    """Pair a photo folder with a sketch folder by name.

    Args:
        pair_pattern: a regex with a named group ``key``, searched in both file stems; files whose
            keys are equal form a pair. None uses the CUHK rule
            (``f-005-01`` <-> ``F2-005-01-sz1``).
    """
    photo_root = _require_dir(Path(photo_dir), "photo", "--cuhk-photos")
    sketch_root = _require_dir(Path(sketch_dir), "sketch", "--cuhk-sketches")
    if pair_pattern:
        try:
            compiled = re.compile(pair_pattern)
        except re.error as exc:
            raise DatasetError(
                f"--pair-pattern {pair_pattern!r} is not a valid regex ({exc})."
            ) from exc
        if "key" not in compiled.groupindex:
            raise DatasetError(
                f"--pair-pattern {pair_pattern!r} needs a named group `key`, e.g. '(?P<key>\\d+)'."
            )
        photo_pattern = sketch_pattern = compiled
    else:
        photo_pattern, sketch_pattern = CUHK_PHOTO, CUHK_SKETCH
    listing = SourceListing()

    def keyed(folder: Path, pattern: re.Pattern[str], kind: str) -> dict[str, Path]:
        files = list_images(folder)
        if not files:
            raise DatasetError(f"{folder} holds no images; check the {kind} folder path.")
        by_key: dict[str, Path] = {}
        for path in files:
            key = _pair_key(path.stem, pattern)
            if key is None:
                listing.skipped.append(Skipped(str(path), "name does not match pair pattern"))
            elif key in by_key:
                listing.skipped.append(
                    Skipped(str(path), "duplicate id", f"same key {key!r} as {by_key[key].name}")
                )
            else:
                by_key[key] = path
        return by_key

    photos = keyed(photo_root, photo_pattern, "photo")
    sketches = keyed(sketch_root, sketch_pattern, "sketch")
    for key in sorted(set(photos) | set(sketches)):
        if key not in sketches:
            listing.skipped.append(Skipped(str(photos[key]), "missing pair", "no sketch partner"))
            continue
        if key not in photos:
            listing.skipped.append(Skipped(str(sketches[key]), "missing pair", "no photo partner"))
            continue
        safe_key = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
        listing.items.append(
            WorkItem(
                id=f"{source}-{safe_key}",
                source=source,
                style=source,
                split=split_for(
                    f"{source}:{key}", val_fraction=val_fraction, test_fraction=test_fraction
                ),
                photo_path=photos[key],
                sketch_path=sketches[key],
            )
        )
    return listing


def photo_folder_items(
    folder: str | Path,
    *,
    styles: tuple[str, ...] = ("pencil", "line"),
    source: str | None = None,
    val_fraction: float = 0.05,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> SourceListing:
    """Face photos to synthesise sketches from (CelebA, FFHQ, ...), one hashed style per photo.

    CelebA names (``<identity>_<id>``) are split by identity so a person never spans two splits;
    other folders are split per file. The source name is ``celeba`` for CelebA names, else the
    folder name.
    """
    root = _require_dir(Path(folder), "photo", "--photos")
    files = list_images(root)
    if not files:
        raise DatasetError(f"{root} holds no images (.jpg/.png/...); check the --photos path.")
    is_celeba = all(CELEBA_NAME.match(p.stem) for p in files)
    if source is None:
        source = (
            "celeba" if is_celeba else re.sub(r"[^A-Za-z0-9_]+", "_", root.name).lower() or "photos"
        )
    listing = SourceListing()
    for path in files:
        identity = CELEBA_NAME.match(path.stem).group("identity") if is_celeba else path.stem  # type: ignore[union-attr]
        item_id = f"{source}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', path.stem)}"
        attributes: dict[str, Any] = {"identity": identity} if is_celeba else {}
        listing.items.append(
            WorkItem(
                id=item_id,
                source=source,
                style=pick_style(item_id, styles),
                split=split_for(
                    f"{source}:{identity}", val_fraction=val_fraction, test_fraction=test_fraction
                ),
                photo_path=path,
                attributes=attributes,
            )
        )
    return listing
