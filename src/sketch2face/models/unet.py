"""U-Net generator of Pix2pix (Isola et al. 2017), written top to bottom rather than recursively.

Encoder block: Conv2d(4, stride 2) - BatchNorm - LeakyReLU(0.2)  (no norm on the first block)
Decoder block: ConvTranspose2d(4, stride 2) - BatchNorm - Dropout - ReLU, concatenated with the
mirrored encoder output (skip connection). The last layer maps to 3 channels with tanh.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


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


class DecoderBlock(nn.Module):
    """ConvTranspose(4, s2) - BatchNorm - [Dropout] - ReLU: doubles the resolution."""

    def __init__(self, in_ch: int, out_ch: int, *, dropout: float) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False)
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
            self.decoder.append(DecoderBlock(in_ch, out_ch, dropout=drop))
            in_ch = out_ch * 2
        self.head = nn.Sequential(
            nn.ConvTranspose2d(in_ch, cfg.out_channels, 4, stride=2, padding=1), nn.Tanh()
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
