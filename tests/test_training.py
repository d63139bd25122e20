"""A few real training steps on CPU: losses go down, checkpoints resume exactly, CLI works."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sketch2face.errors import ConfigError
from sketch2face.models.checkpoint import load_checkpoint
from sketch2face.models.patchgan import DiscriminatorConfig
from sketch2face.models.unet import GeneratorConfig
from sketch2face.training.config import (
    DataConfig,
    LossConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
    load_config,
)
from sketch2face.training.trainer import PairTensors, Pix2PixTrainer, paired_jitter

SIZE = 32


def _fixture_pairs(shared_dir: Path) -> PairTensors:
    folder = shared_dir / "data" / "fixtures" / "fs2k_test"
    sketches, photos = [], []
    for sketch_path in sorted(folder.glob("*_sketch*_*.jpg"))[:4]:
        stem = sketch_path.name.split("_")
        photo_path = (
            folder
            / f"{stem[0]}_{stem[1].replace('sketch', 'photo')}_{stem[2].replace('sketch', 'image')}"
        )
        for path, out in ((sketch_path, sketches), (photo_path, photos)):
            img = Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)
            out.append(np.asarray(img))
    return PairTensors.from_arrays(np.stack(sketches), np.stack(photos), manifest_sha256="fixture")


def _cfg(out_dir: Path, **run: float) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(batch_size=2, augment=True, jitter_px=4),
        generator=GeneratorConfig(ngf=8, depth=5),
        discriminator=DiscriminatorConfig(ndf=8, n_layers=2),
        loss=LossConfig(contextual_pool_px=4),
        runtime=RuntimeConfig(device="cpu", precision="fp32", seed=3, threads=2),
        run=RunConfig(
            out_dir=str(out_dir),
            **(
                {
                    "max_steps": 6,
                    "log_every": 1,
                    "sample_every": 3,
                    "eval_every": 3,
                    "eval_pairs": 2,
                    "checkpoint_every": 3,
                }
                | run
            ),
        ),
    )


def test_paired_jitter_keeps_sketch_and_photo_aligned() -> None:
    x = torch.rand(4, 3, 32, 32)
    a, b = paired_jitter(x.clone(), x.clone(), 6, torch.Generator().manual_seed(0))
    assert a.shape == b.shape == (4, 3, 32, 32)
    assert torch.equal(a, b)  # identical inputs stay identical: same flip and crop on both


def test_losses_go_down(shared_dir: Path, tmp_path: Path) -> None:
    data = _fixture_pairs(shared_dir)
    cfg = _cfg(tmp_path, max_steps=40)
    cfg = TrainConfig(
        **{
            **cfg.__dict__,
            "data": DataConfig(batch_size=4, augment=False),
            "optim": cfg.optim.__class__(lr_g=1e-3, lr_d=2e-4, decay_start_fraction=1.0),
        }
    )
    trainer = Pix2PixTrainer(cfg, data, show_progress=False)
    batch = trainer._batch(0)
    l1 = [trainer.train_step(batch.sketch, batch.photo)["G_l1"] for _ in range(40)]
    assert np.mean(l1[-5:]) < 0.7 * np.mean(l1[:5]), l1


def test_fit_writes_logs_samples_checkpoints_and_resumes_exactly(
    shared_dir: Path, tmp_path: Path
) -> None:
    data = _fixture_pairs(shared_dir)
    # uninterrupted run of 6 steps
    full = Pix2PixTrainer(_cfg(tmp_path / "full"), data, data, show_progress=False)
    full.fit()
    # interrupted at step 3, then resumed to 6 by a fresh trainer
    part = Pix2PixTrainer(_cfg(tmp_path / "part"), data, data, show_progress=False)
    part.fit(stop_at_step=3)  # as if interrupted right after the step-3 checkpoint
    resumed = Pix2PixTrainer(_cfg(tmp_path / "part"), data, data, show_progress=False)
    assert resumed.step == 3
    resumed.fit()
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.safetensors")
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.safetensors")
    assert a.step == b.step == 6
    for key, value in a.group("generator").items():
        assert torch.allclose(value, b.group("generator")[key], atol=1e-5), key
    # outputs written
    rows = list(csv.DictReader((tmp_path / "full" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[2]["val_ssim"] and -1 <= float(rows[2]["val_ssim"]) <= 1
    assert (tmp_path / "full" / "samples" / "step_0000003.png").is_file()
    assert (tmp_path / "full" / "checkpoints" / "best.safetensors").is_file()
    assert a.config["generator"]["ngf"] == 8 and a.manifest_sha256 == "fixture"
    sheet = Image.open(tmp_path / "full" / "samples" / "step_0000006.png")
    assert sheet.size[0] > 3 * 256  # three columns: sketch | generated | real


def test_every_validation_can_keep_its_checkpoint(shared_dir: Path, tmp_path: Path) -> None:
    data = _fixture_pairs(shared_dir)
    cfg = _cfg(tmp_path, max_steps=4, eval_every=2)
    cfg = TrainConfig(
        **{**cfg.__dict__, "run": RunConfig(**{**cfg.run.__dict__, "keep_validated": True})}
    )
    Pix2PixTrainer(cfg, data, data, show_progress=False).fit()
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.safetensors"))
    assert kept == ["step_0000002.safetensors", "step_0000004.safetensors"]
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "step_0000002.safetensors")
    assert ckpt.step == 2 and "val_ssim" in ckpt.metrics


def test_checkpoint_reloads_to_same_outputs(shared_dir: Path, tmp_path: Path) -> None:
    data = _fixture_pairs(shared_dir)
    trainer = Pix2PixTrainer(_cfg(tmp_path, max_steps=2), data, show_progress=False)
    trainer.fit()
    expected = trainer.generate(data.sketches[:2])
    generator = load_checkpoint(trainer.last_checkpoint_path).build_generator().eval()
    x = data.sketches[:2].permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        got = (
            ((generator(x).clamp(-1, 1) + 1) * 127.5)
            .round()
            .to(torch.uint8)
            .permute(0, 2, 3, 1)
            .numpy()
        )
    assert all(np.abs(e.astype(int) - g.astype(int)).max() <= 1 for e, g in zip(expected, got))


def test_ssim_term_is_trained_and_an_older_metrics_log_is_upgraded(
    shared_dir: Path, tmp_path: Path
) -> None:
    data = _fixture_pairs(shared_dir)
    cfg = _cfg(tmp_path, max_steps=2, eval_every=100, sample_every=100)
    cfg = TrainConfig(**{**cfg.__dict__, "loss": LossConfig(contextual_pool_px=4, ssim=10.0)})
    # a log written before the SSIM term existed: its rows must survive under the new header
    old_header = "step,time_s,images_per_s,lr_g,D_real,D_fake,G_gan,G_l1,G_cx,G_total,val_ssim\n"
    (tmp_path / "metrics.csv").write_text(
        old_header + "0,1.0,2.0,0.0002,0.5,0.5,1.0,0.3,2.0,33.0,0.41\n"
    )
    Pix2PixTrainer(cfg, data, data, show_progress=False).fit()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [0, 1, 2]
    assert rows[0]["G_l1"] == "0.3" and rows[0]["val_ssim"] == "0.41" and rows[0]["G_ssim"] == ""
    for row in rows[1:]:
        assert 0.0 < float(row["G_ssim"]) <= 2.0  # 1 - SSIM of an untrained generator
    ssim_off = Pix2PixTrainer(_cfg(tmp_path / "off", max_steps=1), data, show_progress=False)
    batch = ssim_off._batch(0)
    assert ssim_off.train_step(batch.sketch, batch.photo)["G_ssim"] == 0.0  # off: not computed


def test_spectrum_and_line_terms_are_logged_and_weighted_into_the_generator_loss(
    shared_dir: Path, tmp_path: Path
) -> None:
    data = _fixture_pairs(shared_dir)
    base = _cfg(tmp_path / "on", max_steps=1)
    on = TrainConfig(
        **{**base.__dict__, "loss": LossConfig(contextual_pool_px=4, spectrum=5.0, dark_lines=50.0)}
    )
    trainer = Pix2PixTrainer(on, data, show_progress=False)
    batch = trainer._batch(0)
    losses = trainer.train_step(batch.sketch, batch.photo)
    assert losses["G_spec"] > 0.05  # an untrained generator's faces lack the photos' detail
    assert losses["G_line"] >= 0.0 and losses["G_bright"] >= 0.0
    parts = (
        losses["G_gan"]
        + 100.0 * losses["G_l1"]
        + losses["G_cx"]
        + 5.0 * losses["G_spec"]
        + 50.0 * losses["G_line"]
        + 20.0 * losses["G_bright"]
    )  # LossConfig defaults: gan 1, l1 100, contextual 1; ssim, identity ... off
    assert losses["G_total"] == pytest.approx(parts, rel=2e-2)
    off = Pix2PixTrainer(_cfg(tmp_path / "off", max_steps=1), data, show_progress=False)
    off_losses = off.train_step(batch.sketch, batch.photo)
    assert off_losses["G_spec"] == off_losses["G_line"] == off_losses["G_bright"] == 0.0


def test_keep_structure_is_for_refiner_runs_only() -> None:
    with pytest.raises(ConfigError, match="keep_structure"):
        TrainConfig(loss=LossConfig(keep_structure=10.0))  # a sketch -> photo run
    with pytest.raises(ConfigError, match="dark_line_width_px"):
        TrainConfig(loss=LossConfig(dark_lines=100.0, dark_line_width_px=0))
    with pytest.raises(ConfigError, match="sigma"):
        TrainConfig(
            data=DataConfig(direction="refine"),
            loss=LossConfig(keep_structure=10.0, keep_structure_sigma_px=0.0),
        )
    cfg = TrainConfig(data=DataConfig(direction="refine"), loss=LossConfig(keep_structure=10.0))
    assert cfg.loss.keep_structure == 10.0


def test_a_resumed_run_drops_log_rows_of_the_steps_it_redoes(
    shared_dir: Path, tmp_path: Path
) -> None:
    data = _fixture_pairs(shared_dir)
    cfg = _cfg(tmp_path, max_steps=5, eval_every=100, sample_every=100, checkpoint_every=3)
    Pix2PixTrainer(cfg, data, show_progress=False).fit(stop_at_step=3)
    log_path = tmp_path / "metrics.csv"
    before = list(csv.DictReader(log_path.open()))
    assert [int(r["step"]) for r in before] == [1, 2, 3]
    # the run went on to step 4 and was killed before its next checkpoint (step 6)
    with log_path.open("a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(before[0])).writerow({"step": 4, "time_s": 999.0})
    resumed = Pix2PixTrainer(cfg, data, show_progress=False)
    assert resumed.step == 3
    resumed.fit()
    rows = list(csv.DictReader(log_path.open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]  # step 4 once: the redone one
    assert rows[:3] == before and rows[3]["time_s"] != "999.0"


def test_config_overrides_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[generator]\nngf = 16\n[run]\nmax_steps = 5\n")
    cfg = load_config(
        path, ["optim.lr_g=0.001", "data.augment=false", "data.oversample=fs2k:3,celeba:1"]
    )
    assert cfg.generator.ngf == 16 and cfg.run.max_steps == 5 and cfg.optim.lr_g == 0.001
    assert cfg.data.augment is False and cfg.data.oversample == ("fs2k:3", "celeba:1")
    with pytest.raises(ConfigError, match="unknown config key 'generator.width'"):
        load_config(path, ["generator.width=3"])
    with pytest.raises(ConfigError, match="cannot use"):
        load_config(path, ["run.max_steps=lots"])


def test_shipped_configs_load() -> None:
    for path in Path(__file__).resolve().parents[1].joinpath("configs").glob("*.toml"):
        assert load_config(path).generator.ngf > 0


def test_generator_moving_average_is_saved_resumed_and_used_for_inference(
    shared_dir: Path, tmp_path: Path
) -> None:
    data = _fixture_pairs(shared_dir)
    cfg = _cfg(tmp_path / "ema", max_steps=6, ema_decay=0.5)
    trainer = Pix2PixTrainer(cfg, data, data, show_progress=False)
    start = {k: v.clone() for k, v in trainer.generator_ema.state_dict().items()}
    trainer.fit(stop_at_step=3)
    assert trainer.ema_updates == 3
    raw = dict(trainer.generator.named_parameters())
    moved = [
        name
        for name, avg in trainer.generator_ema.named_parameters()
        if not torch.allclose(avg, start[name]) and not torch.allclose(avg, raw[name])
    ]
    assert moved  # the average lies away from both its start and the trained weights
    # resume restores the average exactly and keeps counting
    resumed = Pix2PixTrainer(cfg, data, data, show_progress=False)
    assert resumed.ema_updates == 3
    for name, avg in resumed.generator_ema.state_dict().items():
        assert torch.equal(avg, trainer.generator_ema.state_dict()[name]), name
    resumed.fit()
    ckpt = load_checkpoint(tmp_path / "ema" / "checkpoints" / "last.safetensors")
    assert ckpt.has_ema and ckpt.metrics["ema_updates"] == 6
    # inference (pipeline, evaluate, export) builds the average, the raw weights on request
    ema_net, raw_net = ckpt.build_generator(), ckpt.build_generator(prefer_ema=False)
    first = next(iter(ckpt.group("generator_ema")))
    assert torch.equal(ema_net.state_dict()[first], ckpt.group("generator_ema")[first])
    assert not torch.equal(ema_net.state_dict()[first], raw_net.state_dict()[first])


def test_moving_average_decay_is_checked(shared_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ema_decay"):
        Pix2PixTrainer(
            _cfg(tmp_path, ema_decay=1.0), _fixture_pairs(shared_dir), show_progress=False
        )


def test_structure_ssim_ignores_colour_and_brightness_but_not_edges() -> None:
    from sketch2face.models.losses import structure_ssim_map

    gen = torch.Generator().manual_seed(0)
    base = F.avg_pool2d(torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1, 3, 1, 1)
    recoloured = (base * 0.9 + torch.tensor([0.3, -0.1, -0.2]).view(1, 3, 1, 1)).clamp(-1, 1)
    moved = base.roll(5, dims=-1)
    assert structure_ssim_map(base, base).mean() > 0.999
    assert structure_ssim_map(recoloured, base).mean() > 0.95
    assert structure_ssim_map(moved, base).mean() < 0.5


def test_region_colour_loss_is_zero_at_the_request_and_pulls_toward_it() -> None:
    from sketch2face.models.losses import region_colour_loss

    fake = torch.zeros(2, 3, 16, 16, requires_grad=True)
    masks = torch.zeros(2, 2, 16, 16)
    masks[:, 0, 8:, :8] = 1.0
    masks[:, 1, :4, 4:12] = 1.0
    targets = torch.tensor(
        [[[0.5, 0.0, -0.5], [0.0, 0.0, 0.0]], [[0.2, 0.2, 0.2], [-1.0, -1.0, -1.0]]]
    )
    known = torch.tensor([[True, False], [False, True]])
    loss = region_colour_loss(fake, masks, targets, known)
    assert loss.item() == pytest.approx((1.0 / 3 + 1.0) / 2)
    loss.backward()
    assert (
        fake.grad is not None and fake.grad[0, :, :4].abs().sum() == 0
    )  # unrequested hair: no pull
    assert fake.grad[1, 0, 0, 5] > 0 and fake.grad[0, 0, 10, 2] < 0  # darker hair, redder skin
    assert region_colour_loss(fake, masks, targets, torch.zeros_like(known)).item() == 0.0
    exact = torch.zeros(1, 3, 16, 16)
    exact[0, :, 8:, :8] = torch.tensor([0.5, 0.0, -0.5]).view(3, 1, 1)
    assert region_colour_loss(exact, masks[:1], targets[:1], known[:1]).item() == pytest.approx(
        0.0, abs=1e-6
    )
