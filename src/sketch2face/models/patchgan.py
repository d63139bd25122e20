"""Conditional PatchGAN discriminator (pix2pix 70x70): judges (sketch ⊕ photo) patch by patch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Shape of the PatchGAN. ``n_layers`` = 3 gives a 70x70 receptive field."""

    in_channels: int = 6  # sketch (3) ⊕ photo (3)
    ndf: int = 64
    n_layers: int = 3

    def to_dict(self) -> dict[str, int]:
        """Plain dict for checkpoints."""
        return asdict(self)


class PatchGANDiscriminator(nn.Module):
    """Returns raw logits (N,1,h,w); use BCE-with-logits (stable form of sigmoid + BCE)."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(cfg.in_channels, cfg.ndf, 4, stride=2, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
            )
        ]
        mult = 1
        for n in range(1, cfg.n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < cfg.n_layers else 1
            layers.append(
                nn.Sequential(
                    nn.Conv2d(
                        cfg.ndf * prev, cfg.ndf * mult, 4, stride=stride, padding=1, bias=False
                    ),
                    nn.BatchNorm2d(cfg.ndf * mult),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
        self.blocks = nn.ModuleList(layers)
        self.head = nn.Conv2d(cfg.ndf * mult, 1, 4, stride=1, padding=1)

    def forward(
        self, sketch: torch.Tensor, photo: torch.Tensor, *, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        x = torch.cat([sketch, photo], dim=1)  # (N, 6, H, W)
        features: list[torch.Tensor] = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        logits = self.head(x)
        return (logits, features) if return_features else logits
