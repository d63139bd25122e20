"""The studio backdrop (issue 22 item 3): the head stays, the rest becomes a plain backdrop."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sketch2face.refine.backdrop import (
    STUDIO_GRADIENT,
    STUDIO_RGB,
    backdrop,
    feather_mask,
    head_mask,
    landmark_head_mask,
    remove_border_lines,
    sketch_head_mask,
    studio_backdrop,
    template_head_mask,
)

FIXTURES = ("data", "fixtures", "fs2k_test")
CORNER = 16  # px: the top corners of every fixture portrait are background


@pytest.fixture(scope="module")
def fs2k_pairs(shared_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, sketch, photo) of the FS2K test fixtures, prepared to 256 like the training data."""
    from sketch2face.data.align import default_cropper
    from sketch2face.data.prepare import WorkItem, build_pair

    folder = shared_dir.joinpath(*FIXTURES)
    pairs = []
    for photo in sorted(folder.glob("*_photo*_image*.jpg")):
        sketch = folder / photo.name.replace("photo", "sketch").replace("image", "sketch")
        if not sketch.is_file():
            continue
        item = WorkItem(photo.stem, "fs2k", "artist", "test", photo, sketch)
        sketch_u8, photo_u8, found = build_pair(item, default_cropper())
        assert found, photo.name
        pairs.append((photo.stem, sketch_u8, photo_u8))
    if len(pairs) < 4:
        pytest.skip(f"fewer than 4 FS2K sketch/photo pairs in {folder}")
    return pairs


def _top_corners(image: np.ndarray) -> list[np.ndarray]:
    return [image[:CORNER, :CORNER], image[:CORNER, -CORNER:]]


def _plain_face() -> np.ndarray:
    """A synthetic aligned 'face': a skin-toned ellipse on a loud rainbow background."""
    ys, xs = np.mgrid[0:256, 0:256]
    face = np.stack([xs, ys, 255 - xs], axis=-1).astype(np.uint8)  # rainbow smear
    cv2.ellipse(face, (128, 140), (55, 75), 0, 0, 360, (200, 160, 140), -1)
    return face


# --- on real FS2K pairs ----------------------------------------------------------------------


def test_fixture_pairs_keep_the_face_and_replace_the_top_corners(fs2k_pairs) -> None:
    plain = backdrop(256, 256)
    for name, sketch_u8, photo_u8 in fs2k_pairs:
        before = photo_u8.copy()
        out = studio_backdrop(photo_u8, sketch_u8)
        assert out.shape == (256, 256, 3) and out.dtype == np.uint8, name
        assert np.array_equal(photo_u8, before), f"{name}: the input was modified"
        # The centre of the face (eyes to mouth) is the face, pixel for pixel.
        assert np.array_equal(out[100:170, 96:160], photo_u8[100:170, 96:160]), name
        for got, want in zip(_top_corners(out), _top_corners(plain), strict=True):
            diff = np.abs(got.astype(int) - want.astype(int)).mean()
            assert diff < 3.0, f"{name}: a top corner is {diff:.1f} levels off the backdrop"


def test_fixture_masks_come_from_sketch_and_landmarks(fs2k_pairs) -> None:
    for name, sketch_u8, photo_u8 in fs2k_pairs:
        found = head_mask(photo_u8, sketch_u8)
        assert found.source == "sketch+landmarks", name
        assert found.landmarks68 is not None and found.landmarks68.shape == (68, 2)
        assert found.mask.shape == (256, 256) and found.mask.dtype == bool
        assert 0.3 < found.mask.mean() < 0.9, f"{name}: head covers {found.mask.mean():.2f}"
        # the whole jaw line (dlib points 0-16) is inside the head
        jaw = np.round(found.landmarks68[:17]).astype(int).clip(0, 255)
        assert found.mask[jaw[:, 1], jaw[:, 0]].all(), name
        assert not any(corner.any() for corner in _top_corners(found.mask)), name


def test_sketch_mask_follows_the_drawn_outline(fs2k_pairs) -> None:
    """The sketch's own mask is the head, not a generic ellipse: it differs per sketch and
    lies close to the mask made from the photo's landmarks alone."""
    masks = []
    for name, sketch_u8, photo_u8 in fs2k_pairs:
        mask = sketch_head_mask(sketch_u8)
        assert mask is not None, name
        from_face = head_mask(photo_u8, None).mask
        iou = (mask & from_face).sum() / (mask | from_face).sum()
        assert iou > 0.55, f"{name}: sketch and landmark heads overlap only {iou:.2f}"
        masks.append(mask)
    assert len({m.sum() for m in masks}) == len(masks)


