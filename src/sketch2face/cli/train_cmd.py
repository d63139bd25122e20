"""`sketch2face train`: Pix2pix training from a TOML config with overrides; resumable."""

from __future__ import annotations

import argparse
import dataclasses
import logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `train` sub-command."""
    p = subparsers.add_parser(
        "train",
        help="train the Pix2pix model (resumes from <out_dir>/checkpoints/last.safetensors)",
        description="Train Pix2pix. Multi-GPU: torchrun --nproc_per_node=N -m sketch2face.cli.main train ...",
    )
    p.add_argument("--config", help="TOML config (see configs/); defaults when omitted")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set run.max_steps=100 (repeatable)",
    )
    p.add_argument("--dataset", help="shortcut for --set data.dataset_dir=...")
    p.add_argument("--out", help="shortcut for --set run.out_dir=...")
    p.add_argument(
        "--finalize",
        action="store_true",
        help="load <out_dir>/checkpoints/last.safetensors, re-estimate BatchNorm statistics, "
        "write final.safetensors and stop",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the trainer from the config and train to run.max_steps."""
    from sketch2face.errors import Sketch2FaceError
    from sketch2face.training.config import load_config
    from sketch2face.training.data import load_pairs
    from sketch2face.training.trainer import Pix2PixTrainer

    overrides = list(args.overrides)
    if args.dataset:
        overrides.append(f"data.dataset_dir={args.dataset}")
    if args.out:
        overrides.append(f"run.out_dir={args.out}")
    cfg = load_config(args.config, overrides)
    face_chips = cfg.loss.identity > 0 or cfg.loss.face_perceptual > 0
    train = load_pairs(cfg.data, cfg.data.train_split, face_chips=face_chips)
    try:
        val = load_pairs(
            dataclasses.replace(cfg.data, oversample=()), cfg.data.val_split, face_chips=face_chips
        )
    except Exception as exc:  # a dataset without a val split still trains
        log.warning("no validation data (%s); training without validation", exc)
        val = None
    trainer = Pix2PixTrainer(cfg, train, val, show_progress=not args.no_progress)
    log.info(
        "training %s params generator on %s (%s), %d pairs, step %d -> %d, out %s",
        f"{trainer.generator.num_parameters() if hasattr(trainer.generator, 'num_parameters') else '?'}",
        trainer.device,
        trainer.amp_dtype,
        len(train),
        trainer.step,
        cfg.run.max_steps,
        cfg.run.out_dir,
    )
    if args.finalize:
        if trainer.step == 0:
            raise Sketch2FaceError(
                f"nothing to finalize: no checkpoint in {cfg.run.out_dir}/checkpoints"
            )
        trainer.recalibrate_batchnorm()
        path = trainer.save(
            trainer.out_dir / "checkpoints" / "final.safetensors", trainer.validate()
        )
        print(f"wrote {path} (step {trainer.step}, BatchNorm statistics re-estimated)")
        return 0
    losses = trainer.fit()
    if trainer.dist.is_main_process:
        print(
            f"done: step {trainer.step}, last losses {losses}; checkpoints in {cfg.run.out_dir}/checkpoints"
        )
    return 0
