"""Issue 11 training parts: resize-conv decoder and its warm start, augmentation geometry and
sketch styles, face losses (identity + perceptual through dlib's recogniser) in the trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sketch2face.errors import ConfigError
from sketch2face.models.checkpoint import load_checkpoint, save_checkpoint
from sketch2face.models.patchgan import DiscriminatorConfig, PatchGANDiscriminator
from sketch2face.models.unet import (
    GeneratorConfig,
    ResizeConv,
    UNetGenerator,
    convert_decoder_state,
    resize_conv_from_deconv,
)
from sketch2face.training.config import (
    DataConfig,
    LossConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
)
from sketch2face.training.sketch_augment import augment_sketches
from sketch2face.training.trainer import PairTensors, Pix2PixTrainer, paired_jitter

# ---------------------------------------------------------------- resize-conv decoder

_TAPS = torch.tensor([[1.0, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]])


def _deconv_equivalent(kernel: torch.Tensor) -> torch.Tensor:
    """The (in, out, 4, 4) transposed-conv weight that computes exactly what ``kernel`` (a 3x3
    resize-conv, (out, in, 3, 3)) computes: built independently of the converter's matrices."""
    phase = torch.einsum("ak,bl,oikl->ioab", _TAPS, _TAPS, kernel)  # taps in (W3, W1, W2, W0) order
    weight = torch.empty_like(phase)
    order = [3, 1, 2, 0]
    for a, oa in enumerate(order):
        for b, ob in enumerate(order):
            weight[:, :, oa, ob] = phase[:, :, a, b]
    return weight


def test_resize_conv_has_no_period_two_grid_and_deconv_does() -> None:
    torch.manual_seed(0)
    x = torch.ones(1, 4, 8, 8)  # a flat input: any output pattern is the layer's own grid
    deconv = torch.nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, bias=False)
    resize = ResizeConv(4, 3, bias=False)
    grid = deconv(x)[..., 2:-2, 2:-2]
    flat = resize(x)[..., 2:-2, 2:-2]
    assert (grid[..., 0::2, :] - grid[..., 1::2, :]).abs().max() > 1e-3  # even/odd rows differ
    assert torch.allclose(flat, flat[..., :1, :1].expand_as(flat), atol=1e-6)


def test_resize_conv_from_deconv_is_exact_when_the_deconv_is_grid_free() -> None:
    torch.manual_seed(1)
    kernel = torch.randn(5, 4, 3, 3)
    weight = _deconv_equivalent(kernel)
    assert torch.allclose(resize_conv_from_deconv(weight), kernel, atol=1e-5)
    layer = ResizeConv(4, 5, bias=False)
    layer.conv.weight.data = resize_conv_from_deconv(weight)
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(layer(x), F.conv_transpose2d(x, weight, stride=2, padding=1), atol=1e-4)


def test_resize_conv_from_deconv_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="ConvTranspose2d"):
        resize_conv_from_deconv(torch.zeros(4, 4, 3, 3))


def test_deconv_generator_converts_into_resize_generator_and_stays_close() -> None:
    torch.manual_seed(2)
    cfg = GeneratorConfig(ngf=8, depth=5)
    old = UNetGenerator(cfg).eval()
    new = UNetGenerator(GeneratorConfig(ngf=8, depth=5, upsample="resize")).eval()
    new.load_state_dict(convert_decoder_state(old.state_dict(), new))
    untrained = UNetGenerator(GeneratorConfig(ngf=8, depth=5, upsample="resize")).eval()
    x = F.avg_pool2d(torch.rand(2, 3, 64, 64) * 2 - 1, 5, stride=1, padding=2)  # smooth input
    with torch.no_grad():
        ref, warm, cold = old(x), new(x), untrained(x)
    # the least-squares warm start is far closer to the old network than a fresh decoder
    assert (warm - ref).abs().mean() < 0.5 * (cold - ref).abs().mean()


