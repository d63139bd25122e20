"""The project's own refiner (refine/own.py), the resolution of the second stage
(refine/resolve.py) and the pipeline running both stages by default, on tiny random checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2face.backends import TorchBackend
from sketch2face.errors import CheckpointError, WeightsNotFoundError
from sketch2face.imaging import tensor_to_u8, u8_to_tensor
from sketch2face.models.checkpoint import load_checkpoint
from sketch2face.pipeline import Sketch2Face
from sketch2face.refine import own
from sketch2face.refine.base import refine_detailed
from sketch2face.refine.own import FALLBACK_NOTICE, OwnRefiner
from sketch2face.refine.resolve import (
    NO_REFINER_NOTICE,
    OFF_NOTICE,
    refiner_configured,
    resolve_refiner,
)


@pytest.fixture(scope="module")
def face_u8() -> np.ndarray:
    """A 256x256 'stage-one face': smooth colour gradients with a dark oval."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    face = np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.float32)
    face[((xx - 128) / 70) ** 2 + ((yy - 120) / 90) ** 2 < 1] *= 0.6
    return np.clip(face + rng.normal(0, 3, face.shape), 0, 255).astype(np.uint8)


class FailingBackend:
    """A backend that fails like a broken runtime."""

    name = "failing"

    def run(self, batch_t: torch.Tensor, attributes: object, seed: object) -> torch.Tensor:
        raise RuntimeError("simulated onnxruntime failure")


# ------------------------------------------------------------------ the refiner
def test_refines_a_256_face_with_the_moving_average_weights(
    tiny_refiner: Path, face_u8: np.ndarray
) -> None:
    refiner = OwnRefiner.from_checkpoint(tiny_refiner, device="cpu", backend="torch")
    out = refiner.refine(face_u8)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert not np.array_equal(out, face_u8)
    assert np.array_equal(refiner.refine(face_u8), out)  # eval mode: always the same pixels
    ckpt = load_checkpoint(tiny_refiner)
    x = u8_to_tensor(face_u8).unsqueeze(0)
    with torch.inference_mode():
        ema = tensor_to_u8(ckpt.build_generator().eval()(x, None))
        raw = tensor_to_u8(ckpt.build_generator(prefer_ema=False).eval()(x, None))
    assert np.array_equal(out, ema)
    assert not np.array_equal(out, raw)
    assert refiner.name == "sketch2face-refiner"
    assert refiner.version.startswith("refine-unet-ngf4-step3@")
    detailed = refiner.refine_detailed(face_u8)
    assert not detailed.fell_back and detailed.timings_ms["total"] > 0


def test_onnx_runtime_gives_the_same_face_within_two_levels(
    tiny_refiner: Path, face_u8: np.ndarray
) -> None:
    pytest.importorskip("onnxruntime")
    eager = OwnRefiner.from_checkpoint(tiny_refiner, backend="torch").refine(face_u8)
    onnx = OwnRefiner.from_checkpoint(tiny_refiner, backend="auto").refine(face_u8)
    assert np.abs(eager.astype(int) - onnx.astype(int)).max() <= 2


@pytest.mark.parametrize("shape", [(128, 128, 3), (300, 200, 3)])
def test_other_sizes_come_back_at_their_own_size(
    tiny_refiner: Path, shape: tuple[int, int, int]
) -> None:
    refiner = OwnRefiner.from_checkpoint(tiny_refiner, backend="torch")
    face = np.full(shape, 120, np.uint8)
    assert refiner.refine(face).shape == shape
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        refiner.refine(np.zeros((64, 64), np.uint8))


def test_a_failing_network_keeps_the_unrefined_face(face_u8: np.ndarray) -> None:
    refiner = OwnRefiner(FailingBackend())
    result = refiner.refine_detailed(face_u8)
    assert result.fell_back
    assert np.array_equal(result.image_u8, face_u8)
    assert np.array_equal(refiner.refine(face_u8), face_u8)  # never loses the image
    assert refine_detailed(refiner, face_u8).fell_back


