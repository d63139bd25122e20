"""Face crop geometry and the one sketch/photo preparation function."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from sketch2face.data.align import (
    FACE_FRACTION,
    CropBox,
    FaceCropper,
    box_from_face,
    centered_square_box,
    crop_square,
    default_cropper,
    nudge_inside,
)
from sketch2face.data.preprocess import PreparedImage, prepare_photo, prepare_sketch
from sketch2face.imaging import load_image


@pytest.fixture(scope="module")
def cropper():
    return default_cropper()  # shared with the other data tests: building a detector takes seconds


@pytest.fixture(scope="module")
def fs2k_fixtures(shared_dir):
    return shared_dir / "data" / "fixtures" / "fs2k_test"


def test_box_from_face_frames_face_with_margin():
    box = box_from_face(100, 100, 200, 200)
    assert box.side == pytest.approx(100 / FACE_FRACTION)
    assert box.x0 + box.side / 2 == pytest.approx(150)  # centred horizontally
    assert box.y0 + box.side / 2 < 150  # moved up so the hair shows
    assert box.y0 < 100 - 30 and box.y0 + box.side > 200 + 30


def test_crop_square_pads_sketches_white_and_resizes():
    image = np.zeros((100, 60, 3), np.uint8)
    out = crop_square(image, centered_square_box(100, 60), size_px=64, border="white")
    assert out.shape == (64, 64, 3)
    assert (out[:, :5] == 255).all() and (out[:, -5:] == 255).all()  # padded sides
    assert (out[:, 25:39] == 0).all()  # the image itself
    with pytest.raises(ValueError):
        crop_square(image, centered_square_box(100, 60), border="purple")


def test_crop_square_neutral_pad_fades_to_edge_colour_without_mirroring():
    image = np.full((100, 100, 3), (200, 100, 50), np.uint8)
    image[:, :10] = (0, 0, 0)  # a dark stripe on the left edge: must not be mirrored outward
    out = crop_square(image, CropBox(-100.0, 0.0, 200.0), size_px=200)  # 100 px pad on the left
    edge_mean = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).mean(axis=0)
    assert np.abs(out[100, 5].astype(float) - edge_mean).max() <= 1  # far pad: neutral colour
    assert out[100, 97].max() < 40  # next to the image: the edge continues (no hard frame)
    assert np.array_equal(out[50, 150], [200, 100, 50])  # the image itself is untouched
    assert out[:, :80].std(axis=1).max() < 1  # flat rows in the pad: no mirrored stripe


def test_nudge_inside_limits_the_shift():
    box = CropBox(-20.0, 10.0, 100.0)
    moved = nudge_inside(box, 200, 200, max_shift=0.08)
    assert moved.x0 == pytest.approx(-12.0)  # at most 8 px towards the inside
    assert moved.y0 == pytest.approx(10.0)  # already inside: unchanged


def test_prepare_sketch_finds_face_and_normalises(fs2k_fixtures, cropper):
    result = prepare_sketch(fs2k_fixtures / "style0_sketch1_sketch1396.jpg", cropper)
    assert isinstance(result, PreparedImage)
    assert result.face_found
    image = result.image_u8
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert np.array_equal(image[:, :, 0], image[:, :, 1])
    assert (image == 255).mean() > 0.4 and image.min() < 30


def test_prepare_sketch_accepts_rgba_png_named_jpg_and_grayscale(tmp_path, fs2k_fixtures, cropper):
    sketch = Image.open(fs2k_fixtures / "style1_sketch1_sketch0788.jpg").convert("L")
    rgba = sketch.convert("RGBA")
    alpha = np.full(sketch.size[::-1], 255, np.uint8)
    alpha[:, :20] = 0  # transparent strip must land on white paper
    rgba.putalpha(Image.fromarray(alpha))
    fake_jpg = tmp_path / "sketch.jpg"
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    fake_jpg.write_bytes(buf.getvalue())
    from_rgba = prepare_sketch(fake_jpg, cropper)
    from_gray = prepare_sketch(np.asarray(sketch), cropper)
    for result in (from_rgba, from_gray):
        assert result.image_u8.shape == (256, 256, 3)
        assert result.face_found


def test_prepare_sketch_falls_back_to_centred_white_pad(cropper):
    page = np.full((120, 300, 3), 230, np.uint8)
    page[50:70, 100:200] = 40  # a bar, not a face
    result = prepare_sketch(page, cropper)
    assert not result.face_found
    assert result.image_u8.shape == (256, 256, 3)
    assert (result.image_u8[:40] == 255).all() and (result.image_u8[-40:] == 255).all()
    assert result.image_u8[128, 128, 0] < 40  # the bar stays in the middle


def test_prepare_sketch_on_photographed_paper(fs2k_fixtures, cropper):
    """A phone photo of a drawing: bigger, warm-tinted, with a shadow; still clean and white."""
    drawing = load_image(fs2k_fixtures / "style2_sketch1_sketch1107.jpg").astype(np.float32)
    big = np.asarray(Image.fromarray(drawing.astype(np.uint8)).resize((800, 800)), np.float32)
    shade = np.linspace(0.55, 1.0, 800, dtype=np.float32)[None, :, None]
    tint = np.array([1.0, 0.93, 0.8], np.float32)
    photographed = np.clip(big * shade * tint, 0, 255).astype(np.uint8)
    result = prepare_sketch(photographed, cropper)
    assert result.face_found
    image = result.image_u8[:, :, 0]
    assert np.array_equal(result.image_u8[:, :, 0], result.image_u8[:, :, 2])  # no colour tint
    assert (image[:, :24] == 255).mean() > 0.8  # the shadowed left margin is white paper


def test_prepare_sketch_is_deterministic_and_fast(fs2k_fixtures, cropper):
    image = load_image(fs2k_fixtures / "style2_sketch3_sketch0151.jpg")  # 475x340 landscape
    big = np.asarray(Image.fromarray(image).resize((1000, 716)))
    first = prepare_sketch(big, cropper)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        again = prepare_sketch(big, cropper)
        timings.append(time.perf_counter() - start)
        assert np.array_equal(first.image_u8, again.image_u8)
    # Budget is 150 ms on an idle core; allow slack for the shared CI machine.
    assert min(timings) < 0.4


def test_prepare_photo_crops_to_256(fs2k_fixtures, cropper):
    result = prepare_photo(fs2k_fixtures / "style2_photo3_image0151.jpg", cropper)
    assert result.face_found
    assert result.image_u8.shape == (256, 256, 3)
    assert result.image_u8.std(axis=2).mean() > 3  # still a colour photo
    box = centered_square_box(10, 20)
    assert box.side == 20 and box.y0 == -5
    assert isinstance(cropper, FaceCropper)
