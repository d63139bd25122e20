"""Write a sheet comparing stage one's faces with photos degraded to look like them (issue 22).

The refiner's pairs (a) are real photos degraded by ``refine/degrade.py``; they teach it only what
they show, so the degradation must look like what stage one really leaves. One row per FS2K val
pair of a prepared dataset (evenly spaced, so every artist style shows): sketch | stage one's face
(the packaged model, no refiner) | the photo degraded with the first overlay's line settings (same
distribution as before, not the same pixels) | degraded with today's ``DegradeConfig()`` (same
seed) | the photo. Each tile is
labelled with its stroke darkness (:func:`stroke_darkness`: how much darker it is on the sketch's
black strokes, away from the photo's own edges, than around them: the leftover pencil lines), so
the two can be compared in numbers too.

    .venv/bin/python scripts/refiner_degrade_sheet.py     # docs/images/refiner_degrade_vs_stage_one.jpg
    .venv/bin/python scripts/refiner_degrade_sheet.py --dataset datasets/fs2k --rows 8 --out /tmp/s.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO / "datasets" / "fs2k"
DEFAULT_OUT = REPO / "docs" / "images" / "refiner_degrade_vs_stage_one.jpg"
HEADER_PX = 22
#: the line settings of the first refiner run (session 9), everything else as today
FIRST_OVERLAY = {
    "p_lines": 0.8,
    "line_alpha": (0.25, 0.85),
    "line_gamma": 1.0,
    "line_blur": (0.4, 1.2),
    "line_keep": 0.6,
    "line_halo": (0.0, 0.0),
}


def stroke_darkness(image_u8: np.ndarray, sketch_u8: np.ndarray, photo_u8: np.ndarray) -> float:
    """How much darker ``image_u8`` is on the sketch's black strokes than its 15-px median, inside
    the face ellipse and away from the photo's own edges: the lines stage one leaves (or the
    overlay draws) where the real face has none. Grey levels; the photo itself scores about 0."""
    luma = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32)  # noqa: E731
    size = image_u8.shape[0]
    ellipse = np.zeros((size, size), np.uint8)
    cv2.ellipse(
        ellipse,
        (size // 2, size * 9 // 16),
        (size * 45 // 128, size * 115 // 256),
        0,
        0,
        360,
        1,
        -1,
    )
    smooth = cv2.GaussianBlur(luma(photo_u8), (0, 0), 1.5)
    gradient = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    edges = cv2.dilate((gradient > 40).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    strokes = (luma(sketch_u8) < 110) & (ellipse > 0) & ~edges
    if not strokes.any():
        return 0.0
    darker = luma(cv2.medianBlur(image_u8, 15)) - luma(image_u8)
    return float(darker[strokes].mean())


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile under a white header strip with ``text``."""
    header = np.full((HEADER_PX, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(header, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (40, 40, 40), 1, cv2.LINE_AA)
    return np.concatenate([header, tile], axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--split", default="val")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    from sketch2face.data.dataset import load_split_u8
    from sketch2face.data.manifest import MANIFEST_NAME, read_manifest
    from sketch2face.pipeline import Sketch2Face
    from sketch2face.refine.base import NoRefiner
    from sketch2face.refine.degrade import degrade_like_stage_one

    if not (args.dataset / MANIFEST_NAME).is_file():
        print(
            f"no prepared dataset at {args.dataset} (sketch2face prepare --fs2k ...)",
            file=sys.stderr,
        )
        return 2
    arrays = load_split_u8(args.dataset, args.split)
    sources = {r.id: r.source for r in read_manifest(args.dataset / MANIFEST_NAME)}
    fs2k = [i for i, row_id in enumerate(arrays.ids) if sources[row_id] == "fs2k"]
    picked = [fs2k[int(k)] for k in np.linspace(0, len(fs2k) - 1, min(args.rows, len(fs2k)))]
    sketches = [np.asarray(arrays.sketches[i]) for i in picked]
    photos = [np.asarray(arrays.photos[i]) for i in picked]
    pipe = Sketch2Face.from_pretrained(device="cpu", refiner=NoRefiner())
    faces = pipe(sketches, prepared=True, refine=False).faces
    from sketch2face.refine.degrade import DegradeConfig

    configs = {"first overlay": DegradeConfig(**FIRST_OVERLAY), "now": DegradeConfig()}
    rows: list[np.ndarray] = []
    scores: dict[str, list[float]] = {"stage one": [], **{k: [] for k in configs}, "photo": []}
    for k, (sketch, face, photo) in enumerate(zip(sketches, faces, photos)):
        degraded = [
            (what, degrade_like_stage_one(photo, sketch, np.random.default_rng(1000 + k), cfg))
            for what, cfg in configs.items()
        ]
        tiles = [label(sketch, arrays.ids[picked[k]])]
        named = [("stage one", face), *degraded, ("photo", photo)]
        for what, image in named:
            score = stroke_darkness(image, sketch, photo)
            scores[what].append(score)
            tiles.append(label(image, f"{what}: strokes {score:.1f}"))
        gap = np.full((HEADER_PX + 256, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1))
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80]
    )
    print(f"wrote {args.out} ({len(rows)} rows); stroke darkness off the photo's edges (levels):")
    for what, values in scores.items():
        print(f"  {what:13s} mean {np.mean(values):5.1f}  per tile {np.round(values, 1).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
