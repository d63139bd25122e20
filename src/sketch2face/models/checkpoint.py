"""One self-describing checkpoint format (safetensors) for training, resuming and inference.

Tensors: ``generator.*``, ``discriminator.*``, optionally ``generator_ema.*`` (the exponential
moving average of the generator's weights, which inference prefers), ``opt_generator.*``/
``opt_discriminator.*`` (Adam state, flattened) and ``rng.*``. Metadata (strings): ``format``, ``config`` (the full
TrainConfig JSON), ``generator_config``, ``discriminator_config``, ``step``, ``manifest_sha256``,
``sketch2face_version``, ``metrics`` (JSON, e.g. validation SSIM).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sketch2face import __version__
from sketch2face.errors import CheckpointError
from sketch2face.models.patchgan import DiscriminatorConfig, PatchGANDiscriminator
from sketch2face.models.unet import GeneratorConfig, UNetGenerator

FORMAT = "sketch2face-checkpoint-v1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: tensors grouped by prefix plus parsed metadata."""

    path: Path
    tensors: dict[str, torch.Tensor]
    generator_config: GeneratorConfig
    discriminator_config: DiscriminatorConfig | None
    step: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    manifest_sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix.`` with the prefix removed."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}

    @property
    def has_ema(self) -> bool:
        """Whether the checkpoint holds an exponential moving average of the generator."""
        return any(k.startswith("generator_ema.") for k in self.tensors)

    def generator_state(self, *, prefer_ema: bool = True) -> dict[str, torch.Tensor]:
        """The generator weights for inference: the moving average when there is one (it is
        smoother and steadier between steps than the raw weights), else the trained weights."""
        if prefer_ema and self.has_ema:
            return self.group("generator_ema")
        return self.group("generator")

    def build_generator(self, *, prefer_ema: bool = True) -> UNetGenerator:
        """A generator with this checkpoint's architecture and weights (fp32; EMA when present)."""
        net = UNetGenerator(self.generator_config)
        load_weights(net, self.generator_state(prefer_ema=prefer_ema), self.path, "generator")
        return net

    def build_discriminator(self) -> PatchGANDiscriminator | None:
        """The discriminator, or None when the checkpoint holds none."""
        if self.discriminator_config is None or not self.group("discriminator"):
            return None
        net = PatchGANDiscriminator(self.discriminator_config)
        load_weights(net, self.group("discriminator"), self.path, "discriminator")
        return net


def load_weights(net: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """Strictly load ``state`` into ``net`` (casting dtype), with an error that names the file."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong_shape:
        detail = []
        if missing:
            detail.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            detail.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if wrong_shape:
            k = wrong_shape[0]
            detail.append(
                f"shape of {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            )
        raise CheckpointError(
            f"{path}: the {what} weights do not match its architecture ({'; '.join(detail)}); "
            "the file was written for another model or is damaged."
        )
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def _flatten_optimizer(
    prefix: str, opt: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], str]:
    state = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{prefix}.{idx}.{key}"] = t.detach().cpu().contiguous()
    return tensors, json.dumps(state["param_groups"])


def _restore_optimizer(
    ckpt: Checkpoint, prefix: str, opt: torch.optim.Optimizer, groups: str
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in ckpt.group(prefix).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": json.loads(groups)})


def save_checkpoint(
    path: str | os.PathLike,
    *,
    generator: nn.Module,
    discriminator: nn.Module | None = None,
    generator_config: GeneratorConfig,
    discriminator_config: DiscriminatorConfig | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    step: int = 0,
    config_json: str = "{}",
    manifest_sha256: str = "",
    metrics: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file + rename). ``dtype`` casts float weights (fp16 release)."""

    def cast(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        return t.contiguous()

    tensors: dict[str, torch.Tensor] = {}
    for k, v in generator.state_dict().items():
        tensors[f"generator.{k}"] = cast(v)
    if discriminator is not None:
        for k, v in discriminator.state_dict().items():
            tensors[f"discriminator.{k}"] = cast(v)
    metadata = {
        "format": FORMAT,
        "sketch2face_version": __version__,
        "generator_config": json.dumps(generator_config.to_dict()),
        "step": str(step),
        "config": config_json,
        "manifest_sha256": manifest_sha256,
        "metrics": json.dumps(metrics or {}),
    }
    if discriminator_config is not None:
        metadata["discriminator_config"] = json.dumps(discriminator_config.to_dict())
    for name, opt in (optimizers or {}).items():
        flat, groups = _flatten_optimizer(f"opt_{name}", opt)
        tensors.update(flat)
        metadata[f"opt_{name}_groups"] = groups
    for k, v in (extra_tensors or {}).items():
        tensors[k] = v.detach().cpu().contiguous()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_metadata(path: Path) -> dict[str, str]:
    """Only the metadata of a safetensors file (cheap: reads the header)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and validate a checkpoint; errors name the file and say what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found; pass --checkpoint with an existing file.")
    try:
        metadata = read_metadata(p)
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{p} is not a readable safetensors checkpoint ({exc}); it may be truncated or of "
            "another format. Re-copy the file or train a new one."
        ) from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{p} is not a sketch2face checkpoint (format {metadata.get('format')!r}, "
            f"expected {FORMAT!r})."
        )
    try:
        gen_cfg = GeneratorConfig(**json.loads(metadata["generator_config"]))
        disc_cfg = (
            DiscriminatorConfig(**json.loads(metadata["discriminator_config"]))
            if "discriminator_config" in metadata
            else None
        )
        return Checkpoint(
            path=p,
            tensors=tensors,
            generator_config=gen_cfg,
            discriminator_config=disc_cfg,
            step=int(metadata.get("step", "0")),
            config=json.loads(metadata.get("config") or "{}"),
            manifest_sha256=metadata.get("manifest_sha256", ""),
            metrics=json.loads(metadata.get("metrics") or "{}"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: damaged checkpoint metadata ({exc}).") from exc


def restore_optimizers(ckpt: Checkpoint, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Load Adam states saved by :func:`save_checkpoint` into ``optimizers``."""
    meta = read_metadata(ckpt.path)
    for name, opt in optimizers.items():
        groups = meta.get(f"opt_{name}_groups")
        if groups is None:
            raise CheckpointError(
                f"{ckpt.path} holds no optimiser state for {name}; cannot resume."
            )
        _restore_optimizer(ckpt, f"opt_{name}", opt, groups)


def export_release(
    source: str | os.PathLike, target: str | os.PathLike, *, metrics: dict[str, Any] | None = None
) -> Path:
    """Write a shippable model: both networks in fp16, config and metrics kept, optimisers dropped.

    The generator written is the one inference uses (its moving average when the checkpoint has
    one), so the release holds a single generator.

    Keeping the discriminator lets a later session resume adversarial fine-tuning from the shipped
    model (``run.init_from``) instead of starting the GAN game from scratch.
    """
    ckpt = load_checkpoint(source)
    generator = ckpt.build_generator()
    discriminator = ckpt.build_discriminator()
    return save_checkpoint(
        target,
        generator=generator,
        discriminator=discriminator,
        generator_config=ckpt.generator_config,
        discriminator_config=ckpt.discriminator_config,
        step=ckpt.step,
        config_json=json.dumps(ckpt.config),
        manifest_sha256=ckpt.manifest_sha256,
        metrics={**ckpt.metrics, **(metrics or {})},
        dtype=torch.float16,
    )
