"""Pix2pix training: one step = discriminator update, then generator update through the frozen D.

Launch: ``sketch2face train --config configs/pix2pix_fs2k_celeba.toml`` on one device, or
``torchrun --nproc_per_node=N -m sketch2face.cli.main train --config ...`` for DDP (no code change).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sketch2face.attributes import (
    colour_requests,
    counterfactual_requests,
    drop_groups,
    gender_labels,
    region_masks,
)
from sketch2face.errors import CheckpointError
from sketch2face.identity.chips import own_chip_transforms
from sketch2face.imaging import batch_to_u8, make_grid, save_png
from sketch2face.models.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_weights,
    restore_optimizers,
    save_checkpoint,
)
from sketch2face.models.face_losses import FaceIdentityLoss, homogeneous, random_chip_jitter
from sketch2face.models.losses import (
    GANLoss,
    VGG19Features,
    bright_line_loss,
    contextual_loss,
    dark_line_loss,
    pooled,
    region_colour_loss,
    spectrum_loss,
    ssim_map,
    structure_keeping_loss,
    structure_ssim_map,
)
from sketch2face.models.patchgan import PatchGANDiscriminator
from sketch2face.models.unet import UNetGenerator, convert_decoder_state
from sketch2face.runtime import (
    autocast,
    resolve_device,
    resolve_precision,
    seed_everything,
    set_threads,
)
from sketch2face.training.config import TrainConfig
from sketch2face.training.distributed import (
    DistInfo,
    all_reduce_mean,
    cleanup_distributed,
    init_distributed,
)
from sketch2face.training.schedule import linear_decay_factor
from sketch2face.training.sketch_augment import augment_sketches

log = logging.getLogger(__name__)

#: what train_step returns, in this order (also the CSV log columns)
LOSS_NAMES = (  # columns of metrics.csv, in order
    "D_real",
    "D_fake",
    "G_gan",
    "G_l1",
    "G_ssim",
    "G_cx",
    "G_id",
    "G_fperc",
    "G_gender",
    "G_attr",
    "G_spec",
    "G_keep",
    "G_line",
    "G_bright",
    "id_cos",
    "G_total",
)
#: validation figures in the CSV log
VAL_FIELDS = (
    "val_ssim",
    "val_psnr",
    "val_ssim_fs2k",
    "val_id_cos_fs2k",
    "val_rank1_fs2k",
    "val_rank1_sketch_fs2k",
    "val_realism_fd_fs2k",
    "val_realism_fd_input_fs2k",
    "val_score",
)


@dataclass(frozen=True)
class PairTensors:
    """Training pairs as NHWC uint8 tensors (decoded once; cheap to index)."""

    sketches: torch.Tensor  # (N, H, W, 3) uint8
    photos: torch.Tensor  # (N, H, W, 3) uint8
    manifest_sha256: str = ""
    #: virtual row -> stored row; repeats rows to oversample a source without copying images
    indices: torch.Tensor | None = None
    #: (N, ATTRIBUTE_DIM) condition vectors per stored row (sketch2face.attributes), or None
    attributes: torch.Tensor | None = None
    #: (N, 2, 3) image px -> 150 px face chip per stored row (the photo's 5 landmarks), or None
    chip_matrices: torch.Tensor | None = None
    #: (N,) bool: the photo has landmarks (rows without are left out of the face losses)
    chip_valid: torch.Tensor | None = None
    #: manifest source per stored row (e.g. "fs2k", "celeba"): per-source validation figures
    sources: tuple[str, ...] = ()
    #: direction "refine": (M, H, W, 3) uint8 stage-one faces of some stored rows' sketches (the
    #: rows that may be pairs (b)), or None
    stage_one: torch.Tensor | None = None
    #: (N,) long: stored row -> its row of ``stage_one``, -1 where stage one's face was not computed
    #: (that row is always a pair (a)); None = ``stage_one`` has one face per stored row
    stage_one_rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.sketches.shape[0] if self.indices is None else self.indices.shape[0])

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Map virtual row numbers to stored rows."""
        return idx if self.indices is None else self.indices[idx]

    def stage_one_face_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows of ``stage_one`` holding stored ``rows``' stage-one faces; -1 where there is none."""
        if self.stage_one is None:
            return torch.full((len(rows),), -1, dtype=torch.long)
        return rows if self.stage_one_rows is None else self.stage_one_rows[rows]

    @classmethod
    def from_arrays(
        cls, sketches: np.ndarray, photos: np.ndarray, manifest_sha256: str = ""
    ) -> PairTensors:
        """Wrap uint8 NHWC numpy arrays (no copy)."""
        if sketches.shape != photos.shape or sketches.dtype != np.uint8:
            raise ValueError(
                f"expected equal uint8 NHWC arrays, got {sketches.shape} and {photos.shape}"
            )
        return cls(torch.from_numpy(sketches), torch.from_numpy(photos), manifest_sha256)


