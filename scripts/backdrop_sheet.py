"""Write a sheet of faces put on the plain studio backdrop (issue 22 item 3), to look at.

One row per FS2K sketch/photo pair of ``../shared/data/fixtures/fs2k_test`` (prepared to 256 with
the project's own ``build_pair``, as in training): sketch | face | face on the studio backdrop,
the real photo standing in for the generated face. ``--stage-one`` adds two columns made with the
packaged stage-one model: its face | that face on the backdrop (the real use: rainbow smears and
frame lines replaced). Each backdrop tile is labelled with the cue its head mask came from.

    .venv/bin/python scripts/backdrop_sheet.py                      # docs/images/studio_backdrop_sheet.jpg
    .venv/bin/python scripts/backdrop_sheet.py --stage-one --out /tmp/sheet.jpg
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURES = REPO.parent / "shared" / "data" / "fixtures" / "fs2k_test"
DEFAULT_OUT = REPO / "docs" / "images" / "studio_backdrop_sheet.jpg"
HEADER_PX = 22


def load_pairs(folder: Path, limit: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, sketch_u8, photo_u8) of up to ``limit`` FS2K pairs, prepared like training data."""
    from sketch2face.data.align import default_cropper
    from sketch2face.data.prepare import WorkItem, build_pair

    pairs = []
    for photo in sorted(folder.glob("*_photo*_image*.jpg")):
        sketch = folder / photo.name.replace("photo", "sketch").replace("image", "sketch")
        if not sketch.is_file():
            continue
        item = WorkItem(photo.stem, "fs2k", "artist", "test", photo, sketch)
        sketch_u8, photo_u8, _ = build_pair(item, default_cropper())
        pairs.append((photo.stem, sketch_u8, photo_u8))
        if len(pairs) == limit:
            break
    return pairs


def stage_one_faces(sketches: list[np.ndarray]) -> list[np.ndarray]:
    """Stage-one faces of prepared sketches from the packaged model (seed 0)."""
    from sketch2face.pipeline import Sketch2Face

    model = Sketch2Face.from_pretrained(device="cpu")
    return list(model(sketches, prepared=True, seed=0).faces)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile under a white header strip with ``text``."""
    header = np.full((HEADER_PX, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(header, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (40, 40, 40), 1, cv2.LINE_AA)
    return np.concatenate([header, tile], axis=0)


def build_sheet(
    pairs: list[tuple[str, np.ndarray, np.ndarray]], stage_one: list[np.ndarray] | None
) -> tuple[np.ndarray, list[float]]:
    """The sheet (RGB) and the CPU time of each ``studio_backdrop`` call in ms."""
    from sketch2face.refine.backdrop import head_mask, studio_backdrop

    rows, times = [], []
    for k, (name, sketch_u8, photo_u8) in enumerate(pairs):
        faces = [("photo", photo_u8)]
        if stage_one is not None:
            faces.append(("stage one", stage_one[k]))
        tiles = [label(sketch_u8, name.split("_", 1)[0] + " sketch")]
        for what, face in faces:
            start = time.process_time()  # CPU time: a training run may share the machine
            out = studio_backdrop(face, sketch_u8)
            times.append((time.process_time() - start) * 1e3)
            source = head_mask(face, sketch_u8).source
            tiles += [label(face, what), label(out, f"{what} on studio ({source})")]
        gap = np.full((HEADER_PX + 256, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1))
    return np.concatenate(rows, axis=0), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--limit", type=int, default=6, help="at most this many pairs")
    parser.add_argument("--stage-one", action="store_true", help="add the stage-one columns")
    args = parser.parse_args(argv)
    if not args.fixtures.is_dir():
        print(f"no FS2K fixtures at {args.fixtures}", file=sys.stderr)
        return 2
    pairs = load_pairs(args.fixtures, args.limit)
    if not pairs:
        print(f"no sketch/photo pairs in {args.fixtures}", file=sys.stderr)
        return 2
    stage_one = stage_one_faces([p[1] for p in pairs]) if args.stage_one else None
    sheet, times = build_sheet(pairs, stage_one)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    print(
        f"wrote {args.out} ({len(pairs)} rows); studio_backdrop median "
        f"{np.median(times[1:] or times):.1f} CPU ms (the first call loads dlib: {times[0]:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