def test_wrong_checkpoints_say_what_they_are_and_what_to_give(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from conftest import make_tiny_refiner

    with pytest.raises(CheckpointError, match=r"sketch -> photo model.*--checkpoint.*--refiner"):
        OwnRefiner.from_checkpoint(tiny_checkpoint)
    sketcher = make_tiny_refiner(tmp_path / "p2s.safetensors", direction="photo2sketch")
    with pytest.raises(CheckpointError, match=r"photo -> sketch model.*data.direction"):
        OwnRefiner.from_checkpoint(sketcher)
    corrupt = tmp_path / "refiner.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"refiner could not be read.*refiner.safetensors"):
        OwnRefiner.from_checkpoint(corrupt)
    with pytest.raises(
        CheckpointError, match=r"refiner checkpoint .*missing.safetensors not found"
    ):
        OwnRefiner.from_checkpoint(tmp_path / "missing.safetensors")


def test_a_refiner_is_not_a_stage_one_model(tiny_refiner: Path) -> None:
    with pytest.raises(CheckpointError, match=r"refine model, not a sketch -> photo.*--refiner"):
        Sketch2Face.from_pretrained(tiny_refiner)


# ------------------------------------------------------------------ resolution
def test_resolution_order(
    tiny_refiner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nothing installed: stage one only, with a notice saying how to get a refiner
    nothing = resolve_refiner()
    assert nothing.refiner is None and nothing.source == "none"
    assert nothing.notice == NO_REFINER_NOTICE and "--refiner" in NO_REFINER_NOTICE
    assert not refiner_configured()
    # the packaged refiner, once the file is there
    monkeypatch.setattr(own, "DEFAULT_REFINER", tiny_refiner)
    packaged = resolve_refiner()
    assert isinstance(packaged.refiner, OwnRefiner) and packaged.source == "packaged"
    assert refiner_configured()
    # GFPGAN weights named in the environment come before the packaged refiner
    monkeypatch.setenv("SKETCH2FACE_GFPGAN_WEIGHTS", str(tmp_path / "GFPGANv1.4.pth"))
    gfpgan = resolve_refiner()
    assert gfpgan.refiner is None and gfpgan.source == "gfpgan-environment"
    assert gfpgan.notice is not None and "GFPGAN weights not found" in gfpgan.notice
    # the refiner setting comes before both; "none" turns refinement off
    monkeypatch.setenv(own.REFINER_ENV_VAR, str(tiny_refiner))
    assert resolve_refiner().source == "environment"
    monkeypatch.setenv(own.REFINER_ENV_VAR, "none")
    off = resolve_refiner()
    assert off.refiner is None and off.notice == OFF_NOTICE and off.source == "off"
    assert not refiner_configured()
    # a setting naming a bad file: a notice, not a crash (a server still starts)
    monkeypatch.setenv(own.REFINER_ENV_VAR, str(tmp_path / "gone.safetensors"))
    bad = resolve_refiner()
    assert bad.refiner is None and "gone.safetensors not found" in str(bad.notice)
    # explicit arguments come first, and a bad explicit path is an error
    explicit = resolve_refiner(tiny_refiner)
    assert isinstance(explicit.refiner, OwnRefiner) and explicit.source == "argument"
    assert resolve_refiner("off").refiner is None
    with pytest.raises(CheckpointError, match="gone.safetensors"):
        resolve_refiner(tmp_path / "gone.safetensors")
    with pytest.raises(WeightsNotFoundError, match="GFPGAN weights not found"):
        resolve_refiner(gfpgan_weights=tmp_path / "GFPGANv1.4.pth")


# ------------------------------------------------------------------ the pipeline
def test_pipeline_refines_by_default_and_can_be_turned_off(
    tiny_checkpoint: Path, tiny_refiner: Path, face_u8: np.ndarray
) -> None:
    pipe = Sketch2Face.from_pretrained(tiny_checkpoint, device="cpu", refiner=tiny_refiner)
    sketch = np.full((256, 256, 3), 255, np.uint8)
    sketch[60:200:7, 40:220] = 0
    both = pipe(sketch, prepared=True)
    assert both.refined[0] is not None and both.refined[0].shape == (256, 256, 3)
    assert not np.array_equal(both.refined[0], both.faces[0])
    assert both.shown(0) is both.refined[0]
    assert both.refiner_version == pipe.refiner_version and both.refiner_version
    assert set(both.timings_ms) == {"prepare", "generate", "refine"}
    assert both.notices == []
    alone = pipe(sketch, prepared=True, refine=False)
    assert alone.refined == [None] and alone.refiner_version == ""
    assert np.array_equal(alone.faces[0], both.faces[0])  # stage one's face is kept either way
    assert alone.shown(0) is alone.faces[0]


def test_pipeline_uses_the_packaged_refiner_when_installed(
    tiny_checkpoint: Path, tiny_refiner: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(own, "DEFAULT_REFINER", tiny_refiner)
    pipe = Sketch2Face.from_pretrained(tiny_checkpoint, device="cpu")
    assert isinstance(pipe.refiner, OwnRefiner)
    result = pipe(np.full((256, 256, 3), 255, np.uint8), prepared=True)
    assert result.refined[0] is not None
    off = Sketch2Face.from_pretrained(tiny_checkpoint, device="cpu", refiner="none")
    assert off.refiner is None
    assert off(np.full((256, 256, 3), 255, np.uint8), prepared=True).refined == [None]


def test_pipeline_without_refiner_says_so(tiny_checkpoint: Path) -> None:
    pipe = Sketch2Face.from_pretrained(tiny_checkpoint, device="cpu")
    result = pipe(np.full((256, 256, 3), 255, np.uint8), prepared=True)
    assert result.refined == [None] and result.faces[0].shape == (256, 256, 3)
    assert result.notices == [NO_REFINER_NOTICE]


def test_pipeline_shows_stage_one_when_the_refiner_fails(tiny_checkpoint: Path) -> None:
    pipe = Sketch2Face.from_pretrained(
        tiny_checkpoint, device="cpu", refiner=OwnRefiner(FailingBackend())
    )
    result = pipe([np.full((256, 256, 3), 255, np.uint8)] * 2, prepared=True)
    assert result.refined == [None, None]  # no stage-one face passed off as refined
    assert result.notices == [FALLBACK_NOTICE]
    assert all(f.shape == (256, 256, 3) for f in result.faces)
    assert result.refiner_version == ""


def test_torch_backend_is_importable_from_the_pipeline() -> None:
    from sketch2face import pipeline

    assert pipeline.TorchBackend is TorchBackend
