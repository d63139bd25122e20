"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``) as a PyTorch module.

The architecture is dlib's ``anet_type`` (examples/dnn_face_recognition_ex.cpp): a 7x7/2 conv stem,
a 3x3/2 max pool, residual stages of 32, 64, 128, 256, 256 channels, global average pooling and a
128-D fully connected layer without bias. Batch norm was folded into per-channel affines by dlib.

``load_dlib_face_resnet`` converts the ``.dat`` file with the pure-Python reader (no dlib needed)
once and caches the state dict as safetensors, so later loads skip the parse and the checks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from sketch2face.errors import CheckpointError
from sketch2face.facemodels import FACE_RECOGNITION_RESNET, dlib_model_path
from sketch2face.identity.chips import CHIP_SIZE
from sketch2face.identity.dlib_format import DlibLayer, DlibNetwork, read_dlib_network
from sketch2face.models.checkpoint import load_weights

logger = logging.getLogger(__name__)

#: Descriptor length; dlib: same person when the Euclidean distance is below 0.6.
EMBEDDING_DIM = 128
#: Per-channel RGB means stored in the file's input layer (input_rgb_image_sized).
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
#: (channels, blocks, first block downsamples) per residual stage, input side first.
STAGES: tuple[tuple[int, int, bool], ...] = (
    (32, 3, False),
    (64, 4, True),
    (128, 3, True),
    (256, 3, True),
    (256, 1, True),
)
#: Bump when the conversion changes, so stale caches are not reused.
_CONVERTER_VERSION = "1"


class Affine(nn.Module):
    """Per-channel ``y = x * gamma + beta`` (dlib's ``affine_`` layer: batch norm folded)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma[:, None, None] + self.beta[:, None, None]


def add_zero_padded(a: Tensor, b: Tensor) -> Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, missing values count as zero.

    Channels and the bottom/right edge are padded. This matters in the 256-channel downsampling
    blocks, where the stride-2 branch (3x3, 1x1) is smaller than the pooled skip (4x4, 2x2):
    cropping instead gives a different network (cosine distance 0.44 to dlib's descriptors).
    """
    if a.shape == b.shape:
        return a + b
    channels = max(a.shape[1], b.shape[1])
    height = max(a.shape[2], b.shape[2])
    width = max(a.shape[3], b.shape[3])

    def pad(t: Tensor) -> Tensor:
        # F.pad order: (left, right, top, bottom, front, back) from the last dim backwards.
        return F.pad(t, (0, width - t.shape[3], 0, height - t.shape[2], 0, channels - t.shape[1]))

    return pad(a) + pad(b)


class ResidualBlock(nn.Module):
    """relu(branch(x) + skip(x)); branch = affine(conv(relu(affine(conv(x))))), 3x3 convs.

    A downsampling block uses a stride-2 unpadded first conv and a 2x2/2 average pool as skip,
    whose extra channels (32 -> 64 etc.) are zeros, as in dlib.
    """

    def __init__(self, in_channels: int, channels: int, *, downsample: bool) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        # dlib's con<> pads by kernel/2 only at stride 1; stride-2 convs and pools are unpadded.
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding=0 if downsample else 1)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, padding=1)
        self.affine2 = Affine(channels)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        branch = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.downsample else x  # floor mode, as dlib
        return F.relu(add_zero_padded(branch, skip))


