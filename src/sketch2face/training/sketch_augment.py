"""Sketch-style augmentation: make one drawing look like many artists drew it.

The model is judged on sketches by artists it never saw, while it trains on three FS2K styles and
two OpenCV styles. These random, sketch-only changes (the photo target stays as it is) cover the
ways drawings differ: stroke width (ink dilated or thinned), pencil pressure (gamma / contrast),
softness (blur), paper tone and grain, and unfinished drawings (strokes faded out in patches).
All work on a batch in [-1, 1] with a seeded generator, so a training step stays reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pick(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="replicate"),
        kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
        groups=c,
    )
    return F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="replicate"),
        kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
        groups=c,
    )


def augment_sketches(
    sketch: torch.Tensor, generator: torch.Generator, *, strength: float = 1.0
) -> torch.Tensor:
    """Randomly restyle a batch of sketches (N, 3, H, W) in [-1, 1]; returns a new tensor.

    ``strength`` scales every probability (0 = unchanged, 1 = the defaults below: each change is
    applied to 20-35% of the sketches, independently, so about a fifth stay untouched).
    """
    if strength <= 0:
        return sketch
    n = sketch.shape[0]
    paper = (sketch.float() + 1.0) * 0.5  # 1 = paper, 0 = ink

    # stroke width: a 3x3 min-filter spreads the ink (thicker pencil), a max-filter thins it
    thicker = _pick(n, 0.2 * strength, generator)
    thinner = _pick(n, 0.15 * strength, generator) & ~thicker
    if thicker.any():
        paper[thicker] = -F.max_pool2d(-paper[thicker], 3, stride=1, padding=1)
    if thinner.any():
        # blend with the original so fine strokes fade instead of vanishing
        thin = F.max_pool2d(paper[thinner], 3, stride=1, padding=1)
        paper[thinner] = 0.5 * (thin + paper[thinner])

    # softness: a Gaussian blur (sigma 0.6-1.4 px at 256)
    blur = _pick(n, 0.2 * strength, generator)
    if blur.any():
        sigma = float(_uniform(1, 0.6, 1.4, generator)) * sketch.shape[-1] / 256.0
        paper[blur] = _gaussian_blur(paper[blur], max(sigma, 0.3))

    # unfinished drawing: ink faded in smooth random patches
    partial = _pick(n, 0.25 * strength, generator)
    if partial.any():
        k = int(partial.sum())
        coarse = _uniform(k * 36, 0.25, 1.0, generator).view(k, 1, 6, 6)
        mask = F.interpolate(coarse, size=sketch.shape[-2:], mode="bicubic", align_corners=False)
        paper[partial] = 1.0 - (1.0 - paper[partial]) * mask.clamp(0.0, 1.0)

    # pencil pressure: gamma on the ink (light to heavy) and ink darkness
    pressure = _pick(n, 0.35 * strength, generator)
    if pressure.any():
        k = int(pressure.sum())
        gamma = torch.exp(_uniform(k, -0.6, 0.6, generator)).view(k, 1, 1, 1)
        darkness = _uniform(k, 0.6, 1.0, generator).view(k, 1, 1, 1)
        ink = (1.0 - paper[pressure]).clamp(0.0, 1.0) ** gamma
        paper[pressure] = 1.0 - ink * darkness

    # paper: a tint (cream / grey) and a fine grain
    tone = _pick(n, 0.3 * strength, generator)
    if tone.any():
        k = int(tone.sum())
        level = _uniform(k, 0.82, 1.0, generator).view(k, 1, 1, 1)
        warmth = _uniform(k, 0.0, 0.06, generator).view(k, 1, 1, 1)
        tint = torch.cat([level, level - warmth * 0.5, level - warmth], dim=1)
        paper[tone] = paper[tone] * tint
    grain = _pick(n, 0.25 * strength, generator)
    if grain.any():
        k = int(grain.sum())
        amount = _uniform(k, 0.01, 0.05, generator).view(k, 1, 1, 1)
        noise = torch.randn(k, 1, *sketch.shape[-2:], generator=generator)
        paper[grain] = paper[grain] + amount * noise

    return (paper.clamp(0.0, 1.0) * 2.0 - 1.0).to(sketch.dtype)
