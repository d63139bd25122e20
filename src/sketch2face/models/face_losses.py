"""Losses that know faces: identity and perceptual losses through dlib's face recogniser.

Both compare the generated face with the real photo on the same 150x150 face chip (the real
photo's five landmarks, through the training augmentation, give one affine warp that is applied to
both images, differentiably). The identity loss is 1 - cosine of the two 128-D descriptors; the
perceptual loss is the L1 distance of the recogniser's residual-stage activations, each normalised
by the real activations' mean magnitude so that every stage counts about equally. The optional
gender loss is the cross-entropy of a linear gender head on the generated face's descriptor against
the photo's gender (FS2K label or pseudo label): a male suspect must not come out as a woman.

A small random similarity jitter of the chip (a few degrees, pixels and percent) changes every step,
so the generator cannot satisfy the recogniser with a pattern that only works on one exact chip:
it has to draw the face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sketch2face.identity.chips import warp_chips
from sketch2face.identity.dlib_resnet import DlibFaceResNet

CHIP_SIZE_PX = 150


@dataclass(frozen=True)
class FaceLosses:
    """The identity and perceptual terms of one batch (zero when no pair has landmarks)."""

    identity: torch.Tensor
    perceptual: torch.Tensor
    cosine: torch.Tensor  # mean descriptor cosine of the valid pairs (for the log)
    #: BCE of the gender head on the generated descriptor (zero without a head or known genders)
    gender: torch.Tensor | None = None


def homogeneous(matrices: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) affine matrices -> (N, 3, 3)."""
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=matrices.dtype, device=matrices.device)
    return torch.cat([matrices, bottom.expand(matrices.shape[0], 1, 3)], dim=1)


def random_chip_jitter(
    n: int,
    generator: torch.Generator,
    *,
    degrees: float = 4.0,
    scale: float = 0.04,
    shift_px: float = 3.0,
    size_px: int = CHIP_SIZE_PX,
) -> torch.Tensor:
    """(N, 3, 3) small random similarities about the chip centre (chip px -> chip px)."""
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(degrees)
    s = 1.0 + (torch.rand(n, generator=generator) * 2 - 1) * scale
    t = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift_px
    c = (size_px - 1) / 2.0
    cos, sin = s * torch.cos(angle), s * torch.sin(angle)
    out = torch.zeros(n, 3, 3)
    out[:, 0, 0], out[:, 0, 1] = cos, -sin
    out[:, 1, 0], out[:, 1, 1] = sin, cos
    # rotate/scale about the centre, then shift
    out[:, 0, 2] = c - cos * c + sin * c + t[:, 0]
    out[:, 1, 2] = c - sin * c - cos * c + t[:, 1]
    out[:, 2, 2] = 1.0
    return out


class FaceIdentityLoss(nn.Module):
    """Identity (1 - cosine) and perceptual (stage-feature L1) losses through a frozen recogniser."""

    def __init__(
        self,
        recogniser: DlibFaceResNet,
        *,
        perceptual_stages: tuple[int, ...] = (0, 1, 2, 3),
        gender_head: tuple[torch.Tensor, float] | None = None,
    ) -> None:
        """``gender_head``: (weights (128,), bias) of ``p_female = sigmoid(desc @ w + b)``
        (:mod:`sketch2face.evaluation.gender`); enables :attr:`FaceLosses.gender`."""
        super().__init__()
        self.recogniser = recogniser.eval()
        for p in self.recogniser.parameters():
            p.requires_grad_(False)
        self.perceptual_stages = perceptual_stages
        self.gender_bias = 0.0 if gender_head is None else float(gender_head[1])
        self.gender_weights: torch.Tensor | None
        self.register_buffer(
            "gender_weights",
            None if gender_head is None else gender_head[0].detach().float().reshape(-1),
        )

    def train(self, mode: bool = True) -> FaceIdentityLoss:
        # the recogniser is a fixed measuring instrument: never in training mode
        super().train(mode)
        self.recogniser.eval()
        return self

    def forward(
        self,
        fake: torch.Tensor,
        real: torch.Tensor,
        chip_matrices: torch.Tensor,
        valid: torch.Tensor,
        *,
        need_perceptual: bool = True,
        gender_target: torch.Tensor | None = None,
        identity_rows: torch.Tensor | None = None,
        perceptual_rows: torch.Tensor | None = None,
        fake_chip_matrices: torch.Tensor | None = None,
    ) -> FaceLosses:
        """``fake``/``real``: (N, 3, H, W) in [-1, 1]; ``chip_matrices``: (N, 2, 3) image px ->
        chip px; ``valid``: (N,) bool, pairs whose photo has landmarks; ``gender_target``: (N,)
        1 female, 0 male, anything else unknown (used only with a gender head).
        ``identity_rows``/``perceptual_rows``: (N,) bool, rows those terms apply to (default all):
        a face generated for a request of the other gender is not the photo's person.
        ``fake_chip_matrices``: (N, 2, 3) chips of the generated faces where they differ from the
        photos' (cut at the face's own landmarks, as the evaluation does); default the photos'."""
        zero = fake.new_zeros((), dtype=torch.float32)
        if not bool(valid.any()):
            return FaceLosses(zero, zero, zero, zero)
        id_rows = (valid if identity_rows is None else identity_rows.bool())[valid]
        perc_rows = (valid if perceptual_rows is None else perceptual_rows.bool())[valid]
        fake, real, m = fake[valid].float(), real[valid].float(), chip_matrices[valid].float()
        fake_m = m if fake_chip_matrices is None else fake_chip_matrices[valid].float()
        fake_chip = warp_chips((fake + 1.0) * 127.5, fake_m, size=CHIP_SIZE_PX)
        with torch.no_grad():
            real_chip = warp_chips((real + 1.0) * 127.5, m, size=CHIP_SIZE_PX)
            real_desc, real_feats = self.recogniser.forward_features(real_chip)
        fake_desc, fake_feats = self.recogniser.forward_features(fake_chip)
        cosine = F.cosine_similarity(fake_desc, real_desc, dim=1)
        identity = (1.0 - cosine[id_rows]).mean() if bool(id_rows.any()) else zero
        perceptual = zero
        if need_perceptual and self.perceptual_stages and bool(perc_rows.any()):
            terms = [
                (fake_feats[i][perc_rows] - real_feats[i][perc_rows]).abs().mean()
                / (real_feats[i].abs().mean() + 1e-6)
                for i in self.perceptual_stages
            ]
            perceptual = torch.stack(terms).mean()
        gender = zero
        if self.gender_weights is not None and gender_target is not None:
            target = gender_target[valid].float()
            known = (target == 0) | (target == 1)
            if bool(known.any()):
                logits = fake_desc[known] @ self.gender_weights + self.gender_bias
                gender = F.binary_cross_entropy_with_logits(logits, target[known])
        cos_logged = cosine[id_rows] if bool(id_rows.any()) else cosine
        return FaceLosses(identity, perceptual, cos_logged.detach().mean(), gender)
