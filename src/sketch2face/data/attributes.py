"""FS2K attribute encoding: annotations (dataset) or request values (inference) -> a fixed vector.

The vector (``ATTRIBUTE_NAMES``, ``ATTRIBUTE_DIM`` = 16 float32; unknown values are -1):

- ``hair``, ``gender``, ``earring``, ``smile``, ``frontal_face``: the FS2K 0/1 labels as given;
- ``hair_color_0..4``: one-hot of FS2K ``hair_color`` (all -1 when unknown);
- ``lip_r/g/b``, ``eye_r/g/b``: FS2K mean lip / eye colours divided by 255.

Photos without annotations (CelebA, CUHK) therefore get a vector of -1. The label values keep
FS2K's own coding (see the FS2K README); this module does not rename them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

BINARY_ATTRIBUTES = ("hair", "gender", "earring", "smile", "frontal_face")
HAIR_COLOR_CLASSES = 5
COLOUR_ATTRIBUTES = ("lip_color", "eye_color")
ATTRIBUTE_NAMES: tuple[str, ...] = (
    *BINARY_ATTRIBUTES,
    *(f"hair_color_{i}" for i in range(HAIR_COLOR_CLASSES)),
    "lip_r",
    "lip_g",
    "lip_b",
    "eye_r",
    "eye_g",
    "eye_b",
)
ATTRIBUTE_DIM = len(ATTRIBUTE_NAMES)
#: Keys a generation request may set (FS2K annotation names).
REQUEST_KEYS = frozenset({*BINARY_ATTRIBUTES, "hair_color", *COLOUR_ATTRIBUTES})


def encode_attributes(attributes: Mapping[str, Any]) -> np.ndarray:
    """Encode FS2K-style annotations as the fixed float32 vector; missing or odd values -> -1."""
    vec = np.full(ATTRIBUTE_DIM, -1.0, dtype=np.float32)
    for i, name in enumerate(BINARY_ATTRIBUTES):
        value = attributes.get(name)
        if isinstance(value, (int, float)):  # bool is an int too
            vec[i] = 1.0 if float(value) > 0.5 else 0.0
    hair_color = attributes.get("hair_color")
    if isinstance(hair_color, (int, float)) and 0 <= int(hair_color) < HAIR_COLOR_CLASSES:
        start = len(BINARY_ATTRIBUTES)
        vec[start : start + HAIR_COLOR_CLASSES] = 0.0
        vec[start + int(hair_color)] = 1.0
    offset = len(BINARY_ATTRIBUTES) + HAIR_COLOR_CLASSES
    for j, key in enumerate(COLOUR_ATTRIBUTES):
        colour = attributes.get(key)
        if isinstance(colour, (list, tuple)) and len(colour) == 3:
            rgb = np.asarray(colour, np.float32) / 255.0
            vec[offset + 3 * j : offset + 3 * j + 3] = np.clip(rgb, 0, 1)
    return vec


def encode_request_attributes(request: Mapping[str, Any]) -> np.ndarray:
    """Validate user-given attributes (FS2K names and codes) and encode them; unset -> -1.

    Accepts numbers, booleans and numeric strings (form fields). Raises ValueError naming the key
    and the allowed values.
    """
    unknown = sorted(set(request) - REQUEST_KEYS)
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; use {', '.join(sorted(REQUEST_KEYS))}.")
    clean: dict[str, Any] = {}
    for key, value in request.items():
        if value is None or value == "":
            continue
        if key in COLOUR_ATTRIBUTES:
            if not isinstance(value, (list, tuple)) or len(value) != 3:
                raise ValueError(f"attribute {key!r} must be three numbers (R, G, B in 0..255).")
            clean[key] = [_number(key, v, 0, 255) for v in value]
        elif key == "hair_color":
            clean[key] = int(_number(key, value, 0, HAIR_COLOR_CLASSES - 1))
        else:
            clean[key] = int(_number(key, value, 0, 1))
    return encode_attributes(clean)


def _number(key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, str):
        text = value.strip().lower()
        value = {"true": 1, "false": 0, "yes": 1, "no": 0}.get(text, text)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"attribute {key!r} must be a number in {low:g}..{high:g}, not {value!r}."
        ) from None
    if not low <= number <= high:
        raise ValueError(f"attribute {key!r} must be in {low:g}..{high:g}, not {number:g}.")
    return number
