"""Generator / discriminator shapes, losses and the checkpoint format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2face.errors import CheckpointError
from sketch2face.evaluation.metrics import ssim
from sketch2face.models.checkpoint import load_checkpoint, save_checkpoint
from sketch2face.models.losses import (
    SPECTRUM_BINS,
    GANLoss,
    bright_line_loss,
    contextual_loss,
    dark_line_loss,
    dark_line_map,
    face_oval,
    radial_log_power,
    spectrum_loss,
    ssim_loss,
    structure_keeping_loss,
)
from sketch2face.models.patchgan import DiscriminatorConfig, PatchGANDiscriminator
from sketch2face.models.unet import GeneratorConfig, UNetGenerator


@pytest.mark.parametrize("depth,size", [(8, 256), (7, 256), (5, 64)])
def test_generator_shape_and_range(depth: int, size: int) -> None:
    net = UNetGenerator(GeneratorConfig(ngf=4, depth=depth)).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    y = net(x)
    assert y.shape == (2, 3, size, size)
    assert y.min() >= -1 and y.max() <= 1  # tanh output


def test_generator_blocks_follow_pix2pix() -> None:
    net = UNetGenerator(GeneratorConfig(ngf=8, depth=7))
    assert len(net.encoder) == 7 and len(net.decoder) == 6
    assert isinstance(net.encoder[0].norm, torch.nn.Identity)  # no norm on the outermost block
    assert isinstance(net.encoder[1].norm, torch.nn.BatchNorm2d)
    assert isinstance(net.encoder[1].act, torch.nn.LeakyReLU)
    assert isinstance(net.decoder[0].deconv, torch.nn.ConvTranspose2d)
    assert isinstance(net.decoder[0].dropout, torch.nn.Dropout)
    assert isinstance(net.decoder[-1].dropout, torch.nn.Identity)
    assert isinstance(net.head[-1], torch.nn.Tanh)


def test_generator_width_scales_parameters() -> None:
    small = UNetGenerator(GeneratorConfig(ngf=16)).num_parameters()
    big = UNetGenerator(GeneratorConfig(ngf=32)).num_parameters()
    assert 3.5 < big / small < 4.5  # parameters grow ~quadratically with width


def test_attribute_projection_starts_as_no_op() -> None:
    torch.manual_seed(0)
    plain = UNetGenerator(GeneratorConfig(ngf=4, depth=6)).eval()
    cond = UNetGenerator(GeneratorConfig(ngf=4, depth=6, attribute_dim=5)).eval()
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {"attribute_proj.weight", "attribute_proj.bias"} and not unexpected
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(plain(x), cond(x, torch.ones(1, 5)))


def test_discriminator_patch_logits() -> None:
    net = PatchGANDiscriminator(DiscriminatorConfig(ndf=8))
    s, p = torch.rand(2, 3, 256, 256), torch.rand(2, 3, 256, 256)
    logits, feats = net(s, p, return_features=True)
    assert logits.shape == (2, 1, 30, 30)  # 70x70 PatchGAN on 256 px
    assert [f.shape[-1] for f in feats] == [128, 64, 32, 31]


def test_gan_loss_is_stable_bce() -> None:
    loss = GANLoss()
    big = torch.full((1, 1, 4, 4), 80.0)
    assert loss(big, True).item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(loss(-big, True))  # no log(0) blow-up
    assert loss(torch.zeros(1, 1, 2, 2), False).item() == pytest.approx(0.6931, abs=1e-3)


def test_contextual_loss_prefers_matching_features() -> None:
    torch.manual_seed(0)
    y = torch.randn(2, 16, 8, 8)
    same = contextual_loss(y.clone(), y)
    shuffled = contextual_loss(y.flip(-1).flip(-2), y)  # same features, moved: CX tolerates it
    other = contextual_loss(torch.randn(2, 16, 8, 8), y)
    assert same.item() < 0.05
    assert shuffled.item() == pytest.approx(same.item(), abs=1e-4)
    assert other.item() > same.item() + 0.1


def _as_model_range(image_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image_u8).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def test_ssim_loss_is_one_minus_the_evaluation_ssim() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    for noise in (5, 40, 120):
        fake = np.clip(photo.astype(int) + rng.integers(-noise, noise, photo.shape), 0, 255)
        fake = fake.astype(np.uint8)
        loss = ssim_loss(_as_model_range(fake), _as_model_range(photo)).item()
        assert loss == pytest.approx(1.0 - ssim(fake, photo), abs=1e-5)
    assert ssim_loss(_as_model_range(photo), _as_model_range(photo)).item() == pytest.approx(
        0, abs=1e-6
    )


def test_ssim_loss_gradient_descent_raises_ssim() -> None:
    torch.manual_seed(0)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    fake = (real + 0.5 * torch.randn_like(real)).clamp(-1, 1).requires_grad_(True)
    start = ssim_loss(fake, real)
    (grad,) = torch.autograd.grad(start, fake)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    after = ssim_loss(fake.detach() - 100.0 * grad, real)  # per-pixel gradients are ~1e-3
    assert after.item() < start.item() - 0.01


def _box_blur(images: torch.Tensor, size: int = 5) -> torch.Tensor:
    kernel = torch.ones(3, 1, size, size) / size**2
    padded = torch.nn.functional.pad(images, [size // 2] * 4, mode="reflect")
    return torch.nn.functional.conv2d(padded, kernel, groups=3)


def test_radial_power_falls_at_high_frequencies_when_an_image_is_blurred() -> None:
    torch.manual_seed(0)
    sharp = torch.rand(2, 3, 64, 64) * 2 - 1
    sharp_power = radial_log_power(sharp)
    blurred_power = radial_log_power(_box_blur(sharp))
    assert sharp_power.shape == (2, SPECTRUM_BINS)
    # blur keeps the coarsest band and removes most of the finest
    assert (blurred_power[:, 0] - sharp_power[:, 0]).abs().max() < 0.3
    assert (sharp_power[:, -4:] - blurred_power[:, -4:]).min() > 1.0


def test_radial_power_ignores_where_the_detail_is() -> None:
    torch.manual_seed(1)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    flipped = image.flip(-1)  # same detail, mirrored: a pixel loss would call it far off
    assert spectrum_loss(flipped, image).item() < 0.05
    assert (flipped - image).abs().mean().item() > 0.5


def test_spectrum_loss_is_zero_for_the_photo_and_sharpens_a_blurred_face() -> None:
    torch.manual_seed(2)
    photo = torch.rand(2, 3, 64, 64) * 2 - 1
    assert spectrum_loss(photo, photo).item() == pytest.approx(0.0, abs=1e-6)
    fake = _box_blur(photo).requires_grad_(True)
    start = spectrum_loss(fake, photo)
    (grad,) = torch.autograd.grad(start, fake)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # descending the loss puts fine detail back: the finest bands gain power
    stepped = (fake.detach() - 2000.0 * grad).clamp(-1, 1)
    assert spectrum_loss(stepped, photo).item() < start.item() - 0.05
    gained = radial_log_power(stepped)[:, -4:] - radial_log_power(fake.detach())[:, -4:]
    assert gained.mean().item() > 0


def test_structure_keeping_loss_lets_detail_change_but_not_shape() -> None:
    torch.manual_seed(3)
    face = _box_blur(torch.rand(1, 3, 64, 64) * 2 - 1, 9) * 4  # smooth "shading" of +-0.5
    assert structure_keeping_loss(face, face).item() == pytest.approx(0.0, abs=1e-6)
    fine = 0.2 * torch.sign(torch.randn(1, 1, 64, 64)).expand(1, 3, 64, 64)  # pixel-scale detail
    detail = structure_keeping_loss(face + fine, face, sigma_px=3.0).item()
    lit = structure_keeping_loss(face + 0.2, face, sigma_px=3.0).item()  # same amplitude, shading
    moved = structure_keeping_loss(face.roll(4, dims=-1), face, sigma_px=3.0).item()
    assert lit > 5 * detail and moved > 2 * detail
    # colour alone (same luma) is free: more red, less green, balanced to no luma change
    tint = torch.zeros(1, 3, 64, 64)
    tint[:, 0], tint[:, 1] = 0.1, -0.1 * 0.299 / 0.587
    assert structure_keeping_loss(face + tint, face).item() < 1e-4


def test_the_face_oval_covers_the_face_and_frees_the_corners() -> None:
    oval = face_oval(256, 256, torch.device("cpu"))[0, 0]
    assert oval[133, 128] == 1.0 and oval[90, 128] == 1.0  # face centre, eyes
    assert oval[5, 5] == 0.0 and oval[250, 250] == 0.0 and oval[128, 2] == 0.0
    assert 0.3 < oval.mean().item() < 0.6


def test_dark_line_map_sees_thin_strokes_not_shading() -> None:
    canvas = torch.zeros(1, 3, 32, 32)
    stroke = canvas.clone()
    stroke[..., 16, 4:28] = -0.8  # a one-pixel pencil line
    shading = canvas.clone()
    shading[..., 8:24, 4:28] = -0.8  # a dark band wider than a line: shading, not a stroke
    assert dark_line_map(stroke)[0, 0, 16, 10].item() == pytest.approx(0.8)
    assert dark_line_map(stroke)[0, 0, 10, 10].item() == 0.0
    assert dark_line_map(shading).abs().max().item() == 0.0
    assert dark_line_map(canvas + 0.3).abs().max().item() == 0.0  # brightness alone: nothing


def test_dark_line_loss_charges_only_lines_the_photo_lacks() -> None:
    photo = torch.zeros(1, 3, 32, 32)
    photo[..., 8, 4:28] = -0.6  # the photo's own line (an eyelid, a hair)
    drawn = photo.clone()
    drawn[..., 20, 4:28] = -0.6  # an outline the photo does not have
    assert dark_line_loss(photo, photo).item() == 0.0
    assert dark_line_loss(torch.zeros_like(photo), photo).item() == 0.0  # missing lines are free
    assert dark_line_loss(drawn, photo).item() == pytest.approx(0.6 * 24 / 32**2, rel=1e-4)
    fake = drawn.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(dark_line_loss(fake, photo), fake)
    assert grad[..., 20, 10].sum().item() < 0  # descending lightens the drawn line
    assert grad[..., 8, 10].abs().sum().item() == 0.0  # and leaves the photo's own line alone


def test_bright_line_loss_charges_glowing_rims_not_the_photos_highlights() -> None:
    photo = torch.zeros(1, 3, 32, 32)
    photo[..., 8, 10:12] = 0.8  # the photo's own catchlight
    glowing = photo.clone()
    glowing[..., 4:28, 20] = 0.6  # a bright rim the photo does not have
    assert bright_line_loss(photo, photo).item() == 0.0
    assert bright_line_loss(glowing, photo).item() == pytest.approx(0.6 * 24 / 32**2, rel=1e-4)
    assert dark_line_loss(glowing, photo).item() == 0.0  # a bright line is not a dark one
    assert bright_line_loss(photo - 0.5, photo).item() == 0.0  # darker overall: no line


def test_checkpoint_round_trip_same_outputs(tmp_path: Path) -> None:
    cfg = GeneratorConfig(ngf=4, depth=6)
    net = UNetGenerator(cfg).eval()
    path = save_checkpoint(
        tmp_path / "m.safetensors",
        generator=net,
        generator_config=cfg,
        step=7,
        config_json=json.dumps({"a": 1}),
        manifest_sha256="abc",
    )
    ckpt = load_checkpoint(path)
    assert ckpt.step == 7 and ckpt.manifest_sha256 == "abc" and ckpt.config == {"a": 1}
    again = ckpt.build_generator().eval()
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(net(x), again(x))


def test_fp16_checkpoint_is_half_size_and_close(tmp_path: Path) -> None:
    cfg = GeneratorConfig(ngf=8, depth=6)
    net = UNetGenerator(cfg).eval()
    full = save_checkpoint(tmp_path / "a.safetensors", generator=net, generator_config=cfg)
    half = save_checkpoint(
        tmp_path / "b.safetensors", generator=net, generator_config=cfg, dtype=torch.float16
    )
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.rand(1, 3, 64, 64)
    diff = (load_checkpoint(half).build_generator().eval()(x) - net(x)).abs().max()
    assert diff < 2e-2


def test_wrong_architecture_is_a_clear_error(tmp_path: Path) -> None:
    cfg = GeneratorConfig(ngf=4, depth=6)
    path = save_checkpoint(
        tmp_path / "m.safetensors", generator=UNetGenerator(cfg), generator_config=cfg
    )
    ckpt = load_checkpoint(path)
    ckpt.generator_config = GeneratorConfig(ngf=8, depth=6)
    with pytest.raises(CheckpointError, match="do not match its architecture"):
        ckpt.build_generator()


@pytest.mark.parametrize(
    "content", [b"", b"not a checkpoint at all", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"]
)
def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
