"""GFPGAN refiner: loading (real v1.3/v1.4 layout, random values), errors, alignment, fallbacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("spandrel", reason="the 'refine' extra (spandrel) is not installed")

from sketch2face.errors import CheckpointError, WeightsNotFoundError  # noqa: E402
from sketch2face.imaging import load_image  # noqa: E402
from sketch2face.refine import NoRefiner, Refiner  # noqa: E402
from sketch2face.refine.gfpgan import (  # noqa: E402
    FFHQ_TEMPLATE_512,
    NO_WEIGHTS_NOTICE,
    OFFICIAL_V14_KWARGS,
    WEIGHTS_ENV_VAR,
    GFPGANRefiner,
    _read_state_dict,
    default_landmarker,
    estimate_alignment,
    load_gfpgan_network,
    load_refiner,
)


@pytest.fixture(scope="session")
def gfpgan_checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, set[str], torch.Tensor]]:
    """A randomly initialised full-size GFPGANv1Clean saved like GFPGANv1.4.pth (~350 MB, once).

    Yields (path, the saved keys, a copy of ``toRGB.0.weight``) so tests need not re-read the file.
    """
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(0)
    state = GFPGAN(**OFFICIAL_V14_KWARGS).state_dict()
    path = tmp_path_factory.mktemp("gfpgan") / "GFPGANv1.4.pth"
    torch.save({"params_ema": state}, path)
    keys, probe = set(state), state["toRGB.0.weight"].clone()
    del state
    yield path, keys, probe
    path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def gfpgan_weights(gfpgan_checkpoint: tuple[Path, set[str], torch.Tensor]) -> Path:
    return gfpgan_checkpoint[0]


@pytest.fixture(scope="session")
def ffhq_face_256(shared_dir: Path) -> np.ndarray:
    """The 512 FFHQ-aligned fixture face, area-downscaled to a 256 'generated' face."""
    face_512 = load_image(shared_dir / "data/fixtures/ffhq_gfpgan_test/00000000.png")
    return cv2.resize(face_512, (256, 256), interpolation=cv2.INTER_AREA)


class IdentityNet(torch.nn.Module):
    """Stand-in with GFPGANv1Clean's call signature that returns its input unchanged."""

    def forward(
        self, x: torch.Tensor, **_kwargs: object
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return x, []


class FailingNet(torch.nn.Module):
    """Stand-in that fails like an out-of-memory network."""

    def forward(
        self, x: torch.Tensor, **_kwargs: object
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise RuntimeError("simulated failure")


# --- loading ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_size_weights_load_and_refine_256_face(
    gfpgan_checkpoint: tuple[Path, set[str], torch.Tensor], ffhq_face_256: np.ndarray
) -> None:
    path, saved_keys, saved_probe = gfpgan_checkpoint
    refiner = GFPGANRefiner.from_weights(path)
    assert type(refiner.network).__name__ == "GFPGANv1Clean"
    loaded = refiner.network.state_dict()
    assert set(loaded) == saved_keys
    assert torch.equal(loaded["toRGB.0.weight"], saved_probe)
    assert isinstance(refiner, Refiner)

    result = refiner.refine_detailed(ffhq_face_256)
    assert result.image_u8.shape == (512, 512, 3) and result.image_u8.dtype == np.uint8
    assert result.face_found and not result.fell_back
    assert refiner.last_timing_ms is not None and refiner.last_timing_ms > 0
    assert set(result.timings_ms) == {"align", "restore", "paste", "total"}
    # Random weights give a different face inside the mask, but the background stays the upscale.
    upscaled = cv2.resize(ffhq_face_256, (512, 512), interpolation=cv2.INTER_CUBIC)
    assert np.abs(result.image_u8.astype(int) - upscaled).mean() > 1.0
    assert np.array_equal(result.image_u8[:4, :4], upscaled[:4, :4])


def test_weights_load_from_env_var(gfpgan_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(gfpgan_weights))
    refiner, notice = load_refiner()
    assert notice is None
    assert isinstance(refiner, GFPGANRefiner) and refiner.weights_path == gfpgan_weights


def test_params_ema_is_preferred_over_params(tmp_path: Path) -> None:
    path = tmp_path / "GFPGANv1.3.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "params_ema": {"w": torch.ones(1)}}, path)
    assert torch.equal(_read_state_dict(path)["w"], torch.ones(1))
    torch.save({"params": {"w": torch.zeros(1)}}, path)  # as in GFPGANer: 'params' when no EMA
    assert torch.equal(_read_state_dict(path)["w"], torch.zeros(1))


def test_missing_weights_name_the_path_and_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    missing = tmp_path / "nope" / "GFPGANv1.4.pth"
    with pytest.raises(WeightsNotFoundError) as info:
        GFPGANRefiner.from_weights(missing)
    assert str(missing) in str(info.value) and WEIGHTS_ENV_VAR in str(info.value)
    with pytest.raises(WeightsNotFoundError, match=WEIGHTS_ENV_VAR):
        GFPGANRefiner.from_weights(None)

    assert load_refiner(None) == (None, NO_WEIGHTS_NOTICE)
    assert WEIGHTS_ENV_VAR in NO_WEIGHTS_NOTICE
    refiner, notice = load_refiner(missing)  # not strict: a notice, never a crash
    assert refiner is None and notice is not None and str(missing) in notice
    with pytest.raises(WeightsNotFoundError):
        load_refiner(missing, strict=True)
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(missing))
    refiner, notice = load_refiner()
    assert refiner is None and notice is not None and str(missing) in notice


