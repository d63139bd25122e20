"""DistributedDataParallel through torchrun with no code change (2 CPU processes, gloo)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np, torch
    from sketch2face.models.patchgan import DiscriminatorConfig
    from sketch2face.models.unet import GeneratorConfig
    from sketch2face.training.config import DataConfig, RunConfig, RuntimeConfig, TrainConfig, LossConfig
    from sketch2face.training.trainer import PairTensors, Pix2PixTrainer

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    data = PairTensors.from_arrays(rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8),
                                   rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8))
    cfg = TrainConfig(data=DataConfig(batch_size=2, jitter_px=2),
                      generator=GeneratorConfig(ngf=4, depth=5), discriminator=DiscriminatorConfig(ndf=4, n_layers=2),
                      loss=LossConfig(contextual_pool_px=4),
                      runtime=RuntimeConfig(device="cpu", precision="fp32", threads=1),
                      run=RunConfig(out_dir=out, max_steps=3, log_every=1, sample_every=3, eval_every=100,
                                    checkpoint_every=3))
    trainer = Pix2PixTrainer(cfg, data, show_progress=False)
    assert trainer.dist.world_size == 2
    rank = trainer.dist.rank
    net = trainer.generator.module
    trainer.fit()
    torch.save({k: v for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k},
               os.path.join(out, f"rank{rank}.pt"))
    """
)


@pytest.mark.slow
def test_torchrun_two_processes_keep_weights_in_sync(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key  # gradients were all-reduced
    assert (tmp_path / "checkpoints" / "last.safetensors").is_file()  # written by rank 0 only
    assert (tmp_path / "samples" / "step_0000003.png").is_file()
