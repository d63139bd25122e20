"""Pseudo gender labels for prepared photos that have none (CelebA), from the offline gender head.

Most training pairs are CelebA photos without a gender label, so the generator saw the gender
condition on few rows and learnt to mostly ignore it. ``label_missing_genders`` classifies those
photos with :mod:`sketch2face.evaluation.gender` (on the landmarks cached by ``prepare``) and keeps
only confident predictions in ``<dataset>/cache/gender_pseudo.json``; ``load_pairs`` uses them where
the manifest has no gender. Labels follow FS2K: 1 female, 0 male.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sketch2face.data.dataset import CACHE_DIR
from sketch2face.data.manifest import MANIFEST_NAME, file_sha256, read_manifest
from sketch2face.errors import DatasetError

logger = logging.getLogger(__name__)

PSEUDO_GENDER_NAME = "gender_pseudo.json"
PSEUDO_GENDER_FORMAT = "sketch2face-gender-pseudo-v1"
#: keep a label only when the head is at least this sure (p_female >= c or <= 1 - c)
DEFAULT_CONFIDENCE = 0.9


def pseudo_gender_path(dataset_dir: str | os.PathLike) -> Path:
    """Where a dataset's pseudo gender labels live."""
    return Path(dataset_dir) / CACHE_DIR / PSEUDO_GENDER_NAME


@dataclass
class PseudoGenderReport:
    """What ``label_missing_genders`` did."""

    path: str
    confidence: float
    unlabelled: int = 0  # rows of the splits without a manifest gender
    no_face: int = 0  # of those, photos without cached landmarks (not classified)
    female: int = 0  # confident labels kept
    male: int = 0
    uncertain: int = 0  # classified but below the confidence, not kept
    per_split: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def kept(self) -> int:
        """Confident labels written."""
        return self.female + self.male

    def summary(self) -> str:
        """One readable paragraph."""
        classified = self.unlabelled - self.no_face
        return (
            f"{self.unlabelled} photos without a gender label; {self.no_face} without landmarks; "
            f"{self.kept} of {classified} classified kept at confidence {self.confidence:g} "
            f"({self.female} female, {self.male} male; {self.uncertain} uncertain) in "
            f"{self.seconds:.0f} s -> {self.path}"
        )


def label_missing_genders(
    dataset_dir: str | os.PathLike,
    *,
    splits: Sequence[str] = ("train", "val"),
    confidence: float = DEFAULT_CONFIDENCE,
    head_path: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
) -> PseudoGenderReport:
    """Classify every photo of ``splits`` that lacks a manifest gender and write the confident ones.

    The test split is never labelled (nothing trains on it). Overwrites an earlier file.
    """
    from sketch2face.evaluation.gender import ASSET_PATH, load_gender_head, split_descriptors

    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} must be in (0.5, 1)")
    if "test" in splits:
        raise DatasetError("pseudo labels are for training; leave the test split out.")
    root = Path(dataset_dir)
    head = load_gender_head(head_path or ASSET_PATH)
    started = time.perf_counter()
    rows = read_manifest(root / MANIFEST_NAME)
    path = pseudo_gender_path(root)
    report = PseudoGenderReport(path=str(path), confidence=confidence)
    labels: dict[str, dict[str, Any]] = {}
    for split in splits:
        ids = [r.id for r in rows if r.split == split and r.attributes.get("gender") not in (0, 1)]
        p = head.p_female(split_descriptors(root, split, ids, device=device, progress=progress))
        counts = {"unlabelled": len(ids), "no_face": 0, "female": 0, "male": 0, "uncertain": 0}
        for row_id, prob in zip(ids, p):
            if prob != prob:  # NaN: no landmarks
                counts["no_face"] += 1
            elif prob >= confidence:
                labels[row_id] = {"gender": 1, "p": round(float(prob), 4)}
                counts["female"] += 1
            elif prob <= 1.0 - confidence:
                labels[row_id] = {"gender": 0, "p": round(float(prob), 4)}
                counts["male"] += 1
            else:
                counts["uncertain"] += 1
        report.per_split[split] = counts
        for key in ("unlabelled", "no_face", "female", "male", "uncertain"):
            setattr(report, key, getattr(report, key) + counts[key])
    report.seconds = round(time.perf_counter() - started, 1)
    document = {
        "format": PSEUDO_GENDER_FORMAT,
        "labels_convention": "gender 1 female, 0 male (FS2K); p = probability of female",
        "manifest_sha256": file_sha256(root / MANIFEST_NAME),
        "head": {k: head.meta.get(k) for k in ("fitted_at", "val", "l2")},
        "created_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "report": {k: v for k, v in asdict(report).items() if k != "path"},
        "labels": labels,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(_dump(document), encoding="utf-8")
    os.replace(tmp, path)
    logger.info("pseudo gender labels: %s", report.summary())
    return report


def _dump(document: dict[str, Any]) -> str:
    """Indented JSON with one line per label (thousands of labels stay readable and diffable)."""
    head = json.dumps({k: v for k, v in document.items() if k != "labels"}, indent=1)
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in document["labels"].items()]
    return head[:-2] + ',\n "labels": {\n' + ",\n".join(lines) + "\n }\n}\n"


def load_pseudo_genders(dataset_dir: str | os.PathLike) -> dict[str, int] | None:
    """id -> 0/1 (FS2K convention) from the dataset's pseudo-label file; None when there is none.

    A damaged file is an error rather than silently training without the labels.
    """
    path = pseudo_gender_path(dataset_dir)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != PSEUDO_GENDER_FORMAT:
            raise ValueError(
                f"format {document.get('format')!r}, expected {PSEUDO_GENDER_FORMAT!r}"
            )
        labels = {str(k): int(v["gender"]) for k, v in document["labels"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(
            f"{path} is damaged ({exc}); delete it or rebuild it with "
            f"`sketch2face gender label --dataset {dataset_dir}`."
        ) from exc
    bad = sorted(k for k, v in labels.items() if v not in (0, 1))
    if bad:
        raise DatasetError(f"{path}: genders other than 0/1 for {bad[:3]}; rebuild it.")
    return labels
