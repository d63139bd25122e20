"""Locate the offline dlib face models shipped by the ``face-recognition-models`` wheel.

We find the ``.dat`` files through importlib metadata instead of importing the package, because
its ``__init__`` imports ``pkg_resources`` (deprecated, noisy, and gone in setuptools 81).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from sketch2face.errors import WeightsNotFoundError

SHAPE_PREDICTOR_5 = "shape_predictor_5_face_landmarks.dat"
SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION_RESNET = "dlib_face_recognition_resnet_model_v1.dat"


@cache
def dlib_model_path(filename: str) -> Path:
    """Return the path of a dlib model file from ``face-recognition-models``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "the dlib face models are not installed; run `pip install face-recognition-models dlib-bin`."
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / filename
        if candidate.is_file():
            return candidate
    raise WeightsNotFoundError(
        f"{filename} not found in the face-recognition-models package; reinstall it with "
        "`pip install --force-reinstall face-recognition-models`."
    )
