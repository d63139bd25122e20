"""Shared test fixtures (keep small; others add theirs here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ../shared beside the repository: read-only data for tests, never needed by the product.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder; tests that need it are skipped where it is absent."""
    if not (SHARED_DIR / "data" / "fixtures").is_dir():
        pytest.skip(
            f"shared test data not found at {SHARED_DIR}/data/fixtures (read-only ../shared)"
        )
    return SHARED_DIR


@pytest.fixture(autouse=True)
def _seeded_rngs() -> None:
    """Every test starts from the same Python, NumPy and torch random state, so a failure
    repeats whatever ran before it (the product's own secrets-based draws are not affected)."""
    from sketch2face.runtime import seed_everything

    seed_everything(0)


@pytest.fixture(autouse=True)
def _instance_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instance data folder of CLI commands (e.g. ``generate`` signs with its key) is a
    temporary one, never ./instance of the checkout."""
    if "SKETCH2FACE_DATA_DIR" not in os.environ:
        monkeypatch.setenv("SKETCH2FACE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "instance"))


# ---------------------------------------------------------------- tiny models (diffusers' dummy pattern)
TINY_GENERATOR = {"ngf": 4, "depth": 8, "n_dropout_blocks": 3}
TINY_DISCRIMINATOR = {"ndf": 4, "n_layers": 3}


def make_tiny_checkpoint(path: Path, *, seed: int = 0, attribute_dim: int = 0) -> Path:
    """Write a randomly initialised tiny generator+discriminator checkpoint (256-px capable)."""
    import torch

    from sketch2face.models.checkpoint import save_checkpoint
    from sketch2face.models.patchgan import DiscriminatorConfig, PatchGANDiscriminator
    from sketch2face.models.unet import GeneratorConfig, UNetGenerator

    torch.manual_seed(seed)
    gen_cfg = GeneratorConfig(**TINY_GENERATOR, attribute_dim=attribute_dim)
    disc_cfg = DiscriminatorConfig(**TINY_DISCRIMINATOR)
    generator = UNetGenerator(gen_cfg)
    # non-trivial BatchNorm statistics so eval-mode outputs are not degenerate
    for m in generator.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.uniform_(-0.1, 0.1)
    return save_checkpoint(
        path,
        generator=generator,
        discriminator=PatchGANDiscriminator(disc_cfg),
        generator_config=gen_cfg,
        discriminator_config=disc_cfg,
        step=1,
    )


def make_tiny_refiner(
    path: Path, *, seed: int = 1, direction: str = "refine", with_ema: bool = True
) -> Path:
    """Write a randomly initialised tiny refiner checkpoint as the trainer writes one
    (``data.direction`` in its config; a moving average ``generator_ema.*`` beside the weights,
    different from them, so a test can tell which one inference uses)."""
    import json

    import torch

    from sketch2face.models.checkpoint import save_checkpoint
    from sketch2face.models.patchgan import DiscriminatorConfig, PatchGANDiscriminator
    from sketch2face.models.unet import GeneratorConfig, UNetGenerator

    torch.manual_seed(seed)
    gen_cfg = GeneratorConfig(**TINY_GENERATOR, upsample="resize")
    disc_cfg = DiscriminatorConfig(**TINY_DISCRIMINATOR)
    generator, ema = UNetGenerator(gen_cfg), UNetGenerator(gen_cfg)
    for net in (generator, ema):
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.uniform_(-0.1, 0.1)
    extra = {f"generator_ema.{k}": v for k, v in ema.state_dict().items()} if with_ema else None
    return save_checkpoint(
        path,
        generator=generator,
        discriminator=PatchGANDiscriminator(disc_cfg),
        generator_config=gen_cfg,
        discriminator_config=disc_cfg,
        step=3,
        config_json=json.dumps({"data": {"direction": direction, "image_size_px": 256}}),
        extra_tensors=extra,
    )


@pytest.fixture(scope="session")
def tiny_refiner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random refiner checkpoint (``data.direction = "refine"``)."""
    return make_tiny_refiner(tmp_path_factory.mktemp("tiny_refiner") / "refiner.safetensors")


@pytest.fixture(autouse=True)
def _no_packaged_refiner(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test sees an installation without the packaged refiner and without refiner
    settings, so results do not depend on whether assets/refiner/refiner.safetensors has been
    shipped yet; tests that want a refiner pass one (``tiny_refiner``) or set these."""
    from sketch2face.refine import own

    monkeypatch.setattr(
        own,
        "DEFAULT_REFINER",
        tmp_path_factory.getbasetemp() / "no-refiner" / own.DEFAULT_REFINER.name,
    )
    monkeypatch.delenv(own.REFINER_ENV_VAR, raising=False)
    monkeypatch.delenv("SKETCH2FACE_GFPGAN_WEIGHTS", raising=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random sketch2face checkpoint (fast on CPU, real architecture)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_model") / "tiny.safetensors")


# ---------------------------------------------------------------- web database (tests/web and gallery)
@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied per test (migrating once keeps the suite fast)."""
    from sketch2face.db.engine import make_engine, upgrade_database

    path = tmp_path_factory.mktemp("db-template") / "web.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path
