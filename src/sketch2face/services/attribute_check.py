"""Does a generated face show what was asked for? (issue 23 item 2)

A label under a face must not claim what the face does not show. For every attribute asked of the
model, the face is measured:

- **skin tone**: the median colour of the cheek patches (:func:`sketch2face.attributes.skin_colours`)
  is placed on the six-step scale; the tone is *shown* when the nearest step is the requested one
  or its neighbour and the colour is within 70 sRGB units of the request (a request "dark" on a
  light face, or red blotches on one, is not shown);
- **hair colour**: the median colour of the band above the forehead
  (:func:`sketch2face.attributes.hair_colours`), nearest of the seven swatches, the requested one
  or its neighbour in :data:`HAIR_COLOURS`' order, within the same distance;
- **gender**: the offline gender head on dlib descriptors (:mod:`sketch2face.evaluation.gender`,
  landmarks placed in the whole crop where dlib finds no face).

The result per attribute is ``{"value": requested, "shown": bool | None, "seen": measured}``
(``shown`` None: could not be measured). Its agreement with the FS2K labels on real photos is in
docs/cases.md (``python -m sketch2face.services.attribute_check --fs2k DATASET``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sketch2face.attributes import (
    GENDERS,
    HAIR_COLOURS,
    SKIN_TONES,
    FaceAttributes,
    hair_colours,
    skin_colours,
)

log = logging.getLogger(__name__)

SHOWN = "shown"
NOT_SHOWN = "asked for, not shown"
NOT_CHECKED = "not checked"
#: how far (Euclidean sRGB, 0-255) a region's colour may be from the requested one and still show it
MAX_COLOUR_DISTANCE = 70.0


def _nearest(rgb: np.ndarray, palette: Mapping[str, tuple[int, int, int]]) -> int:
    colours = np.asarray(list(palette.values()), dtype=np.float64)
    return int(np.argmin(np.linalg.norm(colours - np.asarray(rgb, np.float64), axis=1)))


def _requested_index(name: str, value: str, palette: Mapping[str, tuple[int, int, int]]) -> int:
    if value in palette:
        return list(palette).index(value)
    parsed = FaceAttributes.from_request({name: value})
    rgb = parsed.skin_rgb if name == "skin" else parsed.hair_rgb
    return _nearest(np.asarray(rgb, np.float64), palette)


def colour_verdict(name: str, value: str, measured_rgb: np.ndarray) -> dict[str, Any]:
    """Whether a measured region colour shows the requested skin tone or hair colour: its nearest
    step is the requested one or a neighbour, and it lies within :data:`MAX_COLOUR_DISTANCE` of
    the requested colour (red blotches are nearest "brown" but nowhere near "dark")."""
    palette = SKIN_TONES if name == "skin" else HAIR_COLOURS
    measured = np.asarray(measured_rgb, np.float64)
    seen = _nearest(measured, palette)
    wanted = _requested_index(name, value, palette)
    target = list(palette.values())[wanted]
    if value.startswith("#"):
        parsed = FaceAttributes.from_request({name: value})
        target = parsed.skin_rgb if name == "skin" else parsed.hair_rgb
    near = float(np.linalg.norm(measured - np.asarray(target, np.float64))) <= MAX_COLOUR_DISTANCE
    return {"value": value, "shown": abs(seen - wanted) <= 1 and near, "seen": list(palette)[seen]}


def gender_seen(faces_u8: Sequence[np.ndarray]) -> list[str | None]:
    """'female' / 'male' per face from the dlib gender head (None where it gives no verdict)."""
    from sketch2face.evaluation.gender import predict_gender

    labels = predict_gender(np.stack(faces_u8), whole_image_fallback=True, device="cpu").labels
    return [None if v < 0 else ("female" if v == 1 else "male") for v in labels]


#: faces are measured at stage one's size (a refined face may be 512 px: GFPGAN's)
CHECK_SIZE_PX = 256


def _at_check_size(face_u8: np.ndarray) -> np.ndarray:
    """``face_u8`` at CHECK_SIZE_PX x CHECK_SIZE_PX (area filter down, bicubic up)."""
    if face_u8.shape[:2] == (CHECK_SIZE_PX, CHECK_SIZE_PX):
        return face_u8
    import cv2

    interp = cv2.INTER_AREA if face_u8.shape[0] > CHECK_SIZE_PX else cv2.INTER_CUBIC
    return cv2.resize(face_u8, (CHECK_SIZE_PX, CHECK_SIZE_PX), interpolation=interp)


def check_faces(
    faces_u8: Sequence[np.ndarray], requested: Sequence[Mapping[str, Any]]
) -> list[dict[str, dict[str, Any]]]:
    """Per face, a verdict for each attribute requested of it (empty dict: nothing requested).
    Faces of any size (256 stage-one and refined faces, GFPGAN's 512) are measured at 256 px.
    A failing measurement (e.g. missing gender head) leaves ``shown`` None, never a claim."""
    if len(faces_u8) != len(requested):
        raise ValueError(f"{len(requested)} requests for {len(faces_u8)} faces")
    out: list[dict[str, dict[str, Any]]] = [{} for _ in faces_u8]
    if not faces_u8:
        return out
    faces = np.stack([_at_check_size(np.asarray(f)) for f in faces_u8])
    skins, hairs = skin_colours(faces), hair_colours(faces)
    genders: list[str | None] = [None] * len(faces)
    if any(r.get("gender") in GENDERS for r in requested):
        try:
            genders = gender_seen(list(faces))
        except Exception:  # noqa: BLE001 - a missing head must not fail a generation
            log.exception("gender check failed; the gender labels say 'not checked'")
    for i, wanted in enumerate(requested):
        for name, measured in (("skin", skins[i]), ("hair_color", hairs[i])):
            value = str(wanted.get(name) or "")
            if value:
                try:
                    out[i][name] = colour_verdict(name, value, measured)
                except ValueError:
                    out[i][name] = {"value": value, "shown": None, "seen": None}
        gender = wanted.get("gender")
        if gender in GENDERS:
            seen = genders[i]
            out[i]["gender"] = {
                "value": gender,
                "shown": None if seen is None else seen == gender,
                "seen": seen,
            }
    return out


def verdict_text(verdict: Mapping[str, Any] | None) -> str:
    """'shown', 'asked for, not shown' or 'not checked'."""
    if not verdict or verdict.get("shown") is None:
        return NOT_CHECKED
    return SHOWN if verdict["shown"] else NOT_SHOWN


# FS2K's hair_color label (0 brown, 1 black, 2 red, 3 no hair, 4 golden) as our swatches
FS2K_HAIR = {0: "brown", 1: "black", 2: "auburn", 4: "blonde"}


def fs2k_agreement(dataset: str, split: str = "test", limit: int | None = None) -> dict[str, Any]:
    """How often the check agrees with FS2K's labels on the real (prepared) photos of a split:
    the labelled value judged shown (should be high) and another value judged shown (low)."""
    import json
    from pathlib import Path

    from sketch2face.imaging import load_image

    root = Path(dataset)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == split and r["source"] == "fs2k"][:limit]
    photos = [load_image(root / r["photo"]) for r in rows]
    hair_rows = [i for i, r in enumerate(rows) if r["attributes"].get("hair_color") in FS2K_HAIR]
    own = [{"hair_color": FS2K_HAIR[rows[i]["attributes"]["hair_color"]]} for i in hair_rows]
    other = [{"hair_color": "white" if o["hair_color"] != "blonde" else "black"} for o in own]
    hair_own = check_faces([photos[i] for i in hair_rows], own)
    hair_other = check_faces([photos[i] for i in hair_rows], other)
    gender_rows = [i for i, r in enumerate(rows) if r["attributes"].get("gender") in (0, 1)]
    seen = gender_seen([photos[i] for i in gender_rows])
    truth = ["female" if rows[i]["attributes"]["gender"] == 1 else "male" for i in gender_rows]
    return {
        "photos": len(rows),
        "hair_labelled": len(hair_rows),
        "hair_own_label_shown": float(np.mean([v["hair_color"]["shown"] for v in hair_own])),
        "hair_far_colour_shown": float(np.mean([v["hair_color"]["shown"] for v in hair_other])),
        "gender_labelled": len(gender_rows),
        "gender_agreement": float(np.mean([s == t for s, t in zip(seen, truth)])),
        "gender_no_verdict": float(np.mean([s is None for s in seen])),
    }


if __name__ == "__main__":  # pragma: no cover - the docs figure
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fs2k", required=True, help="a prepared dataset with FS2K rows")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    print(json.dumps(fs2k_agreement(args.fs2k, args.split, args.limit), indent=2))
