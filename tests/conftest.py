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
