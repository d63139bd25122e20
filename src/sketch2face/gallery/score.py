"""Similarity score shown beside each distance: a logistic curve fitted on real photo pairs.

``score = 1 / (1 + exp((distance - MIDPOINT) / SCALE))``: 0.5 at the distance where, among
CelebA photo pairs (4 photos each of 1,600 people; as many pairs of different people as of the
same person), a pair is as likely to show one person as two; near 1 for much closer, near 0 for
much farther. Fitted by ``benchmarks/bench_gallery_identification.py`` (it prints the fit).

It is NOT the probability that a candidate is the person: in a gallery of thousands, several
strangers usually score above 0.5, and a person who is not enrolled still gets a best match.
Rank and distance are what the measurement in docs/gallery.md is about.
"""

from __future__ import annotations

import numpy as np

#: the recogniser's own same-person threshold: dlib's authors call two faces closer than this one
#: person on their benchmark (the result page states it beside every distance)
SAME_PERSON_DISTANCE = 0.6

#: fitted for the dlib_resnet_v1 encoder on the 1,600 CelebA people (9,137 same-person and as
#: many different-person pairs; docs/gallery.md): mean distances 0.479 (same), 0.857 (different)
MIDPOINT = 0.6796
SCALE = 0.0368


def similarity(distance: float | np.ndarray) -> float | np.ndarray:
    """Score in (0, 1) for a Euclidean descriptor distance (higher = more alike)."""
    z = np.clip((np.asarray(distance, dtype=np.float64) - MIDPOINT) / SCALE, -50, 50)
    result = 1.0 / (1.0 + np.exp(z))
    return float(result) if np.ndim(result) == 0 else result
