"""Does the model follow the witness? Colour shift of generated skin and hair per requested attribute.

For each prepared test pair (256x256, aligned as in training) the sketch is generated
(a) with no attributes, (b) with the attributes measured on its real photo, and (c) with each
requested skin tone / hair colour. Skin and hair colours of the outputs are measured in the same
regions used for training (:mod:`sketch2face.attributes`). Reported per request: the mean generated
colour, its RGB distance to the requested colour, and the same distance for the unconditioned
output: a model that follows the request has a much smaller distance with it than without it.

Gender: each sketch is also generated with gender=male and gender=female, and the offline gender
classifier (:mod:`sketch2face.evaluation.gender`) reports the share of outputs seen as the requested
gender, next to its baselines: the classifier's accuracy on the pairs' real photos (its ceiling
here) and the shares seen as male / female with no request. That dlib head is also a training loss,
so its verdict on generated faces is optimistic; a second, independent classifier on the crop's
pixels (:mod:`sketch2face.evaluation.gender_pixels`, keys ending in ``_pixels``) reports the same
figures beside it, with the share of faces on which the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sketch2face.attributes import HAIR_COLOURS, SKIN_TONES, hair_colours, skin_colours
from sketch2face.evaluation.metrics import ssim
from sketch2face.imaging import load_image, make_grid, save_png

SKIN_REQUESTS = ("very-light", "medium", "dark")
HAIR_REQUESTS = ("black", "blonde", "auburn")


@dataclass
class AttributeControlReport:
    """Colour-shift table and SSIM with true vs no attributes."""

    count: int
    ssim_no_attributes: float
    ssim_true_attributes: float
    skin_error_no_attributes: float  # RGB distance of generated to real skin colour
    skin_error_true_attributes: float
    hair_error_no_attributes: float
    hair_error_true_attributes: float
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: classifier baselines: accuracy on the real photos, shares seen as male/female unconditioned
    gender_baseline: dict[str, Any] | None = None
    #: per gender request: share of outputs seen as the requested gender (and breakdowns)
    gender_requests: list[dict[str, Any]] = field(default_factory=list)
    #: per labelled gender ("male", "female"): the share of that gender's sketches whose face is
    #: seen as that gender, with no request and with the matching request (dlib and pixel heads)
    gender_by_label: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self) -> str:
        """Readable summary."""
        lines = [
            f"pairs: {self.count}",
            f"SSIM   no attributes {self.ssim_no_attributes:.4f} | true attributes {self.ssim_true_attributes:.4f}",
            f"skin RGB error to the real photo: none {self.skin_error_no_attributes:.1f} | true {self.skin_error_true_attributes:.1f}",
            f"hair RGB error to the real photo: none {self.hair_error_no_attributes:.1f} | true {self.hair_error_true_attributes:.1f}",
            "",
            f"{'request':<20} {'generated mean RGB':<22} {'dist to target':>14} {'dist w/o request':>17} {'moved':>7}",
        ]
        for r in self.requests:
            rgb = ",".join(f"{v:.0f}" for v in r["generated_rgb"])
            lines.append(
                f"{r['kind'] + '=' + r['value']:<20} {rgb:<22} {r['distance']:>14.1f} {r['distance_unconditioned']:>17.1f} {r['moved_fraction']:>7.0%}"
            )
        if self.gender_baseline is not None:
            lines += ["", *_gender_lines(self.gender_baseline, self.gender_requests)]
        for value, f in self.gender_by_label.items():
            lines.append(
                f"  {value} sketches ({f['n']} labelled): face seen as {value} with no request "
                f"{_pair(f['unconditioned'], f['unconditioned_pixels'])}, with gender={value} "
                f"{_pair(f['requested'], f['requested_pixels'])}"
            )
        return "\n".join(lines)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _pair(dlib: float | None, pixels: float | None) -> str:
    return f"{_share(dlib)} | {_share(pixels)}"


def _gender_lines(base: dict[str, Any], requests: list[dict[str, Any]]) -> list[str]:
    # every share is "dlib head | pixel head" (reports from before the pixel head show n/a)
    val = base.get("classifier_val_accuracy")
    val_px = base.get("pixel_classifier_val_accuracy")
    lines = [
        "gender, each share as 'dlib | pixels':",
        f"  dlib = dlib descriptor + linear head (val accuracy {_share(val)}; also a training loss, "
        "so optimistic on generated faces)",
        f"  pixels = HOG of the crop + linear head (val accuracy {_share(val_px)}; independent of dlib)",
        f"  classifier on the real photos: accuracy {_pair(base['real_accuracy'], base.get('real_accuracy_pixels'))} "
        f"({base['real_labelled']} labelled), dlib faces found {_share(base['real_faces_found'])}, "
        f"classifiers agree {_share(base.get('real_agreement_pixels'))}",
        f"  no request: seen as male {_pair(base['unconditioned_seen_as_male'], base.get('unconditioned_seen_as_male_pixels'))}"
        f", female {_pair(base['unconditioned_seen_as_female'], base.get('unconditioned_seen_as_female_pixels'))}, "
        f"dlib faces found {_share(base['unconditioned_faces_found'])}, classifiers agree "
        f"{_share(base.get('unconditioned_agreement_pixels'))}",
        f"{'request':<15} {'seen as requested':>17} {'w/o request':>12} {'other-gender photo':>18} "
        f"{'its w/o request':>15} {'n':>4} {'agree':>6} {'faces found':>12}",
    ]
    for r in requests:
        lines.append(
            f"{'gender=' + r['value']:<15} "
            f"{_pair(r['seen_as_requested'], r.get('seen_as_requested_pixels')):>17} "
            f"{_pair(r['seen_as_requested_unconditioned'], r.get('seen_as_requested_unconditioned_pixels')):>12} "
            f"{_pair(r['seen_as_requested_real_other'], r.get('seen_as_requested_real_other_pixels')):>18} "
            f"{_pair(r['seen_as_requested_real_other_unconditioned'], r.get('seen_as_requested_real_other_unconditioned_pixels')):>15} "
            f"{r['real_other']:>4} {_share(r.get('agreement_pixels')):>6} {_share(r['faces_found']):>12}"
        )
    lines.append(
        "  (other-gender photo: the n pairs whose real photo is not the requested gender, seen as "
        "requested with the request, and without it; agree: share of outputs both classifiers "
        "label alike; faces found: by dlib's detector)"
    )
    return lines


def _rgb_hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{int(round(v)):02x}" for v in np.clip(rgb, 0, 255))


def measure_attribute_control(
    pipeline: Any,
    pairs: list[tuple[Path, Path]],
    *,
    sheet_path: str | Path | None = None,
    progress: bool = True,
    genders: Sequence[int | None] | None = None,
    measure_gender: bool = True,
) -> AttributeControlReport:
    """Run the measurement on prepared (sketch, photo) pairs; optionally write a sheet PNG.

    ``genders``: the pairs' true labels (FS2K: 1 female, 0 male, None unknown) for the classifier's
    accuracy on the real photos. ``measure_gender`` needs the shipped gender heads (dlib and
    pixels).
    """
    if genders is not None and len(genders) != len(pairs):
        raise ValueError(f"{len(genders)} gender labels for {len(pairs)} pairs")
    # both gender heads are loaded first: a missing asset fails now, not after minutes of generating
    heads = _load_gender_heads() if measure_gender else None
    sketches = [load_image(s) for s, _ in pairs]
    photos = np.stack([load_image(p) for _, p in pairs])
    real_skin, real_hair = skin_colours(photos), hair_colours(photos)
    base = pipeline(sketches, prepared=True).faces
    true = [
        pipeline(
            [sk],
            prepared=True,
            attributes={"skin": _rgb_hex(real_skin[i]), "hair_color": _rgb_hex(real_hair[i])},
        ).faces[0]
        for i, sk in enumerate(tqdm(sketches, desc="true attributes", disable=not progress))
    ]
    base_np, true_np = np.stack(base), np.stack(true)
    report = AttributeControlReport(
        count=len(pairs),
        ssim_no_attributes=float(np.mean([ssim(a, b) for a, b in zip(base, photos)])),
        ssim_true_attributes=float(np.mean([ssim(a, b) for a, b in zip(true, photos)])),
        skin_error_no_attributes=float(
            np.linalg.norm(skin_colours(base_np) - real_skin, axis=1).mean()
        ),
        skin_error_true_attributes=float(
            np.linalg.norm(skin_colours(true_np) - real_skin, axis=1).mean()
        ),
        hair_error_no_attributes=float(
            np.linalg.norm(hair_colours(base_np) - real_hair, axis=1).mean()
        ),
        hair_error_true_attributes=float(
            np.linalg.norm(hair_colours(true_np) - real_hair, axis=1).mean()
        ),
    )
    n_rows = min(3, len(sketches))
    sheet_rows: list[list[np.ndarray]] = [[sketches[i], base[i]] for i in range(n_rows)]
    for kind, values, palette, measure in (
        ("skin", SKIN_REQUESTS, SKIN_TONES, skin_colours),
        ("hair_color", HAIR_REQUESTS, HAIR_COLOURS, hair_colours),
    ):
        base_colour = measure(base_np)
        for value in values:
            target = np.asarray(palette[value], np.float64)
            faces = np.stack(pipeline(sketches, prepared=True, attributes={kind: value}).faces)
            got = measure(faces)
            dist = float(np.linalg.norm(got - target, axis=1).mean())
            dist0 = float(np.linalg.norm(base_colour - target, axis=1).mean())
            report.requests.append(
                {
                    "kind": kind,
                    "value": value,
                    "target_rgb": target.tolist(),
                    "generated_rgb": got.mean(axis=0).tolist(),
                    "distance": dist,
                    "distance_unconditioned": dist0,
                    "moved_fraction": (dist0 - dist) / max(dist0, 1e-6),
                }
            )
            for i in range(n_rows):
                sheet_rows[i].append(faces[i])
    if measure_gender:
        _measure_gender(pipeline, sketches, photos, base_np, genders, report, sheet_rows, heads)
    if sheet_path is not None:
        save_png(make_grid(sheet_rows), sheet_path)
    return report


def _load_gender_heads() -> tuple[Any, Any]:
    """(dlib head, pixel head), each with its clear error when the asset is missing or corrupt."""
    from sketch2face.evaluation.gender import load_gender_head
    from sketch2face.evaluation.gender_pixels import load_pixel_gender_head

    return load_gender_head(), load_pixel_gender_head()


def _mean(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def _measure_gender(
    pipeline: Any,
    sketches: list[np.ndarray],
    photos: np.ndarray,
    base_np: np.ndarray,
    genders: Sequence[int | None] | None,
    report: AttributeControlReport,
    sheet_rows: list[list[np.ndarray]],
    heads: tuple[Any, Any] | None = None,
) -> None:
    """Fill the report's gender rows (and add a male and a female column to the sheet).

    Every figure of the dlib head has a ``*_pixels`` twin from the pixel head, measured on the same
    images, plus the share of images on which the two agree.
    """
    from sketch2face.evaluation.gender import FEMALE, MALE, predict_gender

    head, pixel_head = heads or _load_gender_heads()
    code = {"female": FEMALE, "male": MALE}
    # Generated faces are aligned crops: where dlib finds no face, landmarks are still placed in
    # the whole image (as the identity metrics do) so every output gets a verdict.
    real = predict_gender(photos, head=head, whole_image_fallback=True)
    none = predict_gender(base_np, head=head, whole_image_fallback=True)
    real_px = pixel_head.labels(photos)  # the pixel head gives every crop a verdict
    none_px = pixel_head.labels(base_np)
    truth = np.array([g if g in (0, 1) else -1 for g in (genders or [None] * len(photos))])
    labelled = truth >= 0
    report.gender_baseline = {
        "classifier_val_accuracy": (head.meta.get("val") or {}).get("accuracy"),
        "real_accuracy": float((real.labels[labelled] == truth[labelled]).mean())
        if labelled.any()
        else None,
        "real_labelled": int(labelled.sum()),
        "real_faces_found": float(real.face_found.mean()),
        "real_seen_as_female": float(real.seen_as("female").mean()),
        "unconditioned_seen_as_male": float(none.seen_as("male").mean()),
        "unconditioned_seen_as_female": float(none.seen_as("female").mean()),
        "unconditioned_faces_found": float(none.face_found.mean()),
        "pixel_classifier_val_accuracy": (pixel_head.meta.get("val") or {}).get("accuracy"),
        "real_accuracy_pixels": _mean(real_px[labelled] == truth[labelled])
        if labelled.any()
        else None,
        "real_seen_as_female_pixels": float((real_px == FEMALE).mean()),
        "real_agreement_pixels": float((real_px == real.labels).mean()),
        "unconditioned_seen_as_male_pixels": float((none_px == MALE).mean()),
        "unconditioned_seen_as_female_pixels": float((none_px == FEMALE).mean()),
        "unconditioned_agreement_pixels": float((none_px == none.labels).mean()),
    }
    for value in ("male", "female"):
        faces = np.stack(pipeline(sketches, prepared=True, attributes={"gender": value}).faces)
        got = predict_gender(faces, head=head, whole_image_fallback=True)
        p_px = pixel_head.p_female(faces)
        got_px = (p_px >= 0.5).astype(np.int8)
        hit = got.seen_as(value)
        hit_px = got_px == code[value]
        none_hit_px = none_px == code[value]
        # the hard case: the sketch shows the other gender, so only the request can flip it
        other = labelled & (truth != code[value])
        report.gender_requests.append(
            {
                "kind": "gender",
                "value": value,
                "seen_as_requested": float(hit.mean()),
                "seen_as_requested_unconditioned": float(none.seen_as(value).mean()),
                "seen_as_requested_real_other": float(hit[other].mean()) if other.any() else None,
                "seen_as_requested_real_other_unconditioned": (
                    float(none.seen_as(value)[other].mean()) if other.any() else None
                ),
                "real_other": int(other.sum()),
                "mean_p_female": float(np.nanmean(got.p_female)),
                "faces_found": float(got.face_found.mean()),
                "seen_as_requested_pixels": float(hit_px.mean()),
                "seen_as_requested_unconditioned_pixels": float(none_hit_px.mean()),
                "seen_as_requested_real_other_pixels": _mean(hit_px[other])
                if other.any()
                else None,
                "seen_as_requested_real_other_unconditioned_pixels": (
                    _mean(none_hit_px[other]) if other.any() else None
                ),
                "mean_p_female_pixels": float(p_px.mean()),
                "agreement_pixels": float((got_px == got.labels).mean()),
            }
        )
        same = labelled & (truth == code[value])  # sketches labelled with this gender
        report.gender_by_label[value] = {
            "n": int(same.sum()),
            "unconditioned": _mean(none.seen_as(value)[same]),
            "unconditioned_pixels": _mean(none_hit_px[same]),
            "requested": _mean(hit[same]),
            "requested_pixels": _mean(hit_px[same]),
        }
        for i in range(min(len(sheet_rows), len(faces))):
            sheet_rows[i].append(faces[i])
