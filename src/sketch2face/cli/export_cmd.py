"""`sketch2face export`: the generator as ONNX, a checkpoint as a fp16 release, or the mean face.

``--mean-face`` stores the mean training face (the per-pixel mean of a prepared dataset's train
photos) beside the checkpoint as ``<stem>.mean_face.png``, where ``sketch2face evaluate`` finds it
and scores it as a baseline.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `export` sub-command."""
    p = subparsers.add_parser(
        "export",
        help="export the generator to ONNX, a checkpoint as a fp16 release, or its mean face",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--onnx", help="output .onnx path")
    target.add_argument(
        "--release", help="output .safetensors: both networks in fp16, no optimiser state"
    )
    target.add_argument(
        "--mean-face",
        nargs="?",
        const="",
        metavar="PNG",
        help="store the mean training face (baseline for `evaluate`) of --dataset's train split; "
        "default path: <checkpoint stem>.mean_face.png beside the checkpoint",
    )
    p.add_argument("--checkpoint", help="checkpoint (default: the packaged model)")
    p.add_argument(
        "--dataset",
        type=Path,
        metavar="DATASET_DIR",
        help="with --mean-face: the prepared dataset the model was trained on",
    )
    p.add_argument(
        "--no-check", action="store_true", help="skip the PyTorch/onnxruntime parity check"
    )
    p.set_defaults(func=run)


def _export_mean_face(args: argparse.Namespace) -> int:
    from sketch2face.errors import CheckpointError, ConfigError
    from sketch2face.evaluation.baselines import create_mean_face, mean_face_path
    from sketch2face.pipeline import resolve_checkpoint

    if args.dataset is None:
        raise ConfigError(
            "--mean-face needs --dataset DATASET_DIR: the prepared dataset whose train photos "
            "the model was trained on."
        )
    if args.mean_face:
        target = Path(args.mean_face)
    else:
        checkpoint = resolve_checkpoint(args.checkpoint)
        if not checkpoint.is_file():
            raise CheckpointError(
                f"checkpoint {checkpoint} does not exist; the mean face is stored beside it."
            )
        target = mean_face_path(checkpoint)
    path, count = create_mean_face(args.dataset, target)
    print(f"wrote {path} (mean of {count} train photos of {args.dataset})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Export, then check that onnxruntime reproduces PyTorch on a random input."""
    if args.mean_face is not None:
        return _export_mean_face(args)
    if args.dataset is not None:
        from sketch2face.errors import ConfigError

        raise ConfigError("--dataset is only used with --mean-face.")

    import torch

    from sketch2face.export import OnnxBackend, export_onnx
    from sketch2face.models.checkpoint import load_checkpoint
    from sketch2face.pipeline import resolve_checkpoint

    if args.release:
        from sketch2face.models.checkpoint import export_release

        path = export_release(resolve_checkpoint(args.checkpoint), args.release)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, fp16)")
        return 0
    generator = load_checkpoint(resolve_checkpoint(args.checkpoint)).build_generator().eval()
    path = export_onnx(generator, args.onnx)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if not args.no_check:
        x = torch.rand(1, 3, 256, 256) * 2 - 1
        with torch.no_grad():
            expected = generator(x)
        got = OnnxBackend(path).run(x, None, None)
        print(
            f"parity: max |torch - onnxruntime| = {(expected - got).abs().max().item():.2e} (in [-1, 1] units)"
        )
    return 0