def test_unknown_upsample_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="upsample"):
        GeneratorConfig(upsample="pixelshuffle")


# ---------------------------------------------------------------- augmentation


def test_paired_jitter_affine_carries_points_with_the_image() -> None:
    n, size = 6, 32
    images = torch.zeros(n, 3, size, size)
    ys, xs = torch.randint(6, 26, (n,)), torch.randint(6, 26, (n,))
    for i in range(n):  # one bright dot per image
        images[i, :, ys[i], xs[i]] = 1.0
    a, _, affine = paired_jitter(
        images.clone(), images.clone(), 8, torch.Generator().manual_seed(4), return_affine=True
    )
    assert affine.shape == (n, 2, 3)
    for i in range(n):
        point = affine[i] @ torch.tensor([float(xs[i]), float(ys[i]), 1.0])
        heat = a[i, 0]
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        centre = torch.stack([(heat * xx).sum(), (heat * yy).sum()]) / heat.sum()
        assert torch.allclose(point, centre, atol=0.35), (i, point, centre)


def test_augment_sketches_is_seeded_bounded_and_varied() -> None:
    torch.manual_seed(0)
    sketch = torch.ones(16, 3, 64, 64)
    sketch[:, :, 20:44, 30:33] = -1.0  # one dark stroke on white paper
    a = augment_sketches(sketch, torch.Generator().manual_seed(7))
    b = augment_sketches(sketch, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a.min() >= -1.0 and a.max() <= 1.0 and a.shape == sketch.shape
    changed = (a - sketch).abs().flatten(1).amax(dim=1) > 1e-3
    assert 4 <= int(changed.sum()) <= 16  # most, not necessarily all, are restyled
    # the stroke stays darker than the paper around it in every sketch
    assert (
        a[:, :, 20:44, 30:33].mean(dim=(1, 2, 3)) < a[:, :, 20:44, 5:15].mean(dim=(1, 2, 3))
    ).all()
    assert torch.equal(augment_sketches(sketch, torch.Generator(), strength=0.0), sketch)


# ---------------------------------------------------------------- face losses


@pytest.fixture(scope="module")
def celeba_faces(shared_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """4 CelebA faces at 128 px with their 5 landmarks."""
    from sketch2face.identity.chips import detect_landmarks5

    paths = sorted((shared_dir / "data" / "fixtures" / "celeba").glob("*.jpg"))[:4]
    images, points = [], []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB").resize((128, 128), Image.BICUBIC))
        found = detect_landmarks5(image)
        if found is None:
            continue
        images.append(image)
        points.append(found)
    if len(images) < 3:
        pytest.skip("dlib found too few faces in the CelebA fixtures")
    return np.stack(images), np.stack(points).astype(np.float32)


def _faces_on_photo_chips(
    celeba_faces: tuple[np.ndarray, np.ndarray],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.nn.Module]:
    """(faces in model range, their chips at their landmarks, all-valid mask, identity loss)."""
    from sketch2face.identity.chips import chip_transform
    from sketch2face.identity.dlib_resnet import load_dlib_face_resnet
    from sketch2face.models.face_losses import FaceIdentityLoss

    images, points = celeba_faces
    real = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    chips = torch.from_numpy(np.stack([chip_transform(p) for p in points])).float()
    valid = torch.ones(len(real), dtype=torch.bool)
    return real, chips, valid, FaceIdentityLoss(load_dlib_face_resnet())


def test_identity_and_perceptual_losses_have_useful_gradients(celeba_faces) -> None:
    real, chips, valid, loss = _faces_on_photo_chips(celeba_faces)
    same = loss(real, real, chips, valid)
    assert same.identity.item() < 1e-4 and same.perceptual.item() < 1e-4
    # another person's face (rolled batch) is far in identity and in features
    other = loss(real.roll(1, dims=0), real, chips, valid)
    assert other.identity.item() > 0.02 and other.perceptual.item() > 0.1
    fake = (real.roll(1, dims=0) * 0.5).requires_grad_(True)
    out = loss(fake, real, chips, valid)
    (out.identity + out.perceptual).backward()
    grad = fake.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # one gradient step toward lower identity loss lowers it
    with torch.no_grad():
        stepped = fake - 0.05 * grad / grad.abs().max()
    assert loss(stepped, real, chips, valid).identity < out.identity
    # rows without landmarks are left out; none at all gives zeros, not NaN
    none = loss(fake, real, chips, torch.zeros_like(valid))
    assert none.identity.item() == 0.0 and none.perceptual.item() == 0.0


def test_own_chips_follow_the_face_and_fall_back_to_the_whole_image(celeba_faces) -> None:
    from sketch2face.identity.chips import (
        chip_transform,
        own_chip_transforms,
        whole_image_landmarks5,
    )

    images, points = celeba_faces
    own = own_chip_transforms(list(images))
    assert own.shape == (len(images), 2, 3) and own.dtype == np.float32
    expected = np.stack([chip_transform(p) for p in points])
    np.testing.assert_allclose(own, expected, rtol=1e-5, atol=1e-4)
    shifted = np.roll(images[0], 12, axis=1)  # the face drawn 12 px further right
    moved = own_chip_transforms([shifted])[0]
    # the chip follows the face: the image point that maps to the chip centre moved right ~12 px
    centre = np.array([74.5, 74.5])
    before = np.linalg.solve(own[0][:, :2], centre - own[0][:, 2])
    after = np.linalg.solve(moved[:, :2], centre - moved[:, 2])
    assert 9 < after[0] - before[0] < 15 and abs(after[1] - before[1]) < 3
    blank = np.full((128, 128, 3), 128, np.uint8)  # no face: the whole image is the face box
    np.testing.assert_allclose(
        own_chip_transforms([blank])[0], chip_transform(whole_image_landmarks5(blank)), atol=1e-4
    )


def test_identity_on_own_chips_judges_a_moved_face_as_the_evaluation_does(celeba_faces) -> None:
    from sketch2face.identity.chips import own_chip_transforms

    images, _ = celeba_faces
    real, chips, valid, loss = _faces_on_photo_chips(celeba_faces)
    shifted_u8 = np.roll(images, 10, axis=2)  # the same faces, 10 px to the right
    shifted = torch.from_numpy(shifted_u8).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    at_photo = loss(shifted, real, chips, valid).identity.item()
    own = torch.from_numpy(own_chip_transforms(list(shifted_u8)))
    at_own = loss(shifted, real, chips, valid, fake_chip_matrices=own).identity.item()
    # cut where the photo's face is, the moved face looks like someone else; cut at its own
    # landmarks (as evaluate and a gallery search do), it is the same person
    assert at_own < 0.5 * at_photo and at_own < 0.02


def test_gender_loss_follows_the_photos_gender_and_has_a_gradient(celeba_faces) -> None:
    from sketch2face.evaluation.gender import load_gender_head
    from sketch2face.identity.chips import chip_transform, warp_chips
    from sketch2face.identity.dlib_resnet import load_dlib_face_resnet
    from sketch2face.models.face_losses import FaceIdentityLoss

    images, points = celeba_faces
    real = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    chips = torch.from_numpy(np.stack([chip_transform(p) for p in points])).float()
    valid = torch.ones(len(real), dtype=torch.bool)
    head = load_gender_head()
    loss = FaceIdentityLoss(
        load_dlib_face_resnet(), gender_head=(torch.from_numpy(head.weights), head.bias)
    )
    with torch.no_grad():
        desc, _ = loss.recogniser.forward_features(warp_chips((real + 1) * 127.5, chips, size=150))
    seen = (desc.double().numpy() @ head.weights + head.bias > 0).astype(np.float32)
    right = loss(real, real, chips, valid, gender_target=torch.from_numpy(seen)).gender
    wrong = loss(real, real, chips, valid, gender_target=torch.from_numpy(1 - seen)).gender
    assert right is not None and wrong is not None and right.item() < 0.5 < wrong.item()
    unknown = loss(real, real, chips, valid, gender_target=torch.full((len(real),), -1.0)).gender
    assert unknown is not None and unknown.item() == 0.0
    fake = real.clone().requires_grad_(True)
    out = loss(fake, real, chips, valid, gender_target=torch.from_numpy(1 - seen))
    assert out.gender is not None
    (grad,) = torch.autograd.grad(out.gender, fake)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with torch.no_grad():
        stepped = fake - 0.02 * grad / grad.abs().max()
    moved = loss(stepped, real, chips, valid, gender_target=torch.from_numpy(1 - seen)).gender
    assert moved is not None and moved.item() < out.gender.item()
    without_head = FaceIdentityLoss(load_dlib_face_resnet())(
        real, real, chips, valid, gender_target=torch.from_numpy(seen)
    )
    assert without_head.gender is not None and without_head.gender.item() == 0.0


def _face_pairs(celeba_faces, attributes: np.ndarray | None = None) -> PairTensors:
    """The fixture faces as (inverted-grey 'sketch', photo) pairs with their face chips."""
    from sketch2face.training.data import face_chip_matrices

    images, points = celeba_faces
    sketches = 255 - np.repeat(images.mean(axis=3, keepdims=True), 3, axis=3).astype(np.uint8)
    chips, valid = face_chip_matrices(
        (points + 0.5) * 2.0 - 0.5, 128
    )  # found at 128 -> "256" coords
    return PairTensors(
        torch.from_numpy(np.ascontiguousarray(sketches)),
        torch.from_numpy(images),
        manifest_sha256="fixture",
        chip_matrices=torch.from_numpy(chips),
        chip_valid=torch.from_numpy(valid),
        attributes=None if attributes is None else torch.from_numpy(attributes),
        sources=("fs2k",) * len(images),
    )


def test_trainer_with_face_losses_trains_validates_and_warm_starts(
    celeba_faces, tmp_path: Path
) -> None:
    data = _face_pairs(celeba_faces)
    # a deconv checkpoint to warm-start from
    old_cfg = GeneratorConfig(ngf=4, depth=7)
    disc_cfg = DiscriminatorConfig(ndf=4, n_layers=2)
    old = save_checkpoint(
        tmp_path / "old.safetensors",
        generator=UNetGenerator(old_cfg),
        discriminator=PatchGANDiscriminator(disc_cfg),
        generator_config=old_cfg,
        discriminator_config=disc_cfg,
        step=1,
    )
    cfg = TrainConfig(
        data=DataConfig(batch_size=2, jitter_px=8, sketch_augment=1.0),
        generator=GeneratorConfig(ngf=4, depth=7, upsample="resize"),
        discriminator=disc_cfg,
        loss=LossConfig(contextual_pool_px=4, identity=5.0, face_perceptual=1.0),
        runtime=RuntimeConfig(device="cpu", precision="fp32", seed=0, threads=2),
        run=RunConfig(
            out_dir=str(tmp_path / "run"),
            max_steps=3,
            log_every=1,
            sample_every=3,
            eval_every=3,
            eval_pairs=4,
            checkpoint_every=3,
            bn_recalibration_batches=1,
            init_from=str(old),
            select_metric="val_score",
        ),
    )
    trainer = Pix2PixTrainer(cfg, data, data, show_progress=False)
    batch = trainer._batch(0)
    assert batch.chip_matrices is not None and batch.chip_matrices.shape == (2, 2, 3)
    losses = trainer.train_step(*batch)
    assert losses["G_id"] > 0 and losses["G_fperc"] > 0 and np.isfinite(losses["G_total"])
    metrics = trainer.validate()
    for key in (
        "val_ssim_fs2k",
        "val_id_cos_fs2k",
        "val_rank1_fs2k",
        "val_rank1_sketch_fs2k",
        "val_score",
    ):
        assert key in metrics, metrics
    assert 0.0 <= metrics["val_rank1_fs2k"] <= 1.0
    assert metrics["val_score"] == pytest.approx(
        metrics["val_ssim_fs2k"] + metrics["val_rank1_fs2k"]
    )
    trainer.fit()
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert best.generator_config.upsample == "resize"
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"G_id", "G_fperc", "val_rank1_fs2k"} <= set(header)


def test_trainer_cuts_identity_chips_at_the_faces_own_landmarks_when_asked(
    celeba_faces, tmp_path: Path
) -> None:
    data = _face_pairs(celeba_faces)
    cfg = TrainConfig(
        data=DataConfig(batch_size=2, jitter_px=8),
        generator=GeneratorConfig(ngf=4, depth=7, upsample="resize"),
        discriminator=DiscriminatorConfig(ndf=4, n_layers=2),
        loss=LossConfig(contextual_pool_px=4, identity=5.0, identity_chips="own"),
        runtime=RuntimeConfig(device="cpu", precision="fp32", seed=0, threads=2),
        run=RunConfig(out_dir=str(tmp_path / "run"), max_steps=1, eval_pairs=4),
    )
    trainer = Pix2PixTrainer(cfg, data, data, show_progress=False)
    losses = trainer.train_step(*trainer._batch(0))
    assert losses["G_id"] > 0 and np.isfinite(losses["G_total"])
    metrics = trainer.validate()
    assert 0.0 <= metrics["val_rank1_fs2k"] <= 1.0 and 0.0 <= metrics["val_rank1_sketch_fs2k"] <= 1
    with pytest.raises(ConfigError, match="identity_chips"):
        TrainConfig(loss=LossConfig(identity_chips="photos"))


def test_trainer_gender_loss_targets_the_undropped_gender(celeba_faces, tmp_path: Path) -> None:
    images, _ = celeba_faces
    vectors = np.zeros((len(images), 10), dtype=np.float32)
    vectors[0, 8:] = (1.0, 1.0)  # female
    vectors[1, 8:] = (1.0, -1.0)  # male; the rest unknown
    data = _face_pairs(celeba_faces, vectors)

    def config(**loss: float) -> TrainConfig:
        return TrainConfig(
            data=DataConfig(batch_size=len(images), augment=False, attribute_dropout=1.0),
            generator=GeneratorConfig(ngf=4, depth=7, upsample="resize", attribute_dim=10),
            discriminator=DiscriminatorConfig(ndf=4, n_layers=2),
            loss=LossConfig(contextual_pool_px=4, **loss),
            runtime=RuntimeConfig(device="cpu", precision="fp32", seed=0, threads=2),
            run=RunConfig(out_dir=str(tmp_path / "run"), max_steps=2),
        )

    trainer = Pix2PixTrainer(config(identity=1.0, gender=0.1), data, show_progress=False)
    rows = torch.arange(len(images))
    # the target is the photo's gender even when the request (condition) is dropped
    assert trainer._genders_for(rows).tolist() == [1.0, 0.0] + [-1.0] * (len(images) - 2)
    batch = trainer._batch(0)
    assert batch.gender is not None and sorted(batch.gender.tolist())[-2:] == [0.0, 1.0]
    losses = trainer.train_step(*batch)
    assert losses["G_gender"] > 0 and np.isfinite(losses["G_total"])
    off = Pix2PixTrainer(config(identity=1.0), data, show_progress=False)
    assert off._batch(0).gender is None and off.train_step(*off._batch(0))["G_gender"] == 0.0
    with pytest.raises(ValueError, match="loss.gender runs on the face recogniser"):
        Pix2PixTrainer(config(gender=0.1), data, show_progress=False)


def test_validation_curve_png_from_a_metrics_log(tmp_path: Path) -> None:
    from sketch2face.training.curve import plot_validation_curves, read_validation_rows

    log = tmp_path / "metrics.csv"
    log.write_text(
        "step,G_l1,val_ssim,val_ssim_fs2k,val_rank1_fs2k,val_rank1_sketch_fs2k,val_id_cos_fs2k\n"
        "10,0.3,,,,,\n"
        "20,0.2,0.41,0.38,0.10,0.50,0.88\n"
        "40,0.2,0.45,0.41,0.20,0.50,0.90\n"
        "20,0.2,0.42,0.39,0.15,0.50,0.89\n"  # resumed from step 10: step 20 logged again
    )
    rows = read_validation_rows(log)
    assert [r["step"] for r in rows] == [20.0, 40.0]
    assert rows[0]["val_ssim"] == 0.42  # the later row of a repeated step wins
    plain = plot_validation_curves(
        log, tmp_path / "plain.png", batch_size=4, reference_lines={"SSIM": 0.45}
    )
    out = plot_validation_curves(
        log, tmp_path / "curve.png", batch_size=4, reference_lines={"SSIM": 0.45}, events={30: "x"}
    )
    assert out is not None and plain is not None
    marked = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert np.abs(marked - np.asarray(Image.open(plain).convert("RGB")).astype(int)).sum() > 0
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert image.std() > 10  # something is drawn
    empty = tmp_path / "empty.csv"
    empty.write_text("step,val_ssim\n5,\n")
    assert plot_validation_curves(empty, tmp_path / "none.png", batch_size=4) is None


def test_trainer_counterfactual_rows_skip_photo_losses_and_learn_the_request(
    celeba_faces, tmp_path: Path
) -> None:
    images, _ = celeba_faces
    vectors = np.zeros((len(images), 10), dtype=np.float32)
    vectors[:, 0], vectors[:, 1:4] = 1.0, 0.3
    vectors[:, 4], vectors[:, 5:8] = 1.0, -0.7
    vectors[:, 8], vectors[:, 9] = 1.0, -1.0  # all male
    data = _face_pairs(celeba_faces, vectors)

    def trainer_with(counterfactual: float) -> Pix2PixTrainer:
        cfg = TrainConfig(
            data=DataConfig(
                batch_size=len(images),
                augment=True,
                jitter_px=8,
                attribute_dropout=0.0,
                counterfactual=counterfactual,
            ),
            generator=GeneratorConfig(ngf=4, depth=7, upsample="resize", attribute_dim=10),
            discriminator=DiscriminatorConfig(ndf=4, n_layers=2),
            loss=LossConfig(
                contextual_pool_px=4,
                ssim=1.0,
                identity=1.0,
                face_perceptual=1.0,
                gender=0.1,
                attribute=5.0,
            ),
            runtime=RuntimeConfig(device="cpu", precision="fp32", seed=0, threads=2),
            run=RunConfig(out_dir=str(tmp_path / f"run{counterfactual}"), max_steps=2),
        )
        return Pix2PixTrainer(cfg, data, show_progress=False)

    every = trainer_with(1.0)
    batch = every._batch(0)
    assert batch.counterfactual is not None and batch.counterfactual.any(dim=1).all()
    assert batch.regions is not None and batch.regions.shape == (len(images), 2, 128, 128)
    swapped = batch.counterfactual[:, 2]
    assert batch.gender is not None and (batch.gender[swapped] == 1.0).all()  # asked for a woman
    assert (batch.gender[~swapped] == 0.0).all()
    losses = every.train_step(*batch)
    # no row asks for the photo: nothing pulls toward its pixels, the request is judged instead
    assert losses["G_l1"] == 0.0 and losses["G_cx"] == 0.0 and losses["G_fperc"] == 0.0
    assert losses["G_attr"] > 0 and 0 < losses["G_ssim"] < 2 and np.isfinite(losses["G_total"])
    none = trainer_with(0.0)
    plain = none._batch(0)
    assert plain.counterfactual is None and plain.regions is not None
    losses = none.train_step(*plain)
    assert losses["G_l1"] > 0 and losses["G_fperc"] > 0 and losses["G_attr"] > 0
