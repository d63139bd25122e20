"""`sketch2face export --onnx model.onnx`: the generator as an ONNX file."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `export` sub-command."""
    p = subparsers.add_parser(
        "export", help="export the generator to ONNX, or a checkpoint as a fp16 release"
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--onnx", help="output .onnx path")
    target.add_argument(
        "--release", help="output .safetensors: both networks in fp16, no optimiser state"
    )
    p.add_argument("--checkpoint", help="checkpoint (default: the packaged model)")
    p.add_argument(
        "--no-check", action="store_true", help="skip the PyTorch/onnxruntime parity check"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export, then check that onnxruntime reproduces PyTorch on a random input."""
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