class DlibFaceResNet(nn.Module):
    """dlib's 128-D face descriptor network.

    Input: (N, 3, 150, 150) float RGB pixel values in [0, 255] (a dlib face chip; see
    ``sketch2face.identity.chips``). Output: (N, 128) raw descriptors, not normalised (norms about
    1.4-1.6), equal to ``dlib.face_recognition_model_v1.compute_face_descriptor`` up to float
    rounding.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer(
            "mean_rgb", torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1), persistent=False
        )
        self.stem_conv = nn.Conv2d(3, 32, 7, 2, padding=0)
        self.stem_affine = Affine(32)
        stages: list[nn.Sequential] = []
        in_channels = 32
        for channels, blocks, downsample in STAGES:
            stage = [ResidualBlock(in_channels, channels, downsample=downsample)]
            stage += [
                ResidualBlock(channels, channels, downsample=False) for _ in range(blocks - 1)
            ]
            stages.append(nn.Sequential(*stage))
            in_channels = channels
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(in_channels, EMBEDDING_DIM, bias=False)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The (N, 128) descriptor and the activations after each of the 5 residual stages.

        Stage outputs: (N, 32, 35, 35), (N, 64, 17, 17), (N, 128, 8, 8), (N, 256, 4, 4),
        (N, 256, 2, 2) for a 150 px chip; usable as a perceptual identity loss.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an (N, 3, H, W) RGB tensor, got {tuple(x.shape)}")
        x = (x - self.mean_rgb) / 256.0  # dlib divides by 256, not by a std
        x = F.relu(self.stem_affine(self.stem_conv(x)))  # (N, 32, 72, 72)
        x = F.max_pool2d(x, 3, 2)  # (N, 32, 35, 35); floor mode (ceil mode drifts by 0.11)
        features: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        descriptor = self.fc(x.mean(dim=(2, 3)))
        return descriptor, features

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 150, 150) RGB in [0, 255] -> (N, 128) raw descriptors."""
        return self.forward_features(x)[0]

    @classmethod
    def from_dlib(cls, network: DlibNetwork) -> DlibFaceResNet:
        """Build the module from a parsed dlib network, checking every layer's shape and settings."""
        model = cls()
        with torch.no_grad():
            _Assigner(network).assign(model)
        return model


class _Assigner:
    """Walks the dlib layers in forward order and copies them into the matching modules."""

    def __init__(self, network: DlibNetwork) -> None:
        if network.input_size != (CHIP_SIZE, CHIP_SIZE):
            raise CheckpointError(
                f"expected a {CHIP_SIZE}x{CHIP_SIZE} input layer, got {network.input_size}; "
                "this is not dlib's face recognition ResNet."
            )
        if not np.allclose(network.input_mean_rgb, DLIB_MEAN_RGB, atol=1e-3):
            raise CheckpointError(f"unexpected input means {network.input_mean_rgb}")
        self.layers = network.layers
        self.index = 0

    def next(self, kind: str, **attrs: int) -> DlibLayer:
        if self.index >= len(self.layers):
            raise CheckpointError(f"the dlib network ended early: expected a {kind} layer")
        layer = self.layers[self.index]
        wrong = {k: (layer.attrs.get(k), v) for k, v in attrs.items() if layer.attrs.get(k) != v}
        if layer.kind != kind or wrong:
            raise CheckpointError(
                f"dlib layer {self.index} is {layer.name} {layer.attrs}, expected {kind} {attrs} "
                f"(mismatched (file, expected): {wrong}); not dlib's face recognition ResNet v1."
            )
        self.index += 1
        return layer

    def conv(self, conv: nn.Conv2d) -> None:
        stride, pad = conv.stride[0], conv.padding[0]
        assert isinstance(pad, int)
        layer = self.next(
            "con",
            filters=conv.out_channels,
            kernel_rows=conv.kernel_size[0],
            kernel_cols=conv.kernel_size[1],
            stride_y=stride,
            stride_x=stride,
            pad_y=pad,
            pad_x=pad,
        )
        _copy(conv.weight, layer.params["weight"], layer.name)
        assert conv.bias is not None
        _copy(conv.bias, layer.params["bias"], layer.name)

    def affine(self, affine: Affine) -> None:
        layer = self.next("affine", channels=affine.gamma.numel(), mode=0)  # 0: per channel
        _copy(affine.gamma, layer.params["gamma"], layer.name)
        _copy(affine.beta, layer.params["beta"], layer.name)

    def assign(self, model: DlibFaceResNet) -> None:
        self.conv(model.stem_conv)
        self.affine(model.stem_affine)
        self.next("relu")
        self.next(
            "max_pool", kernel_rows=3, kernel_cols=3, stride_y=2, stride_x=2, pad_y=0, pad_x=0
        )
        for stage in model.stages:
            for block in stage:
                assert isinstance(block, ResidualBlock)
                self.conv(block.conv1)
                self.affine(block.affine1)
                self.next("relu")
                self.conv(block.conv2)
                self.affine(block.affine2)
                if block.downsample:
                    self.next("avg_pool", kernel_rows=2, kernel_cols=2, stride_y=2, stride_x=2)
                self.next("add_prev")
                self.next("relu")
        # dlib's avg_pool_everything is an avg_pool with a 0x0 (whole image) window.
        self.next("avg_pool", kernel_rows=0, kernel_cols=0)
        fc = self.next("fc", inputs=model.fc.in_features, outputs=model.fc.out_features)
        if "bias" in fc.params:
            raise CheckpointError(f"{fc.name}: unexpected fc bias; expected fc_no_bias")
        _copy(model.fc.weight, fc.params["weight"].T, fc.name)  # dlib: y = x @ W, W (in, out)
        if self.index != len(self.layers):
            raise CheckpointError(
                f"{len(self.layers) - self.index} dlib layers left over after the fc layer"
            )