def to_model_input(batch_u8: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return batch_u8.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def degraded_photos(photo_t: torch.Tensor, sketch_t: torch.Tensor, seed: int) -> torch.Tensor:
    """(N, 3, H, W) photos in [-1, 1] -> the same photos degraded like stage one's faces
    (refine/degrade.py), with their aligned sketches' strokes as the leftover lines."""
    from sketch2face.imaging import batch_to_u8
    from sketch2face.refine.degrade import degrade_batch

    degraded = degrade_batch(np.stack(batch_to_u8(photo_t)), np.stack(batch_to_u8(sketch_t)), seed)
    return to_model_input(torch.from_numpy(degraded))


class Batch(NamedTuple):
    """One training batch on the device."""

    sketch: torch.Tensor
    photo: torch.Tensor
    attributes: torch.Tensor | None = None
    #: (N, 2, 3) augmented-image px -> face chip px, and which rows have a face
    chip_matrices: torch.Tensor | None = None
    chip_valid: torch.Tensor | None = None
    #: (N,) the gender the face should have: 1 female, 0 male, -1 unknown (for the gender loss)
    gender: torch.Tensor | None = None
    #: (N, 3) bool: request groups (skin, hair, gender) that disagree with the photo
    counterfactual: torch.Tensor | None = None
    #: (N, 2, H, W) skin and hair regions in the augmented frame (for the attribute loss)
    regions: torch.Tensor | None = None


def paired_jitter(
    sketch_t: torch.Tensor,
    photo_t: torch.Tensor,
    jitter_px: int,
    generator: torch.Generator,
    *,
    return_affine: bool = False,
) -> Any:
    """The same random flip and resize-crop (pix2pix: 256 -> 286 -> random 256) on sketch and photo.

    Returns ``(sketch, photo)``, plus with ``return_affine`` the (N, 2, 3) maps from original to
    augmented pixel coordinates (pixel centres at integers), which carry landmarks along.
    """
    n, _, h, w = sketch_t.shape
    both = torch.cat([sketch_t, photo_t], dim=1)  # (N, 6, H, W): one op keeps them aligned
    flip = torch.rand(n, generator=generator) < 0.5
    both[flip] = both[flip].flip(-1)
    affine = torch.zeros(n, 2, 3)
    affine[:, 0, 0] = torch.where(flip, -1.0, 1.0)
    affine[:, 0, 2] = torch.where(flip, float(w - 1), 0.0)
    affine[:, 1, 1] = 1.0
    if jitter_px > 0:
        big = F.interpolate(
            both, size=(h + jitter_px, w + jitter_px), mode="bilinear", align_corners=False
        )
        ys = torch.randint(0, jitter_px + 1, (n,), generator=generator)
        xs = torch.randint(0, jitter_px + 1, (n,), generator=generator)
        both = torch.stack(
            [
                big[i, :, y : y + h, x : x + w]
                for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist()))
            ]
        )
        # resize with half-pixel centres (align_corners=False), then the crop offset
        sx, sy = (w + jitter_px) / w, (h + jitter_px) / h
        affine[:, 0] *= sx
        affine[:, 1] *= sy
        affine[:, 0, 2] += 0.5 * sx - 0.5 - xs.float()
        affine[:, 1, 2] += 0.5 * sy - 0.5 - ys.float()
    out = both[:, :3].contiguous(), both[:, 3:].contiguous()
    return (*out, affine) if return_affine else out


def _open_metrics_log(path: Path, fields: Sequence[str], resume_step: int = 0) -> None:
    """Create ``metrics.csv`` with ``fields`` as header, or reopen an existing log for a resumed run.

    An older header (a loss term was added since) is upgraded: rows are rewritten under the new
    header, missing columns left empty. Rows logged after ``resume_step`` (the checkpoint the run
    resumes from) are dropped: a run stopped between checkpoints redoes those steps, and keeping
    both would draw each of them twice. So a resumed run keeps one consistent, readable file.
    """
    if not path.exists():
        with path.open("w", newline="") as fh:
            csv.DictWriter(fh, fieldnames=list(fields)).writeheader()
        return
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        old_fields = list(reader.fieldnames or [])
        rows = list(reader)
    kept = [r for r in rows if not _logged_after(r, resume_step)]
    if old_fields == list(fields) and len(kept) == len(rows):
        return
    if len(kept) < len(rows):
        log.info(
            "%s: dropped %d rows logged after step %d (redone by this resumed run)",
            path,
            len(rows) - len(kept),
            resume_step,
        )
    dropped = [f for f in old_fields if f not in fields]
    if dropped:
        log.warning(
            "%s: columns %s are no longer logged; kept out of the upgraded log", path, dropped
        )
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    tmp.replace(path)


def _logged_after(row: dict[str, str], step: int) -> bool:
    """Whether a metrics row belongs to a step after ``step`` (unparseable steps are kept)."""
    try:
        return int(row.get("step") or "") > step
    except ValueError:
        return False


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, DistributedDataParallel) else net


