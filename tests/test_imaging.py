"""Image decoding limits: the minimum size and aspect ratio a face sketch needs (finding 8)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2face.errors import InvalidImageError
from sketch2face.imaging import (
    MAX_SKETCH_ASPECT,
    MIN_SKETCH_SIDE,
    decode_image_bytes,
    load_image,
)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buf, format="PNG")
    return buf.getvalue()


SKETCH_LIMITS = {"min_side": MIN_SKETCH_SIDE, "max_aspect": MAX_SKETCH_ASPECT}


@pytest.mark.parametrize("size", [(32, 32), (128, 32), (32, 128), (256, 256)])
def test_sketch_limits_accept_faces(size: tuple[int, int]) -> None:
    assert decode_image_bytes(_png(*size), name="s", **SKETCH_LIMITS).shape == (size[1], size[0], 3)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((1, 1), r"1x1 pixels is too small.*at least 32 pixels"),
        ((1, 5000), r"at least 32 pixels"),
        ((31, 200), r"at least 32 pixels"),
        ((200, 40), r"5:1.*at most 4:1.*crop"),
        ((40, 161), r"at most 4:1"),
    ],
)
def test_sketch_limits_refuse_what_cannot_be_a_face(size: tuple[int, int], message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        decode_image_bytes(_png(*size), name="the sketch", **SKETCH_LIMITS)


def test_sketch_limits_apply_to_every_input_type_of_load_image(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    path.write_bytes(_png(1, 1))
    for source in (path, _png(1, 1), Image.new("RGB", (1, 1)), np.zeros((1, 1, 3), np.uint8)):
        with pytest.raises(InvalidImageError, match="at least 32 pixels"):
            load_image(source, **SKETCH_LIMITS)


def test_without_limits_programmatic_callers_keep_any_size() -> None:
    """Library callers (data preparation, evaluation, the pipeline) choose their own limits."""
    assert load_image(np.zeros((1, 1, 3), np.uint8)).shape == (1, 1, 3)
    assert decode_image_bytes(_png(1, 5000), name="s").shape == (5000, 1, 3)


def test_generate_cli_skips_images_too_small_for_a_face(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketch2face.cli.main import main

    dot, face = tmp_path / "dot.png", tmp_path / "face.png"
    dot.write_bytes(_png(1, 1))
    face.write_bytes(_png(64, 64))
    out = tmp_path / "out"
    code = main(
        ["generate", str(dot), str(face), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]
    )
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["face.png"]
    err = capsys.readouterr().err
    assert "dot.png" in err and "at least 32 pixels" in err