def test_landmarks_alone_when_no_sketch(fs2k_pairs) -> None:
    _, _, photo_u8 = fs2k_pairs[0]
    found = head_mask(photo_u8)
    assert found.source == "landmarks"
    out = studio_backdrop(photo_u8)
    assert np.array_equal(out[100:170, 96:160], photo_u8[100:170, 96:160])
    for got, want in zip(_top_corners(out), _top_corners(backdrop(256, 256)), strict=True):
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 3.0


@pytest.mark.parametrize(
    "kind", ["blank", "tiny", "cluttered", "off-centre"], ids=lambda kind: f"{kind} sketch"
)
def test_unusable_sketch_falls_back_to_landmarks(fs2k_pairs, kind: str) -> None:
    _, _, photo_u8 = fs2k_pairs[0]
    sketch = np.full((256, 256, 3), 255, np.uint8)
    if kind == "tiny":
        cv2.circle(sketch, (128, 140), 12, (0, 0, 0), 2)
    elif kind == "cluttered":  # a photo-sketch of a busy scene: strokes everywhere
        rng = np.random.default_rng(0)
        for _ in range(2500):
            x, y = rng.integers(0, 256, 2)
            dx, dy = rng.integers(-12, 13, 2)
            cv2.line(sketch, (int(x), int(y)), (int(x + dx), int(y + dy)), (0, 0, 0), 1)
    elif kind == "off-centre":  # a head drawn in a corner is not this face
        cv2.ellipse(sketch, (40, 40), (35, 45), 0, 0, 360, (0, 0, 0), 2)
    found = head_mask(photo_u8, sketch)
    assert found.source == "landmarks", kind
    out = studio_backdrop(photo_u8, sketch)
    assert np.array_equal(out[100:170, 96:160], photo_u8[100:170, 96:160])
    assert found.mask.mean() < 0.8


def test_larger_refined_faces_and_gray_sketches(fs2k_pairs) -> None:
    name, sketch_u8, photo_u8 = fs2k_pairs[0]
    big = cv2.resize(photo_u8, (512, 512), interpolation=cv2.INTER_CUBIC)
    gray = cv2.cvtColor(sketch_u8, cv2.COLOR_RGB2GRAY)
    out = studio_backdrop(big, gray)  # a 256 gray sketch for a 512 face
    assert out.shape == (512, 512, 3)
    assert np.array_equal(out[200:340, 192:320], big[200:340, 192:320])
    small = head_mask(photo_u8, sketch_u8).mask
    large = head_mask(big, gray[:, :, None]).mask
    shrunk = cv2.resize(large.astype(np.uint8), (256, 256), interpolation=cv2.INTER_AREA) > 0
    assert (small ^ shrunk).mean() < 0.03, name


def test_deterministic(fs2k_pairs) -> None:
    _, sketch_u8, photo_u8 = fs2k_pairs[1]
    assert np.array_equal(
        studio_backdrop(photo_u8, sketch_u8), studio_backdrop(photo_u8, sketch_u8)
    )


def test_given_landmarks_skip_detection(fs2k_pairs) -> None:
    _, sketch_u8, photo_u8 = fs2k_pairs[2]
    points = head_mask(photo_u8).landmarks68
    assert points is not None
    given = head_mask(photo_u8, sketch_u8, landmarks68=points, detect_landmarks=False)
    assert np.array_equal(given.mask, head_mask(photo_u8, sketch_u8).mask)
    assert landmark_head_mask(points, 256).mean() > 0.3


# --- without data ----------------------------------------------------------------------------


def test_no_face_no_sketch_uses_the_template() -> None:
    face = _plain_face()
    found = head_mask(face, detect_landmarks=False)
    assert found.source == "template" and found.landmarks68 is None
    assert np.array_equal(found.mask, template_head_mask(256))
    out = studio_backdrop(face, detect_landmarks=False)
    assert np.array_equal(out[110:170, 100:156], face[110:170, 100:156])
    plain = backdrop(256, 256)
    for got, want in zip(_top_corners(out), _top_corners(plain), strict=True):
        assert np.array_equal(got, want)  # the rainbow is gone


