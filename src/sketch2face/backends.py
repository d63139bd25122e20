"""How a ``UNetGenerator`` is run at inference: eager PyTorch, onnxruntime, or both.

Stage one (``pipeline.Sketch2Face``) and the project's refiner (``refine.own.OwnRefiner``) are
both U-Nets and run through the same backends, picked by :func:`make_backend`.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Protocol

import torch

from sketch2face.models.unet import UNetGenerator
from sketch2face.runtime import torch_seed

#: the names :func:`make_backend` accepts
BACKENDS = ("auto", "torch", "onnx")


class GeneratorBackend(Protocol):
    """Runs a generator: (N, 3, H, W) float32 in [-1, 1] -> same shape."""

    name: str

    def run(
        self, batch_t: torch.Tensor, attributes: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        """Generate one batch."""
        ...


class TorchBackend:
    """Eager PyTorch (fp32), eval mode; dropout switched on only for seeded variations."""

    name = "torch"

    def __init__(self, generator: UNetGenerator, device: torch.device) -> None:
        self.generator = generator.eval().to(device)
        self.device = device
        self._lock = threading.Lock()  # toggling dropout mutates module state

    def run(
        self, batch_t: torch.Tensor, attributes: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        """Generate one batch (dropout on, with ``seed``, only when a seed is given)."""
        x = batch_t.to(self.device)
        attrs = attributes.to(self.device) if attributes is not None else None
        with self._lock, torch.inference_mode():
            if seed is None:
                return self.generator(x, attrs).float().cpu()
            dropouts = [m for m in self.generator.modules() if isinstance(m, torch.nn.Dropout)]
            try:
                for m in dropouts:
                    m.train()
                with torch_seed(seed):
                    return self.generator(x, attrs).float().cpu()
            finally:
                for m in dropouts:
                    m.eval()


class AutoBackend:
    """CPU default: onnxruntime for canonical faces (measured 1.6-4.7x faster than eager PyTorch on
    2 cores, same pixels within 1 level: benchmarks/README.md), eager PyTorch for seeded variations,
    which need dropout at inference."""

    name = "auto(onnx+torch)"

    def __init__(self, generator: UNetGenerator, device: torch.device) -> None:
        from sketch2face.export import OnnxBackend

        self.torch = TorchBackend(generator, device)
        self.onnx = OnnxBackend.from_generator(generator, spin=False)

    def run(
        self, batch_t: torch.Tensor, attributes: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        """Canonical faces on onnxruntime, seeded variations on PyTorch."""
        backend: GeneratorBackend = self.torch if seed is not None else self.onnx
        return backend.run(batch_t, attributes, seed)


def has_onnxruntime() -> bool:
    """Whether onnxruntime can be imported here (the 'onnx' extra)."""
    return importlib.util.find_spec("onnxruntime") is not None


def make_backend(
    generator: UNetGenerator, device: torch.device, backend: str = "auto", *, seeded: bool = True
) -> GeneratorBackend:
    """The backend named ``backend`` for ``generator`` on ``device``.

    ``"auto"``: :class:`AutoBackend` on a CPU with onnxruntime installed, else PyTorch;
    ``"torch"``: :class:`TorchBackend`; ``"onnx"``: onnxruntime only (no seeded variations).
    ``seeded=False`` (a network never asked for seeded variations, such as the refiner): "auto" on
    such a CPU is onnxruntime alone, without the PyTorch copy AutoBackend keeps for seeds.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use 'auto', 'torch' or 'onnx'")
    if backend == "auto":
        backend = "auto" if device.type == "cpu" and has_onnxruntime() else "torch"
    if backend == "auto" and not seeded:
        from sketch2face.export import OnnxBackend

        return OnnxBackend.from_generator(generator, spin=False)  # as AutoBackend's
    if backend == "auto":
        return AutoBackend(generator, device)
    if backend == "torch":
        return TorchBackend(generator, device)
    from sketch2face.export import OnnxBackend

    return OnnxBackend.from_generator(generator)
