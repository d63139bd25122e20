"""ONNX export of the generator and an onnxruntime backend for the pipeline."""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from sketch2face.errors import Sketch2FaceError
from sketch2face.models.unet import UNetGenerator

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx_bytes(generator: UNetGenerator, *, size_px: int = 256) -> bytes:
    """Serialise the generator (eval mode, dynamic batch) to ONNX bytes."""
    generator = generator.eval()
    cfg = generator.cfg
    sketch = torch.zeros(1, cfg.in_channels, size_px, size_px)
    args: tuple[torch.Tensor, ...] = (sketch,)
    names = ["sketch"]
    if cfg.attribute_dim > 0:
        args = (sketch, torch.zeros(1, cfg.attribute_dim))
        names.append("attributes")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            generator,
            args,
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=["face"],
            dynamic_axes={
                "sketch": {0: "batch", 2: "height", 3: "width"},
                "face": {0: "batch", 2: "height", 3: "width"},
                **({"attributes": {0: "batch"}} if cfg.attribute_dim > 0 else {}),
            },
        )
    return buf.getvalue()


def export_onnx(
    generator: UNetGenerator, path: str | os.PathLike[str], *, size_px: int = 256
) -> Path:
    """Write the generator as an ONNX file (input ``sketch`` (N,3,256,256) in [-1,1] -> ``face``)."""
    from sketch2face.imaging import atomic_write_bytes

    return atomic_write_bytes(path, export_onnx_bytes(generator, size_px=size_px))


class OnnxBackend:
    """Pipeline backend on onnxruntime (CPU, all graph optimisations)."""

    name = "onnx"

    def __init__(
        self, model: bytes | str | os.PathLike[str], *, threads: int = 0, spin: bool = True
    ) -> None:
        """``threads``: intra-op threads (0 = onnxruntime's default, the physical cores).

        ``spin=False`` lets idle worker threads sleep instead of busy-waiting between operators:
        on a CPU shared with other work (web workers, training) this was 1.4-1.9x faster with 2
        threads in ``benchmarks/bench_generate.py``; on a dedicated machine spinning may win.
        """
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise Sketch2FaceError(
                "the onnx backend needs onnxruntime: pip install 'sketch2face[onnx]'"
            ) from exc
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    @classmethod
    def from_generator(
        cls, generator: UNetGenerator, *, threads: int = 0, spin: bool = True
    ) -> OnnxBackend:
        """Export in memory and open a session."""
        return cls(export_onnx_bytes(generator), threads=threads, spin=spin)

    def run(
        self, batch_t: torch.Tensor, attributes: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        if seed is not None:
            raise Sketch2FaceError(
                "seeded variations need dropout at inference: use the torch backend"
            )
        feeds = {"sketch": batch_t.float().numpy()}
        if "attributes" in self.input_names:
            n = batch_t.shape[0]
            dim = self.session.get_inputs()[self.input_names.index("attributes")].shape[1]
            # all-zero vector = every attribute unspecified (sketch2face.attributes)
            attrs = attributes if attributes is not None else torch.zeros(n, int(dim))
            feeds["attributes"] = attrs.float().numpy()
        (out,) = self.session.run(["face"], feeds)
        return torch.from_numpy(np.asarray(out))