class Pix2PixTrainer:
    """Owns the two networks, their optimisers, and the training loop with resume."""

    def __init__(
        self,
        cfg: TrainConfig,
        train_data: PairTensors,
        val_data: PairTensors | None = None,
        *,
        show_progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.dist: DistInfo = init_distributed(resolve_device(cfg.runtime.device).type)
        device = resolve_device(cfg.runtime.device)
        if device.type == "cuda" and self.dist.is_distributed:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.amp_dtype = resolve_precision(cfg.runtime.precision, device)
        set_threads(cfg.runtime.threads)
        seed_everything(cfg.runtime.seed + self.dist.rank)
        self.train_data = train_data
        self.val_data = val_data
        #: (validation rows, their inputs' own-landmark chips), see _own_input_chips
        self._input_chips_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.show_progress = show_progress and self.dist.is_main_process
        self.out_dir = Path(cfg.run.out_dir)
        self.memory_format = (
            torch.channels_last if cfg.runtime.channels_last else torch.contiguous_format
        )

        self.generator = UNetGenerator(cfg.generator)
        self.discriminator = PatchGANDiscriminator(cfg.discriminator)
        for net in (self.generator, self.discriminator):
            net.apply(_init_weights)
            net.to(device=device, memory_format=self.memory_format)
        self.opt_g = torch.optim.Adam(
            self.generator.parameters(), lr=cfg.optim.lr_g, betas=(cfg.optim.beta1, cfg.optim.beta2)
        )
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(),
            lr=cfg.optim.lr_d,
            betas=(cfg.optim.beta1, cfg.optim.beta2),
        )
        # float16 needs loss scaling; bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.gan_loss = GANLoss()
        self.face_loss: FaceIdentityLoss | None = None
        if cfg.loss.identity > 0 or cfg.loss.face_perceptual > 0:
            if train_data.chip_matrices is None:
                raise ValueError(
                    "loss.identity / loss.face_perceptual need the photos' landmarks: load the "
                    "training pairs with face chips (training.data.load_pairs does when these "
                    "losses are on)"
                )
            from sketch2face.identity.dlib_resnet import load_dlib_face_resnet

            self.face_loss = FaceIdentityLoss(
                load_dlib_face_resnet(), gender_head=self._gender_head()
            ).to(device)
        elif cfg.loss.gender > 0:
            raise ValueError("loss.gender runs on the face recogniser: set loss.identity > 0 too")
        self.vgg: VGG19Features | None = None
        if cfg.loss.contextual > 0 and cfg.loss.contextual_backbone == "vgg19":
            self.vgg = VGG19Features(cfg.loss.vgg19_weights).to(device)
        elif cfg.loss.contextual_backbone not in ("discriminator", "vgg19"):
            raise ValueError("loss.contextual_backbone must be 'discriminator' or 'vgg19'")
        self.step = 0
        self.best_val_ssim = -math.inf
        if cfg.run.init_from:
            self._warm_start(cfg.run.init_from)
        #: moving average of the generator's weights (run.ema_decay > 0); inference uses it
        self.generator_ema: UNetGenerator | None = None
        self.ema_updates = 0
        if not 0.0 <= cfg.run.ema_decay < 1.0:
            raise ValueError(f"run.ema_decay must be in [0, 1), got {cfg.run.ema_decay}")
        if cfg.run.ema_decay > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self._resume_if_possible()
        if self.dist.is_distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.generator = DistributedDataParallel(self.generator, device_ids=ids)
            self.discriminator = DistributedDataParallel(self.discriminator, device_ids=ids)

    # ------------------------------------------------------------------ checkpoints
    @property
    def last_checkpoint_path(self) -> Path:
        """Where the resumable checkpoint lives."""
        return self.out_dir / "checkpoints" / "last.safetensors"

    def _warm_start(self, path: str) -> None:
        ckpt = load_checkpoint(path)
        gen_state = ckpt.generator_state()
        if ckpt.generator_config.upsample == "deconv" and self.cfg.generator.upsample == "resize":
            # least-squares resize-conv kernels from the transposed convs (models/unet.py)
            gen_state = convert_decoder_state(gen_state, self.generator)
        own = self.generator.state_dict()
        # new parts (e.g. attribute projection) keep their change-nothing init
        shared = {k: v for k, v in gen_state.items() if k in own}
        load_weights(
            self.generator,
            {**{k: v for k, v in own.items() if k not in shared}, **shared},
            ckpt.path,
            "generator",
        )
        disc = ckpt.group("discriminator")
        if disc:
            load_weights(self.discriminator, disc, ckpt.path, "discriminator")
        log.info("warm-started from %s (step %d)", path, ckpt.step)

    def _resume_if_possible(self) -> None:
        path = self.last_checkpoint_path
        if not path.is_file():
            return
        ckpt = load_checkpoint(path)
        if ckpt.generator_config != self.cfg.generator:
            raise CheckpointError(
                f"{path} was written for generator {ckpt.generator_config}, but the config asks for "
                f"{self.cfg.generator}; use another run.out_dir or the matching config."
            )
        self.load_state(ckpt)
        log.info("resumed from %s at step %d", path, self.step)

    def load_state(self, ckpt: Checkpoint) -> None:
        """Restore networks, optimisers, step and RNG from a checkpoint."""
        load_weights(self.generator, ckpt.group("generator"), ckpt.path, "generator")
        if self.generator_ema is not None:
            # a run that turns the average on later starts it from the current weights
            ema_state = ckpt.group("generator_ema") if ckpt.has_ema else ckpt.group("generator")
            load_weights(self.generator_ema, ema_state, ckpt.path, "generator_ema")
            self.ema_updates = int(ckpt.metrics.get("ema_updates", 0)) if ckpt.has_ema else 0
        load_weights(self.discriminator, ckpt.group("discriminator"), ckpt.path, "discriminator")
        restore_optimizers(ckpt, {"generator": self.opt_g, "discriminator": self.opt_d})
        self.step = ckpt.step
        self.best_val_ssim = float(ckpt.metrics.get("best_val_ssim", -math.inf))
        rng = ckpt.tensors.get("rng.torch")
        if rng is not None:
            torch.set_rng_state(rng.to(torch.uint8))

    def save(self, path: Path, metrics: dict[str, Any] | None = None) -> Path:
        """Write a resumable checkpoint (networks, their moving average, optimisers, step, RNG,
        config, data hash)."""
        extra = {"rng.torch": torch.get_rng_state()}
        if self.generator_ema is not None:
            extra |= {f"generator_ema.{k}": v for k, v in self.generator_ema.state_dict().items()}
            metrics = {"ema_updates": self.ema_updates, **(metrics or {})}
        return save_checkpoint(
            path,
            generator=_unwrap(self.generator),
            discriminator=_unwrap(self.discriminator),
            generator_config=self.cfg.generator,
            discriminator_config=self.cfg.discriminator,
            optimizers={"generator": self.opt_g, "discriminator": self.opt_d},
            step=self.step,
            config_json=self.cfg.to_json(),
            manifest_sha256=self.train_data.manifest_sha256,
            metrics={"best_val_ssim": self.best_val_ssim, **(metrics or {})},
            extra_tensors=extra,
        )

    @property
    def inference_generator(self) -> nn.Module:
        """The generator that validation, samples and shipped models use: the moving average
        when ``run.ema_decay`` > 0, else the trained network itself."""
        return self.generator_ema if self.generator_ema is not None else _unwrap(self.generator)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the average toward the current weights. The decay ramps up from 0.1 over the
        first updates ((1+n)/(10+n)), so an average started late is not stuck near its start."""
        if self.generator_ema is None:
            return
        self.ema_updates += 1
        n = self.ema_updates
        decay = min(self.cfg.run.ema_decay, (1 + n) / (10 + n))
        net = _unwrap(self.generator)
        for avg, param in zip(self.generator_ema.parameters(), net.parameters()):
            avg.lerp_(param.detach(), 1.0 - decay)
        for avg, buf in zip(self.generator_ema.buffers(), net.buffers()):
            avg.copy_(buf)  # BatchNorm statistics: re-estimated before use anyway

    # ------------------------------------------------------------------ one step
    def _batch(self, step: int) -> Batch:
        """Deterministic batch for ``step``: epoch permutations seeded by (seed, epoch), sharded by rank."""
        n = len(self.train_data)
        bs = self.cfg.data.batch_size
        per_rank = max(1, n // self.dist.world_size)
        steps_per_epoch = max(1, per_rank // bs)
        epoch, offset = divmod(step, steps_per_epoch)
        gen = torch.Generator().manual_seed(self.cfg.runtime.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen)[self.dist.rank :: self.dist.world_size]
        idx = perm[offset * bs : (offset + 1) * bs]
        rows = self.train_data.rows(idx)
        sketch = to_model_input(self.train_data.sketches[rows])
        photo = to_model_input(self.train_data.photos[rows])
        aug = torch.Generator().manual_seed(
            self.cfg.runtime.seed * 7919 + step * 31 + self.dist.rank
        )
        own_faces = None  # refiner rows whose input is stage one's face of their sketch
        if self.cfg.data.direction == "refine" and self.train_data.stage_one is not None:
            face_rows = self.train_data.stage_one_face_rows(rows)
            own_faces = torch.rand(len(rows), generator=aug) < self.cfg.data.stage_one_pairs
            own_faces &= face_rows >= 0  # a row without stage one's face is always a pair (a)
            if own_faces.any():
                sketch[own_faces] = to_model_input(self.train_data.stage_one[face_rows[own_faces]])
        affine = None
        if self.cfg.data.augment:
            sketch, photo, affine = paired_jitter(
                sketch, photo, self.cfg.data.jitter_px, aug, return_affine=True
            )
        if self.cfg.data.direction == "refine":
            # the refiner's input: the photo with stage one's artefacts, its own sketch's lines
            degraded = degraded_photos(
                photo, sketch, seed=int(torch.randint(2**31, (1,), generator=aug))
            )
            if own_faces is None:
                sketch = degraded
            else:
                sketch = torch.where(own_faces[:, None, None, None], sketch, degraded)
        elif self.cfg.data.sketch_augment > 0:
            sketch = augment_sketches(sketch, aug, strength=self.cfg.data.sketch_augment)
        attrs = self._attributes_for(rows, aug)
        chips, valid = self._chips_for(rows, affine, aug)
        gender = self._genders_for(rows)
        swapped = None
        if attrs is not None and self.cfg.data.counterfactual > 0:
            chosen = torch.rand(len(rows), generator=aug) < self.cfg.data.counterfactual
            attrs, swapped = counterfactual_requests(
                attrs, chosen, aug, self.train_data.attributes[rows]
            )
            if gender is not None:  # the face should now show the requested gender
                gender = torch.where(swapped[:, 2], gender_labels(attrs), gender)
        regions = None
        if attrs is not None and self.cfg.loss.attribute > 0:
            regions = region_masks(len(rows), sketch.shape[-1], affine)
        return Batch(
            sketch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format),
            photo.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format),
            attrs.to(self.device) if attrs is not None else None,
            chips.to(self.device) if chips is not None else None,
            valid.to(self.device) if valid is not None else None,
            gender.to(self.device) if gender is not None else None,
            swapped.to(self.device) if swapped is not None else None,
            regions.to(self.device) if regions is not None else None,
        )

    def _gender_head(self) -> tuple[torch.Tensor, float] | None:
        """The shipped gender head's (weights, bias) when ``loss.gender`` is on."""
        if self.cfg.loss.gender <= 0:
            return None
        from sketch2face.evaluation.gender import load_gender_head

        head = load_gender_head()
        return torch.from_numpy(head.weights).float(), head.bias

    def _genders_for(self, rows: torch.Tensor) -> torch.Tensor | None:
        """The photos' genders (1 female, 0 male, -1 unknown) from the *undropped* condition
        vectors (``[.., gender_known, gender]``, +1 female), when the gender loss is on."""
        data = self.train_data
        if self.cfg.loss.gender <= 0 or data.attributes is None:
            return None
        return gender_labels(data.attributes[rows])

    def _chips_for(
        self, rows: torch.Tensor, affine: torch.Tensor | None, generator: torch.Generator
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Face-chip warps of stored ``rows`` after the augmentation ``affine`` (and a random
        chip jitter), or (None, None) when the face losses are off."""
        data = self.train_data
        if self.face_loss is None or data.chip_matrices is None or data.chip_valid is None:
            return None, None
        chip = homogeneous(data.chip_matrices[rows])
        if affine is not None:  # chip of the augmented image: undo the augmentation first
            chip = chip @ torch.linalg.inv(homogeneous(affine))
        if self.cfg.loss.chip_jitter:
            chip = random_chip_jitter(len(rows), generator) @ chip
        return chip[:, :2].contiguous(), data.chip_valid[rows]

    def _attributes_for(
        self, rows: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """Condition vectors of stored ``rows``; with a generator, groups are dropped at random
        (``data.attribute_dropout``) so 'unspecified' stays a case the model knows."""
        if self.cfg.generator.attribute_dim == 0 or self.train_data.attributes is None:
            return None
        data = self.train_data if generator is not None else self.val_data
        if data is None or data.attributes is None:
            return None
        attrs = data.attributes[rows]
        if generator is not None and self.cfg.data.attribute_dropout > 0:
            keep = (
                torch.rand(len(rows), 3, generator=generator) >= self.cfg.data.attribute_dropout
            ).float()
            attrs = drop_groups(attrs, keep)
        return attrs

    def _contextual(
        self,
        fake: torch.Tensor,
        real: torch.Tensor,
        fake_feats: list[torch.Tensor],
        real_feats: list[torch.Tensor],
    ) -> torch.Tensor:
        """Contextual loss over VGG19 features (when configured) or the discriminator's own."""
        px = self.cfg.loss.contextual_pool_px
        bw = self.cfg.loss.contextual_band_width
        if self.vgg is not None:
            with torch.no_grad():
                real_feats = self.vgg(real)
            fake_feats = self.vgg(fake)
        else:
            # the two deepest D feature maps (32x32 and 31x31 for the 70x70 PatchGAN)
            fake_feats, real_feats = fake_feats[-2:], real_feats[-2:]
        losses = [
            contextual_loss(pooled(f, px), pooled(r, px), band_width=bw)
            for f, r in zip(fake_feats, real_feats)
        ]
        return torch.stack(losses).mean()

    def train_step(
        self,
        sketch: torch.Tensor,
        photo: torch.Tensor,
        attributes: torch.Tensor | None = None,
        chip_matrices: torch.Tensor | None = None,
        chip_valid: torch.Tensor | None = None,
        gender: torch.Tensor | None = None,
        counterfactual: torch.Tensor | None = None,
        regions: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """One pix2pix iteration (pix2pix_model.optimize_parameters order); returns the losses.

        Rows with a ``counterfactual`` request (see :class:`Batch`) are not asked to reproduce the
        photo's colours: L1, contextual and the recogniser's perceptual term skip them, SSIM keeps
        only its structure term on luma, and identity skips rows whose gender was swapped."""
        cfg = self.cfg
        factor = linear_decay_factor(self.step, cfg.run.max_steps, cfg.optim.decay_start_fraction)
        for group in self.opt_g.param_groups:
            group["lr"] = cfg.optim.lr_g * factor
        for group in self.opt_d.param_groups:
            group["lr"] = cfg.optim.lr_d * factor
        self.generator.train()
        self.discriminator.train()
        with autocast(self.device, self.amp_dtype):
            fake = self.generator(sketch, attributes)

        # --- discriminator: real pairs -> 1, generated pairs (detached) -> 0
        self.discriminator.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            # real-pair features double as the contextual-loss target (saves one D forward)
            real_logits, real_feats = self.discriminator(sketch, photo, return_features=True)
            loss_d_real = self.gan_loss(real_logits, True)
            loss_d_fake = self.gan_loss(self.discriminator(sketch, fake.detach()), False)
            loss_d = 0.5 * (loss_d_real + loss_d_fake)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)

        # --- generator through the frozen discriminator (unwrapped: D's grads are not synced here)
        self.discriminator.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            logits, fake_feats = _unwrap(self.discriminator)(sketch, fake, return_features=True)
            loss_g_gan = self.gan_loss(logits, True)
            zero = torch.zeros((), device=self.device)
            swapped = (
                counterfactual.any(dim=1)
                if counterfactual is not None
                else torch.zeros(fake.shape[0], dtype=torch.bool, device=fake.device)
            )
            factual = ~swapped
            any_factual = bool(factual.any())
            loss_g_l1 = (
                F.l1_loss(fake[factual].float(), photo[factual].float()) if any_factual else zero
            )
            loss_g_ssim = zero
            if cfg.loss.ssim > 0:
                per_row = (
                    [ssim_map(fake[factual], photo[factual]).mean((1, 2, 3))] if any_factual else []
                )
                if bool(swapped.any()):
                    per_row.append(
                        structure_ssim_map(fake[swapped], photo[swapped]).mean((1, 2, 3))
                    )
                loss_g_ssim = 1.0 - torch.cat(per_row).mean()
            loss_g_cx = zero
            if cfg.loss.contextual > 0 and any_factual:
                loss_g_cx = self._contextual(
                    fake[factual],
                    photo[factual],
                    [f[factual] for f in fake_feats],
                    [f[factual].detach() for f in real_feats],
                )
            loss_g_attr = zero
            if cfg.loss.attribute > 0 and regions is not None and attributes is not None:
                targets, known = colour_requests(attributes)
                loss_g_attr = region_colour_loss(fake, regions, targets, known)
            loss_g_spec = zero
            if cfg.loss.spectrum > 0 and any_factual:
                loss_g_spec = spectrum_loss(fake[factual], photo[factual])
            loss_g_line = zero
            if cfg.loss.dark_lines > 0 and any_factual:
                loss_g_line = dark_line_loss(
                    fake[factual], photo[factual], cfg.loss.dark_line_width_px
                )
            loss_g_bright = zero
            if cfg.loss.bright_lines > 0 and any_factual:
                loss_g_bright = bright_line_loss(
                    fake[factual], photo[factual], cfg.loss.dark_line_width_px
                )
            loss_g_keep = zero
            if cfg.loss.keep_structure > 0:  # a refiner run: the input is a face
                loss_g_keep = structure_keeping_loss(fake, sketch, cfg.loss.keep_structure_sigma_px)
            loss_g_id, loss_g_fp, loss_g_gender, id_cos = zero, zero, zero, zero
            if self.face_loss is not None and chip_matrices is not None and chip_valid is not None:
                fake_chips = None
                if cfg.loss.identity_chips == "own":  # aligned as the evaluation aligns it
                    fake_chips = torch.from_numpy(
                        own_chip_transforms(batch_to_u8(fake.detach().float()))
                    ).to(self.device)
                face = self.face_loss(
                    fake,
                    photo,
                    chip_matrices,
                    chip_valid,
                    need_perceptual=cfg.loss.face_perceptual > 0,
                    gender_target=gender,
                    identity_rows=None if counterfactual is None else ~counterfactual[:, 2],
                    perceptual_rows=None if counterfactual is None else factual,
                    fake_chip_matrices=fake_chips,
                )
                loss_g_id, loss_g_fp, id_cos = face.identity, face.perceptual, face.cosine
                loss_g_gender = face.gender if face.gender is not None else zero
            loss_g = (
                cfg.loss.gan * loss_g_gan
                + cfg.loss.l1 * loss_g_l1
                + cfg.loss.ssim * loss_g_ssim
                + cfg.loss.contextual * loss_g_cx
                + cfg.loss.identity * loss_g_id
                + cfg.loss.face_perceptual * loss_g_fp
                + cfg.loss.gender * loss_g_gender
                + cfg.loss.attribute * loss_g_attr
                + cfg.loss.spectrum * loss_g_spec
                + cfg.loss.keep_structure * loss_g_keep
                + cfg.loss.dark_lines * loss_g_line
                + cfg.loss.bright_lines * loss_g_bright
            )
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.discriminator.requires_grad_(True)
        self.step += 1
        self.update_ema()
        values = [
            loss_d_real,
            loss_d_fake,
            loss_g_gan,
            loss_g_l1,
            loss_g_ssim,
            loss_g_cx,
            loss_g_id,
            loss_g_fp,
            loss_g_gender,
            loss_g_attr,
            loss_g_spec,
            loss_g_keep,
            loss_g_line,
            loss_g_bright,
            id_cos,
            loss_g,
        ]
        losses = torch.stack([v.float() for v in values]).detach()
        losses = all_reduce_mean(losses, self.dist).cpu().tolist()
        return dict(zip(LOSS_NAMES, losses))

    # ------------------------------------------------------------------ evaluation and samples
    @torch.no_grad()
    def generate(
        self, sketches_u8: torch.Tensor, batch_size: int = 8, attributes: torch.Tensor | None = None
    ) -> list[np.ndarray]:
        """Generate faces for (N,H,W,3) uint8 sketches with the inference generator in eval mode."""
        net = self.inference_generator
        was_training = net.training
        net.eval()
        out: list[np.ndarray] = []
        for i in range(0, sketches_u8.shape[0], batch_size):
            x = to_model_input(sketches_u8[i : i + batch_size]).to(self.device)
            with autocast(self.device, self.amp_dtype):
                a = (
                    attributes[i : i + batch_size].to(self.device)
                    if attributes is not None
                    else None
                )
                y = net(x.contiguous(memory_format=self.memory_format), a)
            out.extend(batch_to_u8(y.float()))
        net.train(was_training)
        return out

    @torch.no_grad()
    def recalibrate_batchnorm(self) -> None:
        """Re-estimate the generator's BatchNorm running statistics ("precise BN").

        Running averages (momentum 0.1) lag behind the weights, and eval-mode outputs drift
        (darker, lower SSIM) from what the network does with batch statistics. A cumulative
        average over ``run.bn_recalibration_batches`` training batches, with dropout off as at
        inference, fixes that; training itself never reads running stats, so this is free of
        side effects on the GAN game.
        """
        n_batches = self.cfg.run.bn_recalibration_batches
        net = self.inference_generator
        norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        if n_batches <= 0 or not norms:
            return
        was_training = net.training
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
        net.train()
        for m in net.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
        gen = torch.Generator().manual_seed(self.cfg.runtime.seed * 131 + self.step)
        for _ in range(n_batches):
            idx = torch.randint(0, len(self.train_data), (16,), generator=gen)
            rows = self.train_data.rows(idx)
            x = to_model_input(self.train_data.sketches[rows])
            if self.cfg.data.direction == "refine":
                photos = to_model_input(self.train_data.photos[rows])
                x = degraded_photos(photos, x, seed=int(torch.randint(2**31, (1,), generator=gen)))
            x = x.to(self.device)
            with autocast(self.device, self.amp_dtype):
                net(x.contiguous(memory_format=self.memory_format), self._attributes_for(rows, gen))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        net.train(was_training)

    def _validation_rows(self, n: int) -> torch.Tensor:
        """``n`` stored val rows, split equally between sources and evenly spaced within each, so
        the artist sketches count as much as the (far more numerous) synthetic ones."""
        data = self.val_data
        assert data is not None
        stored = data.rows(torch.arange(len(data)))
        if not data.sources:
            return stored[torch.linspace(0, len(stored) - 1, n).long()]
        by_source: dict[str, list[int]] = {}
        for row in stored.tolist():
            by_source.setdefault(data.sources[row], []).append(row)
        share = max(1, n // len(by_source))
        picked: list[int] = []
        for source_rows in by_source.values():
            k = min(share, len(source_rows))
            picked += [
                source_rows[int(i)] for i in torch.linspace(0, len(source_rows) - 1, k).long()
            ]
        return torch.tensor(picked, dtype=torch.long)

    @torch.no_grad()
    def _descriptors(
        self, images_u8: np.ndarray | torch.Tensor, chips: torch.Tensor
    ) -> torch.Tensor:
        """Unit dlib descriptors of (N, H, W, 3) uint8 images on the given face chips."""
        assert self.face_loss is not None
        from sketch2face.identity.chips import warp_chips

        images = torch.as_tensor(np.asarray(images_u8)).permute(0, 3, 1, 2).float().to(self.device)
        out = []
        for i in range(0, len(images), 32):
            chip = warp_chips(images[i : i + 32], chips[i : i + 32].to(self.device), size=150)
            out.append(F.normalize(self.face_loss.recogniser(chip).float(), dim=1))
        return torch.cat(out)

    def _own_input_chips(self, rows: torch.Tensor, inputs: np.ndarray) -> torch.Tensor:
        """Chips of the validation inputs at their own landmarks, found once: the inputs (the
        sketches, or stage one's cached faces for a refiner) are the same at every validation."""
        cached = self._input_chips_cache
        if cached is None or not torch.equal(cached[0], rows):
            cached = (rows.clone(), torch.from_numpy(own_chip_transforms(list(inputs))))
            self._input_chips_cache = cached
        return cached[1]

    def validate(self) -> dict[str, float]:
        """SSIM / PSNR on ``run.eval_pairs`` validation pairs (sources balanced), and on the FS2K
        ones: SSIM, identity cosine and rank-1 (generated face, and the model's input, ranked among
        the real photos by dlib's recogniser on the real photo's face chip, or on each face's own
        landmarks with ``loss.identity_chips = "own"``, as `evaluate` does) when face chips exist.
        The input is the sketch itself for the product; for ``data.direction = "refine"`` it is
        stage one's face, so ``val_rank1_sketch_fs2k`` is then stage one's rank-1.

        ``val_score`` (``run.select_metric = "val_score"``) is NOT one formula for every
        direction: for the product it is FS2K-val SSIM + rank-1; for the refiner it is rank-1
        minus the realism-FD ratio above 0.5 minus twice any rank-1 lost against stage one (see
        below). Scores of a refiner run and of a sketch -> photo run are not comparable."""
        if self.val_data is None or len(self.val_data) == 0:
            return {}
        self.recalibrate_batchnorm()
        from sketch2face.evaluation.metrics import psnr, ssim

        data = self.val_data
        rows = self._validation_rows(min(self.cfg.run.eval_pairs, len(data)))
        fakes = self.generate(data.sketches[rows], attributes=self._attributes_for(rows))
        reals = data.photos[rows].numpy()
        ssims = np.array([ssim(f, r) for f, r in zip(fakes, reals)])
        metrics = {
            "val_ssim": float(ssims.mean()),
            "val_psnr": float(np.mean([min(psnr(f, r), 100.0) for f, r in zip(fakes, reals)])),
        }
        fs2k = np.array([bool(data.sources) and data.sources[int(r)] == "fs2k" for r in rows])
        if not fs2k.any():
            return metrics
        metrics["val_ssim_fs2k"] = float(ssims[fs2k].mean())
        if self.face_loss is None or data.chip_matrices is None or data.chip_valid is None:
            return metrics
        keep = torch.from_numpy(fs2k) & data.chip_valid[rows]
        kept_rows = rows[keep]
        if len(kept_rows) < 2:
            return metrics
        chips = data.chip_matrices[kept_rows]
        kept_fakes = np.stack([f for f, k in zip(fakes, keep) if k])
        inputs = data.sketches[kept_rows].numpy()
        fake_chips, input_chips = chips, chips
        if self.cfg.loss.identity_chips == "own":  # each face at its own landmarks, as evaluate
            fake_chips = torch.from_numpy(own_chip_transforms(list(kept_fakes)))
            input_chips = self._own_input_chips(kept_rows, inputs)
        real = self._descriptors(data.photos[kept_rows], chips)
        fake = self._descriptors(kept_fakes, fake_chips)
        sketch = self._descriptors(inputs, input_chips)
        target = torch.arange(len(kept_rows), device=real.device)

        def rank1(queries: torch.Tensor) -> float:
            return float(((queries @ real.T).argmax(dim=1) == target).float().mean())

        metrics["val_id_cos_fs2k"] = float((fake * real).sum(dim=1).mean())
        metrics["val_rank1_fs2k"] = rank1(fake)
        metrics["val_rank1_sketch_fs2k"] = rank1(sketch)
        # val_score, the product's: SSIM rewards blur on its own, rank-1 keeps the person
        metrics["val_score"] = metrics["val_ssim_fs2k"] + metrics["val_rank1_fs2k"]
        if self.cfg.data.direction == "refine":
            # val_score, the refiner's (replaces the product's; SSIM plays no part): issue 22's
            # go / no-go as one number, rank-1 - max(0, FD ratio - 0.5) - 2 * rank-1 lost, where
            # FD ratio = realism FD of the refined faces / of stage one's faces (its inputs)
            metrics.update(
                self._refiner_realism(np.asarray(fakes), data.sketches[rows].numpy(), reals, fs2k)
            )
            ratio = metrics["val_realism_fd_fs2k"] / max(metrics["val_realism_fd_input_fs2k"], 1e-9)
            # a refiner must keep the person: rank-1 below stage one's costs twice what it loses
            lost = max(0.0, metrics["val_rank1_sketch_fs2k"] - metrics["val_rank1_fs2k"])
            metrics["val_score"] = metrics["val_rank1_fs2k"] - max(0.0, ratio - 0.5) - 2.0 * lost
        return metrics

    @staticmethod
    def _refiner_realism(
        refined: np.ndarray, stage_one: np.ndarray, reals: np.ndarray, fs2k: np.ndarray
    ) -> dict[str, float]:
        """The refiner's aim on FS2K val: realism FD (simple image statistics against the real
        photos) of its faces and of its inputs, stage one's faces. ``validate`` turns them into
        ``val_score``: rank-1, minus the FD ratio above 0.5, minus twice any rank-1 lost against
        stage one (issue 22's go / no-go: a lower FD at rank-1 not lower)."""
        from sketch2face.evaluation.realism import realism_distance_from_features, realism_features

        real = np.stack([realism_features(r) for r in reals[fs2k]])
        fd = realism_distance_from_features(
            np.stack([realism_features(f) for f in refined[fs2k]]), real
        )
        fd_input = realism_distance_from_features(
            np.stack([realism_features(f) for f in stage_one[fs2k]]), real
        )
        return {"val_realism_fd_fs2k": fd, "val_realism_fd_input_fs2k": fd_input}

    def write_samples(self, path: Path, n: int = 6) -> Path:
        """Sample grid PNG: rows of sketch | generated | real from the validation (or train) set."""
        data = (
            self.val_data if self.val_data is not None and len(self.val_data) else self.train_data
        )
        picked = data.rows(torch.linspace(0, len(data) - 1, min(n, len(data))).long())
        attrs = self._attributes_for(picked) if data is self.val_data else None
        fakes = self.generate(data.sketches[picked], attributes=attrs)
        rows = [
            [data.sketches[int(i)].numpy(), fake, data.photos[int(i)].numpy()]
            for i, fake in zip(picked, fakes)
        ]
        return save_png(make_grid(rows), path)

    def _write_curve(self, log_path: Path) -> None:
        """Redraw ``curve.png`` (validation figures against images seen) beside the CSV log."""
        try:
            from sketch2face.training.curve import plot_validation_curves

            plot_validation_curves(
                log_path,
                self.out_dir / "curve.png",
                batch_size=self.cfg.data.batch_size * self.dist.world_size,
                title=f"{self.out_dir.name}: validation",
                direction=self.cfg.data.direction,
            )
        except ImportError:  # matplotlib is the optional "train" extra
            log.debug("matplotlib not installed: no curve.png")

    # ------------------------------------------------------------------ loop
    def fit(self, stop_at_step: int | None = None) -> dict[str, float]:
        """Train until ``run.max_steps`` (or ``stop_at_step``); resumable; returns the last losses."""
        cfg = self.cfg
        end = cfg.run.max_steps if stop_at_step is None else min(stop_at_step, cfg.run.max_steps)
        main = self.dist.is_main_process
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(
                json.dumps(cfg.to_dict(), indent=2, sort_keys=True)
            )
        log_path = self.out_dir / "metrics.csv"
        fields = [
            "step",
            "time_s",
            "images_per_s",
            "lr_g",
            *LOSS_NAMES,
            *VAL_FIELDS,
        ]
        if main:
            _open_metrics_log(log_path, fields, resume_step=self.step)
        bar = tqdm(
            total=cfg.run.max_steps,
            initial=self.step,
            disable=not self.show_progress,
            desc="train",
            dynamic_ncols=True,
        )
        last: dict[str, float] = {}
        window_start, window_images = time.perf_counter(), 0
        t0 = time.perf_counter()
        try:
            while self.step < end:
                batch = self._batch(self.step)
                losses = self.train_step(*batch)
                window_images += batch.sketch.shape[0] * self.dist.world_size
                last = losses
                bar.update(1)
                if not main:
                    continue
                step = self.step
                row: dict[str, Any] = {}
                if step % cfg.run.log_every == 0 or step == cfg.run.max_steps:
                    elapsed = time.perf_counter() - window_start
                    ips = window_images / max(elapsed, 1e-9)
                    window_start, window_images = time.perf_counter(), 0
                    bar.set_postfix(
                        {k: f"{v:.3f}" for k, v in losses.items() if k != "G_total"}
                        | {"img/s": f"{ips:.1f}"}
                    )
                    row = {
                        "step": step,
                        "time_s": round(time.perf_counter() - t0, 1),
                        "images_per_s": round(ips, 2),
                        "lr_g": self.opt_g.param_groups[0]["lr"],
                        **losses,
                    }
                if step % cfg.run.eval_every == 0 or step == cfg.run.max_steps:
                    metrics = self.validate()
                    if metrics:
                        row = row or {"step": step}
                        row.update(metrics)
                        log.info(
                            "step %d: %s",
                            step,
                            ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
                        )
                        if cfg.run.keep_validated:
                            self.save(
                                self.out_dir / "checkpoints" / f"step_{step:07d}.safetensors",
                                metrics,
                            )
                        selected = metrics.get(cfg.run.select_metric, metrics["val_ssim"])
                        if selected > self.best_val_ssim:
                            self.best_val_ssim = selected
                            self.save(self.out_dir / "checkpoints" / "best.safetensors", metrics)
                if row:
                    with log_path.open("a", newline="") as fh:
                        csv.DictWriter(fh, fieldnames=fields).writerow(row)
                    if "val_ssim" in row:
                        self._write_curve(log_path)
                if step % cfg.run.sample_every == 0 or step == cfg.run.max_steps:
                    self.write_samples(self.out_dir / "samples" / f"step_{step:07d}.png")
                if step == cfg.run.max_steps:
                    self.recalibrate_batchnorm()
                    self.save(self.out_dir / "checkpoints" / "final.safetensors")
                if step % cfg.run.checkpoint_every == 0 or step in (cfg.run.max_steps, end):
                    self.save(self.last_checkpoint_path)
        finally:
            bar.close()
            cleanup_distributed()
        return last


def _init_weights(module: nn.Module) -> None:
    """pix2pix init: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
