"""The dataset manifest: one JSON object per (sketch, photo) pair in ``manifest.jsonl``."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sketch2face.errors import DatasetError

MANIFEST_NAME = "manifest.jsonl"
SUMMARY_NAME = "summary.json"
CONTACT_SHEET_NAME = "contact_sheet.png"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ManifestRow:
    """One pair; ``sketch`` and ``photo`` are paths relative to the dataset folder."""

    id: str
    source: str
    style: str
    split: str
    sketch: str
    photo: str
    attributes: dict[str, Any] = field(default_factory=dict)
    face_found: bool = True

    def to_json(self) -> str:
        """One manifest line (no trailing newline)."""
        return json.dumps(asdict(self), sort_keys=False, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestRow:
        """Build a row from a parsed manifest line, checking the required keys."""
        missing = [
            k for k in ("id", "source", "style", "split", "sketch", "photo") if k not in data
        ]
        if missing:
            raise DatasetError(
                f"manifest row {data!r} lacks {missing}; re-run `sketch2face prepare`."
            )
        if data["split"] not in SPLITS:
            raise DatasetError(
                f"manifest row {data['id']!r} has split {data['split']!r}; "
                f"expected one of {SPLITS}."
            )
        return cls(
            id=str(data["id"]),
            source=str(data["source"]),
            style=str(data["style"]),
            split=str(data["split"]),
            sketch=str(data["sketch"]),
            photo=str(data["photo"]),
            attributes=dict(data.get("attributes") or {}),
            face_found=bool(data.get("face_found", True)),
        )


def write_manifest(path: str | os.PathLike, rows: list[ManifestRow]) -> Path:
    """Write rows as JSON lines (sorted by id for stable diffs and hashes)."""
    target = Path(path)
    text = "".join(r.to_json() + "\n" for r in sorted(rows, key=lambda r: r.id))
    target.write_text(text, encoding="utf-8")
    return target


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read ``manifest.jsonl`` (a file, or a dataset folder holding one)."""
    source = Path(path)
    if source.is_dir():
        source = source / MANIFEST_NAME
    if not source.is_file():
        raise DatasetError(
            f"{source}: no manifest found; "
            "build the dataset with `sketch2face prepare --out DIR ...`."
        )
    rows = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(ManifestRow.from_dict(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{source}:{number}: not valid JSON ({exc}); re-run `sketch2face prepare --force`."
            ) from exc
    return rows


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_fraction(key: str) -> float:
    """A stable pseudo-random number in [0, 1) from a string (same on every machine and run)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_for(key: str, *, val_fraction: float, test_fraction: float) -> str:
    """Deterministic train/val/test assignment of a group key (e.g. a person's identity)."""
    u = hash_fraction(f"split:{key}")
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"
