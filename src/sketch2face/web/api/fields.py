"""API form fields, checked exactly as the OpenAPI document declares them (shared by the
generation and case APIs): booleans, seeds, witness attributes and their schemas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sketch2face.attributes import GENDERS, HAIR_COLOURS, SKIN_TONES
from sketch2face.candidates import ATTRIBUTE_FIELDS
from sketch2face.services.generation import MAX_SEED

# The form is checked exactly as the OpenAPI document declares it (see openapi_document), so a
# value outside the schema is a 400, never silently read as something else.
_TRUE_WORDS = ("true", "1")
_FALSE_WORDS = ("false", "0")
_HEX_COLOUR = r"^#[0-9a-fA-F]{6}$"
#: accepted values of each witness attribute; "" means unset (the model chooses)
ATTRIBUTE_NAMES: dict[str, tuple[str, ...]] = {
    "skin": ("", *SKIN_TONES),
    "hair_color": ("", *HAIR_COLOURS),
    "gender": ("", *GENDERS),
}
_HEX_ALLOWED = ("skin", "hair_color")


def boolean(form: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    """A boolean form field: true or false (any case), 1 or 0; absent is ``default``."""
    value = form.get(name)
    if value is None:
        return default
    if value.lower() in _TRUE_WORDS:
        return True
    if value.lower() in _FALSE_WORDS:
        return False
    raise ValueError(f"{name} must be true or false (or 1 or 0), not {value[:40]!r}.")


def seed(form: Mapping[str, str]) -> int | None:
    """The optional variation seed: a whole number from 0 to 2**31-1."""
    value = form.get("seed")
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,10}", value) or int(value) > MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, not {value[:20]!r}.")
    return int(value)


def attributes(form: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Witness attributes by their declared names (or #rrggbb for colours); "" means unset."""
    chosen = []
    for name in ATTRIBUTE_FIELDS:
        value = form.get(name)
        if value is None or value == "":
            continue
        hex_ok = name in _HEX_ALLOWED and re.fullmatch(_HEX_COLOUR, value)
        if value not in ATTRIBUTE_NAMES[name] and not hex_ok:
            allowed = ", ".join(v for v in ATTRIBUTE_NAMES[name] if v)
            extra = ", or a colour as #rrggbb" if name in _HEX_ALLOWED else ""
            raise ValueError(f"{name} {value[:40]!r} is not one of {allowed}{extra}.")
        chosen.append((name, value))
    return tuple(chosen)


#: text fields cannot hold NUL characters (PostgreSQL refuses them)
NO_NUL = "^[^\\x00]*$"
#: what a case number may not hold (services/cases.has_invisible): control characters (C0, DEL,
#: C1), format characters (zero-width, bidi, BOM ...) and line/paragraph separators; JSON Schema
#: patterns reach the Basic Multilingual Plane only, the service also refuses the astral ones
_INVISIBLE = (
    "\\x00-\\x1f\\x7f-\\x9f\\xad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2"
    "\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb"
)
#: a case number: at least one letter or digit (NFKC and case-insensitive comparison: the service)
CASE_NUMBER_REQUIRED = f"^[^{_INVISIBLE}]*[A-Za-z0-9][^{_INVISIBLE}]*$"
#: the same, or blank (no case)
CASE_NUMBER = f"^(?:[^{_INVISIBLE}]*[A-Za-z0-9][^{_INVISIBLE}]*|[^{_INVISIBLE}\\S]*)$"


def attribute_schema(name: str, what: str) -> dict[str, Any]:
    """A witness attribute: one of its names, "" (unset), or for colours #rrggbb."""
    names = {"type": "string", "enum": list(ATTRIBUTE_NAMES[name])}
    if name not in _HEX_ALLOWED:
        return {**names, "description": f"{what}; empty: let the model choose"}
    return {
        "anyOf": [names, {"type": "string", "pattern": _HEX_COLOUR}],
        "description": f"{what}: a name, a colour as #rrggbb, or empty to let the model choose",
    }