def test_non_torch_file_is_a_checkpoint_error_naming_the_file(
    shared_dir: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "GFPGANv1.4.pth"
    fake.write_bytes((shared_dir / "data/fixtures/ffhq_gfpgan_test/00000000.png").read_bytes())
    with pytest.raises(CheckpointError) as info:
        load_gfpgan_network(fake)
    assert str(fake) in str(info.value) and "not a readable PyTorch checkpoint" in str(info.value)
    refiner, notice = load_refiner(fake)
    assert refiner is None and notice is not None and str(fake) in notice


def test_random_small_state_dict_is_not_gfpgan(tmp_path: Path) -> None:
    path = tmp_path / "small.pth"
    torch.save({"params_ema": {"conv.weight": torch.randn(4, 3, 3, 3)}}, path)
    with pytest.raises(CheckpointError, match=r"small\.pth is not GFPGAN weights"):
        load_gfpgan_network(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_gfpgan_network(path)


def test_other_architecture_is_reported_by_name(tmp_path: Path) -> None:
    from spandrel.architectures.Compact import Compact

    path = tmp_path / "realesr-compact.pth"
    torch.save({"params": Compact(num_feat=8, num_conv=2, upscale=2).state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"is not GFPGAN weights \(detected Compact\)"):
        load_gfpgan_network(path)


def test_truncated_gfpgan_state_dict_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "partial.pth"
    keys = ("toRGB.0.weight", "stylegan_decoder.style_mlp.1.weight")  # what spandrel detects on
    torch.save({"params_ema": {k: torch.zeros(1) for k in keys}}, path)
    with pytest.raises(CheckpointError, match="could not be loaded as GFPGAN weights"):
        load_gfpgan_network(path)


# --- alignment, paste-back and fallbacks (stand-in networks: no weights needed) ------------


def test_ffhq_aligned_face_maps_to_the_template_almost_unchanged(shared_dir: Path) -> None:
    face_512 = load_image(shared_dir / "data/fixtures/ffhq_gfpgan_test/00000000.png")
    points = default_landmarker().five_points(face_512)
    assert points is not None and points.shape == (5, 2)
    matrix = estimate_alignment(points)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    # dlib's mouth corners sit ~20% closer together than the RetinaFace-derived template's on
    # this face, so the fit zooms in ~12%; eyes and nose still land within 15 px.
    assert 0.9 < scale < 1.15
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - FFHQ_TEMPLATE_512).max() < 20
    assert np.abs(mapped[:3] - FFHQ_TEMPLATE_512[:3]).max() < 15


def test_identity_network_paste_back_reproduces_the_upscale(ffhq_face_256: np.ndarray) -> None:
    refiner = GFPGANRefiner(IdentityNet())
    result = refiner.refine_detailed(ffhq_face_256)
    assert result.face_found and not result.fell_back
    assert result.image_u8.shape == (512, 512, 3)
    upscaled = cv2.resize(ffhq_face_256, (512, 512), interpolation=cv2.INTER_CUBIC)
    # Warp there and back through the 512 template: a misplaced inverse warp would show here.
    assert np.abs(result.image_u8.astype(int) - upscaled).mean() < 2.0


def test_no_face_falls_back_to_restoring_the_whole_image() -> None:
    rng = np.random.default_rng(0)
    blob_u8 = cv2.GaussianBlur(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), (0, 0), 8)
    result = GFPGANRefiner(IdentityNet()).refine_detailed(blob_u8)
    assert not result.face_found and not result.fell_back
    assert result.image_u8.shape == (512, 512, 3) and result.image_u8.dtype == np.uint8
    upscaled = cv2.resize(blob_u8, (512, 512), interpolation=cv2.INTER_CUBIC)
    assert np.abs(result.image_u8.astype(int) - upscaled).max() <= 1


def test_network_runtime_error_keeps_the_upscaled_face(
    ffhq_face_256: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    result = GFPGANRefiner(FailingNet()).refine_detailed(ffhq_face_256)
    assert result.fell_back
    assert np.array_equal(
        result.image_u8, cv2.resize(ffhq_face_256, (512, 512), interpolation=cv2.INTER_CUBIC)
    )
    assert "simulated failure" in caplog.text


def test_bf16_precision_runs_and_bad_arguments_are_rejected(ffhq_face_256: np.ndarray) -> None:
    refiner = GFPGANRefiner(IdentityNet(), precision="bf16")
    assert refiner.compute_dtype == torch.bfloat16
    assert refiner.refine(ffhq_face_256).shape == (512, 512, 3)
    assert GFPGANRefiner(IdentityNet(), precision="auto").compute_dtype in (
        torch.float32,
        torch.bfloat16,
    )
    with pytest.raises(ValueError, match="precision"):
        GFPGANRefiner(IdentityNet(), precision="fp8")
    with pytest.raises(ValueError, match="uint8"):
        GFPGANRefiner(IdentityNet()).refine(ffhq_face_256.astype(np.float32))


def test_no_refiner_follows_the_protocol(ffhq_face_256: np.ndarray) -> None:
    assert isinstance(NoRefiner(), Refiner)
    assert np.array_equal(NoRefiner().refine(ffhq_face_256), ffhq_face_256)
    assert NoRefiner(upscale=2).refine(ffhq_face_256).shape == (512, 512, 3)
