"""schemathesis hooks for scripts/schemathesis_api.py (loaded through SCHEMATHESIS_HOOKS).

A positive test case promises valid data, but random bytes (or the 1x1 PNG schemathesis makes for
binary fields) are no face sketch: the API rightly answers 400. Positive cases therefore send a
real line drawing as ``sketch``.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import schemathesis
from PIL import Image
from schemathesis.transport.serialization import Binary  # how schemathesis holds binary fields


def _sketch_png(size_px: int = 64) -> bytes:
    """A dark ellipse on white paper: decodable, and big enough to count as a face sketch."""
    image = np.full((size_px, size_px, 3), 255, dtype=np.uint8)
    yy, xx = np.mgrid[:size_px, :size_px]
    ring = np.abs(
        ((xx - size_px / 2) / (size_px * 0.35)) ** 2
        + ((yy - size_px / 2) / (size_px * 0.45)) ** 2
        - 1
    )
    image[ring < 0.12] = 20
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


SKETCH = _sketch_png()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Every generated binary ``sketch`` of POST /generate becomes a real sketch.

    Harmless for negative cases: a binary string cannot break the schema by its content, so
    their violation lies elsewhere (or in the sketch's type, which is then no Binary and kept).
    The case keeps the mode it was generated with: schemathesis cannot re-validate binary
    bodies and would otherwise relabel every edited case as negative.
    """
    if isinstance(case.body, dict) and isinstance(case.body.get("sketch"), Binary):
        case.body["sketch"] = Binary(SKETCH)
        case._sync_validated_hashes()  # private in schemathesis 4.x: "this is the generated body"
