"""Issue 23 item 2: a face's labels say whether it shows each requested attribute, measured on
the face (skin and hair region colours, the gender head), never just what was asked for."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sketch2face.attributes import HAIR_COLOURS, HAIR_REGION_256, SKIN_REGIONS_256, SKIN_TONES
from sketch2face.services import attribute_check
from sketch2face.services.attribute_check import check_faces, verdict_text
from sketch2face.services.generation import attribute_labels


def _face(skin: tuple[int, int, int], hair: tuple[int, int, int]) -> np.ndarray:
    face = np.full((256, 256, 3), 200, np.uint8)
    for y0, y1, x0, x1 in SKIN_REGIONS_256:
        face[y0:y1, x0:x1] = skin
    y0, y1, x0, x1 = HAIR_REGION_256
    face[y0:y1, x0:x1] = hair
    return face


def test_skin_and_hair_shown_only_when_the_regions_have_that_colour() -> None:
    light_brown = _face(SKIN_TONES["light"], HAIR_COLOURS["brown"])
    red_blotches = _face((200, 60, 40), HAIR_COLOURS["brown"])
    dark_grey = _face(SKIN_TONES["dark"], HAIR_COLOURS["grey"])
    checks = check_faces(
        [light_brown, red_blotches, dark_grey, light_brown],
        [
            {"skin": "dark", "hair_color": "grey"},  # a light face with brown hair shows neither
            {"skin": "dark"},  # red blotches are not dark skin
            {"skin": "dark", "hair_color": "grey"},
            {"skin": "#e2b99b", "hair_color": "#684a34"},  # picker colours: light, brown
        ],
    )
    assert checks[0]["skin"]["shown"] is False and checks[0]["skin"]["seen"] == "light"
    assert checks[0]["hair_color"]["shown"] is False and checks[0]["hair_color"]["seen"] == "brown"
    assert checks[1]["skin"]["shown"] is False
    assert checks[2]["skin"]["shown"] is True and checks[2]["hair_color"]["shown"] is True
    assert checks[3]["skin"]["shown"] is True and checks[3]["hair_color"]["shown"] is True
    assert "gender" not in checks[0]


def test_faces_of_both_stages_sizes_are_checked_together() -> None:
    """A round can mix a 512 px refined face (GFPGAN) with a 256 px one (a face it fell back on):
    each is measured at 256 px, with the same verdict as at its own size."""
    import cv2

    dark_grey = _face(SKIN_TONES["dark"], HAIR_COLOURS["grey"])
    large = cv2.resize(dark_grey, (512, 512), interpolation=cv2.INTER_NEAREST)
    wanted = {"skin": "dark", "hair_color": "grey"}
    mixed = check_faces([large, dark_grey], [wanted, wanted])
    assert mixed[0] == mixed[1] == check_faces([dark_grey], [wanted])[0]
    assert mixed[0]["skin"]["shown"] is True and mixed[0]["hair_color"]["shown"] is True


def test_gender_is_measured_with_the_gender_head(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attribute_check, "gender_seen", lambda faces: ["male", None])
    face = _face(SKIN_TONES["light"], HAIR_COLOURS["brown"])
    checks = check_faces([face, face], [{"gender": "female"}, {"gender": "male"}])
    assert checks[0]["gender"] == {"value": "female", "shown": False, "seen": "male"}
    assert checks[1]["gender"]["shown"] is None  # no verdict: no claim either way
    assert verdict_text(checks[0]["gender"]) == "asked for, not shown"
    assert verdict_text(checks[1]["gender"]) == "not checked"

    def broken(faces: Any) -> list[str]:
        raise RuntimeError("no head")

    monkeypatch.setattr(attribute_check, "gender_seen", broken)
    assert check_faces([face], [{"gender": "male"}])[0]["gender"]["shown"] is None


def test_labels_say_shown_not_shown_and_model_choice() -> None:
    face = _face(SKIN_TONES["light"], HAIR_COLOURS["brown"])
    attrs = {"skin": "dark", "hair_color": "brown"}
    (check,) = check_faces([face], [attrs])
    assert attribute_labels(attrs, check, ["skin"]) == [
        "Skin tone: dark, asked for, not shown",
        "Hair colour: model's choice (brown, shown)",
    ]
    assert attribute_labels(attrs, None) == [
        "Skin tone: dark, not checked",
        "Hair colour: brown, not checked",
    ]
