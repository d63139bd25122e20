"""U-Net generator of Pix2pix (Isola et al. 2017), written top to bottom rather than recursively.

Encoder block: Conv2d(4, stride 2) - BatchNorm - LeakyReLU(0.2)  (no norm on the first block)
Decoder block: ConvTranspose2d(4, stride 2) - BatchNorm - Dropout - ReLU, concatenated with the
mirrored encoder output (skip connection). The last layer maps to 3 channels with tanh.

``upsample="resize"`` replaces every ConvTranspose2d by nearest-neighbour x2 upsampling and a 3x3
convolution (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016): a stride-2
transposed convolution applies a different kernel to even and odd output pixels, which prints a
period-2 grid that compounds over seven decoder levels; a resize-convolution cannot.
:func:`resize_conv_from_deconv` turns trained ConvTranspose weights into the closest resize-conv
weights, so a pix2pix model can be warm-started into the grid-free decoder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

#: decoder upsampling layers: the pix2pix transposed convolution, or upsample + 3x3 convolution
UPSAMPLE_MODES = ("deconv", "resize")


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of the U-Net. ``depth`` down-samplings: 8 takes 256 px to 1x1 (pix2pix unet_256)."""

    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 32  # width of the first layer; 64 is the paper's (54M params), 32 is 4x cheaper
    depth: int = 8
    max_mult: int = 8  # channel multiplier cap: ngf * min(2**i, max_mult)
    dropout: float = 0.5  # pix2pix uses dropout as its noise source
    n_dropout_blocks: int = 3  # innermost decoder blocks that get dropout
    attribute_dim: int = (
        0  # >0: attribute vector injected at the bottleneck (zero-init, see issue 7)
    )
    upsample: str = "deconv"  # "deconv" (pix2pix) | "resize" (no checkerboard grid)

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(
                f"generator.upsample must be one of {UPSAMPLE_MODES}, not {self.upsample!r}"
            )

    def to_dict(self) -> dict[str, int | float]:
        """Plain dict for checkpoints."""
        return asdict(self)


def _channels(cfg: GeneratorConfig, level: int) -> int:
    return cfg.ngf * min(2**level, cfg.max_mult)


class EncoderBlock(nn.Module):
    """Conv(4, s2) - [BatchNorm] - LeakyReLU: halves the resolution."""

    def __init__(self, in_ch: int, out_ch: int, *, norm: bool) -> None:
        super().__init__()
        # bias is redundant before BatchNorm
        self.conv = nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=not norm)
        self.norm = nn.BatchNorm2d(out_ch) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ResizeConv(nn.Module):
    """Nearest-neighbour x2 upsampling then Conv(3, s1): the same kernel for every output pixel."""

    def __init__(self, in_ch: int, out_ch: int, *, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=1, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


def upsampler(in_ch: int, out_ch: int, mode: str, *, bias: bool) -> nn.Module:
    """The decoder's x2 upsampling layer for ``mode`` (see :data:`UPSAMPLE_MODES`)."""
    if mode == "resize":
        return ResizeConv(in_ch, out_ch, bias=bias)
    return nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=bias)


