"""The Sketch2Face pipeline, the generate/export CLI and the ONNX backend, on a tiny real model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2face.cli.main import main
from sketch2face.errors import CheckpointError, InvalidImageError
from sketch2face.pipeline import Sketch2Face


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint: Path) -> Sketch2Face:
    return Sketch2Face.from_pretrained(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def sketch_path(shared_dir: Path) -> Path:
    return shared_dir / "data" / "fixtures" / "fs2k_test" / "style0_sketch1_sketch1396.jpg"


def test_any_input_kind_gives_a_256_face(pipe: Sketch2Face, sketch_path: Path) -> None:
    rgb = np.asarray(Image.open(sketch_path).convert("RGB"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    inputs = [
        sketch_path,
        sketch_path.read_bytes(),
        Image.open(sketch_path),
        rgb,
        rgba,
        rgb[:, :, 0],
        Image.fromarray(rgb).resize((700, 300)),
    ]
    result = pipe(inputs, batch_size=3, refine=False)
    assert len(result.faces) == len(inputs) == len(result.inputs) == len(result.face_found)
    for face, prepared in zip(result.faces, result.inputs):
        assert face.shape == (256, 256, 3) and face.dtype == np.uint8
        assert prepared.shape == (256, 256, 3)
    # the same drawing as path, bytes, PIL and array gives the same face
    assert all(np.array_equal(result.faces[0], f) for f in result.faces[1:4])
    assert result.refined == [None] * len(inputs)
    assert set(result.timings_ms) == {"prepare", "generate"}


def test_deterministic_and_batch_independent(
    pipe: Sketch2Face, sketch_path: Path, shared_dir: Path
) -> None:
    other = shared_dir / "data" / "fixtures" / "fs2k_test" / "style1_sketch1_sketch0788.jpg"
    alone = pipe(sketch_path).faces[0]
    batched = pipe([other, sketch_path]).faces[1]
    assert np.array_equal(alone, batched)  # eval-mode BatchNorm: no batch statistics


def test_seeded_variations_are_reproducible(pipe: Sketch2Face, sketch_path: Path) -> None:
    a = pipe(sketch_path, seed=1).faces[0]
    b = pipe(sketch_path, seed=1).faces[0]
    c = pipe(sketch_path, seed=2).faces[0]
    canonical = pipe(sketch_path).faces[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, canonical)


def test_refine_without_a_refiner_is_a_notice_not_a_crash(
    pipe: Sketch2Face, sketch_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = pipe(sketch_path, refine=True)  # the default; no refiner is installed in tests
    assert result.refined == [None]
    assert result.notices and "no refiner is installed" in result.notices[0]
    assert "GFPGAN" in result.notices[0]  # it names both ways to get one
    assert pipe(sketch_path, refine=False).notices == []


@pytest.mark.parametrize(
    "bad,match",
    [
        (b"", "empty"),
        (b"hello, not an image", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt|not an image"),
    ],
)
def test_bad_inputs_are_clear_errors(pipe: Sketch2Face, bad: bytes, match: str) -> None:
    with pytest.raises(InvalidImageError, match=match):
        pipe(bad)


def test_decompression_bomb_is_refused(pipe: Sketch2Face) -> None:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # ~50 KB file, 400 M pixels
    with pytest.raises(InvalidImageError, match="exceeds the limit"):
        pipe(buf.getvalue())


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Sketch2Face.from_pretrained(bad)


def test_onnx_backend_matches_torch(
    tiny_checkpoint: Path, pipe: Sketch2Face, sketch_path: Path
) -> None:
    onnx = Sketch2Face.from_pretrained(tiny_checkpoint, backend="onnx")
    a = pipe(sketch_path).faces[0].astype(int)
    b = onnx(sketch_path).faces[0].astype(int)
    assert np.abs(a - b).max() <= 2  # uint8 levels


def test_generate_cli_writes_one_png_per_input(
    tiny_checkpoint: Path, shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixtures = shared_dir / "data" / "fixtures" / "fs2k_test"
    sketches = sorted(fixtures.glob("*sketch*"))[:2]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    code = main(
        [
            "generate",
            *map(str, sketches),
            str(broken),
            "-o",
            str(out),
            "--checkpoint",
            str(tiny_checkpoint),
            "--sheet",
            str(tmp_path / "sheet.png"),
        ]
    )
    assert code == 1  # one input was bad ...
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{p.stem}.png" for p in sketches)  # ... the others were still written
    assert Image.open(out / written[0]).size == (256, 256)
    assert Image.open(tmp_path / "sheet.png").size[1] > 2 * 256
    assert "broken.png" in capsys.readouterr().err


def test_export_cli_writes_onnx_with_parity(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "g.onnx"
    assert main(["export", "--onnx", str(target), "--checkpoint", str(tiny_checkpoint)]) == 0
    assert target.stat().st_size > 10_000
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith("parity")][0]
    assert float(line.split("=")[1].split()[0]) < 1e-3


def test_model_trained_at_128_px_still_returns_256_faces(tmp_path: Path, sketch_path: Path) -> None:
    import json

    from sketch2face.models.checkpoint import save_checkpoint
    from sketch2face.models.unet import GeneratorConfig, UNetGenerator

    cfg = GeneratorConfig(ngf=4, depth=7)
    path = save_checkpoint(
        tmp_path / "m128.safetensors",
        generator=UNetGenerator(cfg),
        generator_config=cfg,
        config_json=json.dumps({"data": {"image_size_px": 128}}),
    )
    for backend in ("torch", "onnx"):
        pipe128 = Sketch2Face.from_pretrained(path, backend=backend)
        assert pipe128.model_size_px == 128 and "128px" in pipe128.model_version
        result = pipe128(sketch_path)
        assert result.faces[0].shape == (256, 256, 3) and result.inputs[0].shape == (256, 256, 3)


def test_release_export_is_fp16_and_loads(
    tiny_checkpoint: Path, tmp_path: Path, sketch_path: Path
) -> None:
    from sketch2face.models.checkpoint import load_checkpoint

    target = tmp_path / "release.safetensors"
    assert main(["export", "--release", str(target), "--checkpoint", str(tiny_checkpoint)]) == 0
    ckpt = load_checkpoint(target)
    assert all(
        t.dtype == __import__("torch").float16
        for k, t in ckpt.tensors.items()
        if t.is_floating_point()
    )
    assert ckpt.build_discriminator() is not None  # shipped so that training can resume from it
    a = Sketch2Face.from_pretrained(tiny_checkpoint)(sketch_path).faces[0].astype(int)
    b = Sketch2Face.from_pretrained(target)(sketch_path).faces[0].astype(int)
    assert np.abs(a - b).mean() < 2.0