def test_synthetic_sketch_outline_is_the_head() -> None:
    """A drawn head outline with shoulder lines that stop short of the frame edge: the head,
    neck and shoulders are kept, the paper beside the neck is not."""
    sketch = np.full((256, 256), 255, np.uint8)
    cv2.ellipse(sketch, (128, 120), (62, 90), 0, 0, 360, 0, 2)  # head
    cv2.line(sketch, (100, 205), (100, 225), 0, 2)  # neck
    cv2.line(sketch, (156, 205), (156, 225), 0, 2)
    cv2.line(sketch, (100, 225), (12, 238), 0, 2)  # shoulders, ending 12 px from the edges
    cv2.line(sketch, (156, 225), (244, 238), 0, 2)
    mask = sketch_head_mask(sketch)
    assert mask is not None
    assert mask[120, 128] and mask[40, 128] and mask[215, 128]  # face, skull top, neck
    assert mask[250, 20] and mask[250, 236]  # under the shoulder lines
    assert not mask[210, 40] and not mask[210, 216]  # beside the neck, above the shoulders
    assert not mask[20, 20] and not mask[20, 236]


def test_frame_lines_at_the_border_are_removed() -> None:
    face = np.full((256, 256, 3), 128, np.uint8)
    cv2.ellipse(face, (128, 140), (55, 75), 0, 0, 360, (200, 160, 140), -1)
    face[200:, :] = (60, 70, 90)  # a dark jacket down to the bottom edge
    lined = face.copy()
    cv2.rectangle(lined, (2, 2), (253, 253), (250, 250, 40), 2)  # stage one's faint frame
    cleaned = remove_border_lines(lined, 6)
    assert np.array_equal(cleaned[6:-6, 6:-6], lined[6:-6, 6:-6])
    assert np.array_equal(cleaned[200:], face[200:])
    out = studio_backdrop(lined, detect_landmarks=False)
    yellow = (out[:, :, 2].astype(int) < 100) & (out[:, :, 0] > 200)
    assert not yellow.any()


def test_feathered_edge_is_soft() -> None:
    mask = np.zeros((256, 256), bool)
    cv2.circle(mask.view(np.uint8), (128, 128), 60, 1, -1)
    alpha = feather_mask(mask, 5.0)
    assert alpha.dtype == np.float32
    assert alpha[128, 128] == 1.0 and alpha[0, 0] == 0.0
    row = alpha[128, 128:]
    assert np.all(np.diff(row) <= 1e-6)  # falls monotonically from the centre outward
    ramp = np.count_nonzero((row > 0.0) & (row < 1.0))
    assert 4 <= ramp <= 16, ramp  # a few pixels wide: neither a cut-out nor a blur
    assert 0.3 < row[60] < 0.7  # the ramp is centred on the hard edge
    assert np.array_equal(feather_mask(mask, 0.0), mask.astype(np.float32))


def test_backdrop_is_plain_and_gently_graduated() -> None:
    plate = backdrop(256, 256)
    assert plate.shape == (256, 256, 3) and plate.dtype == np.uint8
    colour = np.array(STUDIO_RGB, float)
    behind_head = plate[100:116, 120:136].reshape(-1, 3).mean(axis=0)
    assert np.abs(behind_head - colour).max() < 2.0
    darkest = plate[-8:, -8:].reshape(-1, 3).mean(axis=0)
    assert np.abs(darkest - colour * (1 - STUDIO_GRADIENT)).max() < 2.0
    # plain: neighbouring pixels differ by at most a dither step, no texture or banding edges
    assert np.abs(np.diff(plate.astype(int), axis=1)).max() <= 2
    grey = backdrop(64, 64, (128, 128, 128), 0.0)
    assert set(np.unique(grey)) == {128}
    plate[0, 0] = 0  # a fresh array every call: writing to it changes no later backdrop
    assert backdrop(256, 256)[0, 0, 0] != 0


@pytest.mark.parametrize(
    ("face", "sketch", "kwargs", "message"),
    [
        (np.zeros((256, 256, 3), np.float32), None, {}, "uint8"),
        (np.zeros((256, 256), np.uint8), None, {}, "HxWx3"),
        (np.zeros((256, 200, 3), np.uint8), None, {}, "square"),
        (np.zeros((32, 32, 3), np.uint8), None, {}, "64x64"),
        (None, np.zeros((256, 256, 3), np.float64), {}, "sketch_u8"),
        (None, np.zeros((256, 128), np.uint8), {}, "square"),
        (None, None, {"colour": (300, 0, 0)}, "colour"),
        (None, None, {"colour": (1, 2)}, "colour"),
        (None, None, {"gradient": -0.1}, "gradient"),
        (None, None, {"feather_px": 100.0}, "feather_px"),
        (None, None, {"border_px": -1}, "border_px"),
        (None, None, {"landmarks68": np.zeros((5, 2))}, "landmarks68"),
    ],
)
def test_invalid_input_gives_a_clear_value_error(face, sketch, kwargs, message: str) -> None:
    face = _plain_face() if face is None else face
    with pytest.raises(ValueError, match=message):
        studio_backdrop(face, sketch, detect_landmarks=False, **kwargs)