# How the 3 taps (c0, c1, c2) of a 3x3 conv after nearest x2 upsampling act on the input, per output
# parity, next to a k4-s2-p1 transposed conv's taps (W0..W3). Even outputs see x[i-1], x[i]:
# resize gives c0, c1 + c2 where deconv gives W3, W1; odd outputs see x[i], x[i+1]: c0 + c1, c2 vs
# W2, W0. Rows of this matrix: the resize-conv tap sums in the order (W3, W1, W2, W0).
_RESIZE_TAPS_1D = torch.tensor(
    [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
)
_DECONV_TAP_ORDER = [3, 1, 2, 0]


def resize_conv_from_deconv(deconv_weight: torch.Tensor) -> torch.Tensor:
    """Least-squares 3x3 resize-conv weights (out, in, 3, 3) closest to a k4-s2-p1 ConvTranspose2d.

    ``deconv_weight`` has ConvTranspose2d's layout (in, out, 4, 4). The transposed conv is four
    2x2 kernels, one per output parity; the resize-conv is one 3x3 kernel seen through the
    nearest upsampling. The fit keeps what the four phases share (the picture) and drops what
    differs between them (the checkerboard), so a warm-started decoder starts close to the old one.
    """
    if deconv_weight.ndim != 4 or deconv_weight.shape[-2:] != (4, 4):
        raise ValueError(
            f"expected a (in, out, 4, 4) ConvTranspose2d weight, got {tuple(deconv_weight.shape)}"
        )
    taps_2d = torch.kron(_RESIZE_TAPS_1D, _RESIZE_TAPS_1D)  # (16, 9): 3x3 kernel -> phase taps
    order = torch.tensor(_DECONV_TAP_ORDER)
    w = deconv_weight.double()[:, :, order][:, :, :, order]  # (in, out, 4, 4) in phase order
    target = w.reshape(*w.shape[:2], 16)  # (in, out, 16)
    kernel = target @ torch.linalg.pinv(taps_2d).T  # (in, out, 9)
    return kernel.reshape(*w.shape[:2], 3, 3).transpose(0, 1).contiguous().to(deconv_weight.dtype)


def convert_decoder_state(
    state: dict[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Map a deconv U-Net state dict onto ``model``'s resize-conv layers (other keys unchanged).

    For every ``<prefix>.weight`` of shape (in, out, 4, 4) whose target is ``<prefix>.conv.weight``
    in ``model``, the least-squares resize-conv kernel is used; biases move with it.
    """
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix = key.rsplit(".", 1)[0]
        leaf = key.rsplit(".", 1)[1]
        target = f"{prefix}.conv.{leaf}"
        if key not in own and target in own:
            out[target] = resize_conv_from_deconv(value) if leaf == "weight" else value
        else:
            out[key] = value
    return out


class DecoderBlock(nn.Module):
    """Upsample(x2) - BatchNorm - [Dropout] - ReLU: doubles the resolution."""

    def __init__(
        self, in_ch: int, out_ch: int, *, dropout: float, upsample: str = "deconv"
    ) -> None:
        super().__init__()
        # "deconv" keeps the attribute name of the pix2pix checkpoints
        self.deconv = upsampler(in_ch, out_ch, upsample, bias=False)
        self.norm = nn.BatchNorm2d(out_ch)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dropout(self.norm(self.deconv(x))))


class UNetGenerator(nn.Module):
    """Sketch (N,3,H,W) in [-1,1] -> photo (N,3,H,W) in [-1,1]; H, W divisible by 2**depth."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if cfg.depth < 2:
            raise ValueError("GeneratorConfig.depth must be >= 2")
        self.cfg = cfg
        enc_ch = [_channels(cfg, i) for i in range(cfg.depth)]
        self.encoder = nn.ModuleList()
        prev = cfg.in_channels
        for i, ch in enumerate(enc_ch):
            # pix2pix: no norm on the outermost block, nor on the innermost (1x1: BN over one pixel)
            self.encoder.append(EncoderBlock(prev, ch, norm=0 < i < cfg.depth - 1))
            prev = ch
        self.attribute_proj: nn.Linear | None = None
        if cfg.attribute_dim > 0:
            self.attribute_proj = nn.Linear(cfg.attribute_dim, enc_ch[-1])
            # zero-init: a warm-started model behaves exactly as before until trained
            nn.init.zeros_(self.attribute_proj.weight)
            nn.init.zeros_(self.attribute_proj.bias)
        self.decoder = nn.ModuleList()
        # decoder level j mirrors encoder level depth-2-j; input = previous decoder out ⊕ skip
        in_ch = enc_ch[-1]
        for j in range(cfg.depth - 1):
            out_ch = enc_ch[cfg.depth - 2 - j]
            drop = cfg.dropout if j < cfg.n_dropout_blocks else 0.0
            self.decoder.append(DecoderBlock(in_ch, out_ch, dropout=drop, upsample=cfg.upsample))
            in_ch = out_ch * 2
        self.head = nn.Sequential(
            upsampler(in_ch, cfg.out_channels, cfg.upsample, bias=True), nn.Tanh()
        )

    def forward(self, sketch: torch.Tensor, attributes: torch.Tensor | None = None) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        x = sketch
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        if self.attribute_proj is not None and attributes is not None:
            # (N, C) -> (N, C, 1, 1) broadcast over the bottleneck
            x = x + self.attribute_proj(attributes.to(x.dtype))[:, :, None, None]
        skips.pop()  # the bottleneck itself is not concatenated
        for block in self.decoder:
            x = block(x)
            x = torch.cat([x, skips.pop()], dim=1)
        return self.head(x)

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
