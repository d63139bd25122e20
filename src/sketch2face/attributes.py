"""Witness-described attributes (skin tone, hair colour, gender) as the generator's condition.

A grey pencil sketch cannot tell skin or hair colour; a witness usually can. The generator takes an
optional 10-float vector injected at its bottleneck (``GeneratorConfig.attribute_dim``):

    [skin_known, skin_r, skin_g, skin_b, hair_known, hair_r, hair_g, hair_b, gender_known, gender]

Colours are sRGB scaled to [-1, 1]; ``gender`` is +1 female, -1 male; an unknown group is all zero
(its ``*_known`` flag 0), which is also what "let the model choose" means at inference. Training
drops each group at random so the unconditioned case stays in distribution.

**Where the training colours come from.** Every prepared photo is a face crop made by the same
detector geometry (:mod:`sketch2face.data.align`: the dlib face box spans 52% of the crop, centred
13% of a box above the middle). So fixed regions of the 256x256 crop hold the cheeks and the top of
the head: the skin colour is the median of the two cheek patches, the hair colour the median of a
band above the forehead (for bald heads or hats this is what the witness would see too). FS2K's
``gender`` label (0 male, 1 female) is used where present; CelebA photos have no gender label, and
get a confident pseudo label from the offline gender head where ``sketch2face gender label`` made
one (:mod:`sketch2face.data.pseudo_gender`, read by ``training.data.load_pairs``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ATTRIBUTE_DIM = 10
#: [start, end) of the skin, hair and gender groups in a condition vector (each: known flag, values)
GROUP_SLICES = ((0, 4), (4, 8), (8, 10))

#: A six-step skin-tone scale (roughly Fitzpatrick I-VI), representative sRGB of lit cheek skin.
SKIN_TONES: dict[str, tuple[int, int, int]] = {
    "very-light": (241, 208, 186),
    "light": (226, 185, 155),
    "medium": (201, 151, 116),
    "olive": (176, 126, 88),
    "brown": (133, 88, 60),
    "dark": (84, 56, 40),
}
#: Hair colour swatches (sRGB as they appear in photos, not dye-chart colours).
HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (28, 24, 22),
    "dark-brown": (60, 44, 34),
    "brown": (104, 74, 52),
    "auburn": (128, 62, 38),
    "blonde": (196, 160, 112),
    "grey": (142, 140, 136),
    "white": (222, 220, 214),
}
GENDERS = ("female", "male")

# Regions of a 256x256 prepared face crop (y0, y1, x0, x1), from the crop geometry above.
SKIN_REGIONS_256 = ((128, 160, 78, 102), (128, 160, 154, 178))
HAIR_REGION_256 = (14, 44, 88, 168)


def _parse_colour(
    name: str, value: Any, palette: Mapping[str, tuple[int, int, int]]
) -> tuple[int, int, int]:
    if isinstance(value, str):
        key = value.strip().lower().replace(" ", "-").replace("_", "-")
        if key in palette:
            return palette[key]
        match = re.fullmatch(r"#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})", key)
        if match:
            return tuple(int(g, 16) for g in match.groups())  # type: ignore[return-value]
    elif isinstance(value, Sequence) and len(value) == 3:
        try:
            rgb = tuple(int(round(float(v))) for v in value)
        except (TypeError, ValueError):
            rgb = ()
        if len(rgb) == 3 and all(0 <= v <= 255 for v in rgb):
            return rgb  # type: ignore[return-value]
    raise ValueError(
        f"{name} {value!r} is not understood; use one of {', '.join(palette)}, a hex colour like "
        "#a0785a, or three numbers 0-255."
    )


@dataclass(frozen=True)
class FaceAttributes:
    """What a witness may say; None means 'not specified, let the model choose'."""

    skin_rgb: tuple[int, int, int] | None = None
    hair_rgb: tuple[int, int, int] | None = None
    gender: str | None = None

    @classmethod
    def from_request(cls, values: Mapping[str, Any] | None) -> FaceAttributes:
        """Parse ``skin``, ``hair_color`` and ``gender`` (names, hex or RGB); empty values are unset."""
        values = {
            k: v for k, v in (values or {}).items() if v not in (None, "", "any", "unspecified")
        }
        unknown = sorted(set(values) - {"skin", "hair_color", "gender"})
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; use skin, hair_color and gender.")
        gender = values.get("gender")
        if gender is not None:
            gender = str(gender).strip().lower()
            if gender not in GENDERS:
                raise ValueError(
                    f"gender {values['gender']!r} is not understood; use female or male."
                )
        return cls(
            skin_rgb=_parse_colour("skin tone", values["skin"], SKIN_TONES)
            if "skin" in values
            else None,
            hair_rgb=_parse_colour("hair colour", values["hair_color"], HAIR_COLOURS)
            if "hair_color" in values
            else None,
            gender=gender,
        )

    @property
    def is_empty(self) -> bool:
        """True when nothing was specified."""
        return self.skin_rgb is None and self.hair_rgb is None and self.gender is None

    def to_vector(self) -> np.ndarray:
        """The 10-float condition vector described in the module docstring."""
        vec = np.zeros(ATTRIBUTE_DIM, dtype=np.float32)
        if self.skin_rgb is not None:
            vec[0] = 1.0
            vec[1:4] = np.asarray(self.skin_rgb, np.float32) / 127.5 - 1.0
        if self.hair_rgb is not None:
            vec[4] = 1.0
            vec[5:8] = np.asarray(self.hair_rgb, np.float32) / 127.5 - 1.0
        if self.gender is not None:
            vec[8] = 1.0
            vec[9] = 1.0 if self.gender == "female" else -1.0
        return vec


def _region_median(
    images_u8: np.ndarray, regions: Sequence[tuple[int, int, int, int]]
) -> np.ndarray:
    """(N, 256, 256, 3) -> (N, 3) median colour over the union of the regions."""
    size = images_u8.shape[1]
    scale = size / 256.0
    patches = [
        images_u8[:, int(y0 * scale) : int(y1 * scale), int(x0 * scale) : int(x1 * scale)].reshape(
            len(images_u8), -1, 3
        )
        for (y0, y1, x0, x1) in regions
    ]
    return np.median(np.concatenate(patches, axis=1), axis=1)


def skin_colours(photos_u8: np.ndarray) -> np.ndarray:
    """Median cheek colour of aligned face crops: (N, H, W, 3) uint8 -> (N, 3) float in 0..255."""
    return _region_median(np.asarray(photos_u8), SKIN_REGIONS_256)


def hair_colours(photos_u8: np.ndarray) -> np.ndarray:
    """Median colour of the band above the forehead: (N, H, W, 3) uint8 -> (N, 3) float in 0..255."""
    return _region_median(np.asarray(photos_u8), (HAIR_REGION_256,))


def training_vectors(photos_u8: np.ndarray, genders: Sequence[int | None]) -> np.ndarray:
    """Condition vectors for training pairs: colours measured on the photos, FS2K gender labels."""
    n = len(photos_u8)
    vec = np.zeros((n, ATTRIBUTE_DIM), dtype=np.float32)
    for start in range(0, n, 512):  # bounded memory on large splits
        chunk = np.asarray(photos_u8[start : start + 512])
        vec[start : start + len(chunk), 0] = 1.0
        vec[start : start + len(chunk), 1:4] = skin_colours(chunk) / 127.5 - 1.0
        vec[start : start + len(chunk), 4] = 1.0
        vec[start : start + len(chunk), 5:8] = hair_colours(chunk) / 127.5 - 1.0
    for i, gender in enumerate(genders):
        if gender in (0, 1):
            vec[i, 8] = 1.0
            vec[i, 9] = 1.0 if gender == 1 else -1.0  # FS2K: 0 male, 1 female
    return vec


def drop_groups(vectors: np.ndarray | Any, keep_mask: Any) -> Any:
    """Zero the groups (skin, hair, gender) where ``keep_mask`` (N, 3) is False: 'unspecified'."""
    out = vectors.clone() if hasattr(vectors, "clone") else vectors.copy()
    for g, (a, b) in enumerate(GROUP_SLICES):
        out[:, a:b] = out[:, a:b] * keep_mask[:, g : g + 1]
    return out


def gender_labels(vectors: Any) -> Any:
    """(N,) gender of condition vectors in FS2K's coding: 1 female, 0 male, -1 unknown (torch in,
    torch out)."""
    known_at, value_at = GROUP_SLICES[2]
    known = vectors[:, known_at] > 0.5
    female = (vectors[:, value_at - 1] > 0).float()
    return female.where(known, female.new_full(female.shape, -1.0))


def colour_requests(vectors: Any) -> tuple[Any, Any]:
    """The requested skin and hair colours of torch condition vectors: ((N, 2, 3) sRGB in [-1, 1],
    (N, 2) bool requested), in the order of :func:`region_masks` (skin, hair)."""
    import torch

    (skin_at, skin_end), (hair_at, hair_end) = GROUP_SLICES[0], GROUP_SLICES[1]
    colours = torch.stack(
        [vectors[:, skin_at + 1 : skin_end], vectors[:, hair_at + 1 : hair_end]], 1
    )
    known = torch.stack([vectors[:, skin_at] > 0.5, vectors[:, hair_at] > 0.5], 1)
    return colours, known


def counterfactual_requests(
    vectors: Any, chosen: Any, generator: Any, photo_vectors: Any | None = None
) -> tuple[Any, Any]:
    """Witness requests that disagree with the photo, for training the model to obey them.

    A sketch already shows gender and the photo fixes the colours, so a model trained only on
    requests that match its photo learns to ignore them. For the ``chosen`` rows (N,) bool of the
    torch condition ``vectors`` (N, 10), each group is replaced with probability 1/2 (at least one
    per row): skin and hair by a random swatch of :data:`SKIN_TONES` / :data:`HAIR_COLOURS` (a few
    levels of jitter), gender by the opposite of the photo's (read from ``photo_vectors``, the
    undropped vectors, default ``vectors``; a random one when unknown). Returns the new vectors and the (N, 3) bool mask of replaced groups (skin, hair, gender).
    """
    import torch

    n = vectors.shape[0]
    out = vectors.clone()
    replace = torch.rand(n, 3, generator=generator) < 0.5
    none = ~replace.any(dim=1)
    replace[none, torch.randint(0, 3, (n,), generator=generator)[none]] = True
    replace &= chosen.reshape(n, 1).bool()
    for group, palette in ((0, SKIN_TONES), (1, HAIR_COLOURS)):
        swatches = torch.tensor(list(palette.values()), dtype=out.dtype)
        pick = swatches[torch.randint(0, len(swatches), (n,), generator=generator)]
        pick = (pick + (torch.rand(n, 3, generator=generator) * 2 - 1) * 8).clamp(0, 255)
        a, b = GROUP_SLICES[group]
        rows = replace[:, group]
        out[rows, a] = 1.0
        out[rows, a + 1 : b] = pick[rows] / 127.5 - 1.0
    known_at, value_at = GROUP_SLICES[2]
    photo = vectors if photo_vectors is None else photo_vectors
    current = photo[:, value_at - 1]
    random_sign = torch.where(torch.rand(n, generator=generator) < 0.5, 1.0, -1.0).to(out.dtype)
    flipped = torch.where(photo[:, known_at] > 0.5, -torch.sign(current), random_sign)
    rows = replace[:, 2]
    out[rows, known_at] = 1.0
    out[rows, value_at - 1] = flipped[rows]
    return out, replace


def region_masks(n: int, size_px: int, affine: Any | None = None) -> Any:
    """(N, 2, size, size) float torch masks of the skin (both cheeks) and hair regions of aligned
    crops, carried through the training augmentation ``affine`` (N, 2, 3: original px ->
    augmented px, as from ``training.trainer.paired_jitter``) when given."""
    import torch

    scale = size_px / 256.0
    if affine is None:
        affine = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(n, 2, 3)
    affine = affine.float()
    grid = torch.arange(size_px, dtype=torch.float32)
    masks = torch.zeros(n, 2, size_px, size_px)
    for index, regions in enumerate((SKIN_REGIONS_256, (HAIR_REGION_256,))):
        for y0, y1, x0, x1 in regions:
            # first and last pixel centres of the box, mapped; a flip swaps the ends
            xs = torch.tensor([x0 * scale, x1 * scale - 1])
            ys = torch.tensor([y0 * scale, y1 * scale - 1])
            mx = affine[:, 0, 0:1] * xs + affine[:, 0, 2:3]
            my = affine[:, 1, 1:2] * ys + affine[:, 1, 2:3]
            inside_x = (grid >= mx.min(1, keepdim=True).values - 0.5) & (
                grid <= mx.max(1, keepdim=True).values + 0.5
            )
            inside_y = (grid >= my.min(1, keepdim=True).values - 0.5) & (
                grid <= my.max(1, keepdim=True).values + 0.5
            )
            masks[:, index] = torch.maximum(
                masks[:, index], (inside_y[:, :, None] & inside_x[:, None, :]).float()
            )
    return masks