def _copy(target: Tensor, source: np.ndarray, name: str) -> None:
    if tuple(source.shape) != tuple(target.shape):
        raise CheckpointError(
            f"{name}: stored shape {source.shape} does not fit {tuple(target.shape)}"
        )
    target.copy_(torch.from_numpy(np.ascontiguousarray(source)))


def cache_dir() -> Path:
    """Where converted weights are cached: ``$SKETCH2FACE_CACHE`` or ``~/.cache/sketch2face``."""
    return Path(os.environ.get("SKETCH2FACE_CACHE") or Path.home() / ".cache" / "sketch2face")


def _cache_path(dat_path: Path) -> Path:
    # Keyed by the .dat file's path, size and mtime: a replaced file gets a fresh conversion
    # without hashing 22 MB on every load.
    stat = dat_path.stat()
    key = f"{dat_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{_CONVERTER_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "identity" / f"dlib_face_resnet_v1-{digest}.safetensors"


def _write_cache(model: DlibFaceResNet, path: Path) -> None:
    """Write atomically (temp file + rename) so concurrent loaders never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file(state, tmp, metadata={"format": "dlib-face-resnet-v1"})
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a cache may be shared
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:  # a read-only home must not stop us: convert again next time
        logger.warning("could not cache the converted dlib ResNet at %s: %s", path, exc)


def load_dlib_face_resnet(
    device: str | torch.device = "cpu", *, dat_path: str | Path | None = None
) -> DlibFaceResNet:
    """dlib's face recogniser as a frozen, eval-mode ``DlibFaceResNet`` on ``device``.

    The first call reads the ``.dat`` file (default: the one from ``face-recognition-models``) and
    caches the converted state dict; later calls load the cache. Nothing is downloaded.
    """
    path = Path(dat_path) if dat_path is not None else dlib_model_path(FACE_RECOGNITION_RESNET)
    if not path.is_file():
        read_dlib_network(path)  # raises WeightsNotFoundError with the fix
    cached = _cache_path(path)
    model: DlibFaceResNet | None = None
    if cached.is_file():
        try:
            model = DlibFaceResNet()
            load_weights(model, load_file(cached), cached, "dlib face ResNet")
        except (SafetensorError, CheckpointError, OSError) as exc:
            logger.warning("ignoring a damaged cache %s (%s); converting again", cached, exc)
            model = None
    if model is None:
        model = DlibFaceResNet.from_dlib(read_dlib_network(path))
        _write_cache(model, cached)
    model.requires_grad_(False)
    return model.eval().to(device)
