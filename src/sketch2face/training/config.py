"""Training configuration: frozen dataclasses, loaded from TOML with ``a.b=value`` overrides."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketch2face.errors import ConfigError
from sketch2face.models.patchgan import DiscriminatorConfig
from sketch2face.models.unet import GeneratorConfig


@dataclass(frozen=True)
class DataConfig:
    """Where the prepared dataset is and how batches are drawn."""

    dataset_dir: str = "datasets/fs2k_celeba"
    train_split: str = "train"
    val_split: str = "val"
    batch_size: int = 8
    #: train at this size (area-downscaled from the 256-px dataset); the U-Net is fully
    #: convolutional, so a model trained at 128 px and then fine-tuned at 256 px runs at 256
    image_size_px: int = 256
    augment: bool = True  # same flip + resize-crop jitter on sketch and photo (pix2pix 286->256)
    jitter_px: int = 30
    sources: tuple[str, ...] = ()  # restrict to these manifest sources (empty = all)
    #: chance of dropping each attribute group (skin, hair, gender) per sample when the generator
    #: is attribute-conditioned: keeps "unspecified" in distribution
    attribute_dropout: float = 0.3
    #: "source:k" repeats that source's pairs k times per epoch (e.g. artist sketches over synthetic)
    oversample: tuple[str, ...] = ()
    #: sketch-style augmentation strength (training/sketch_augment.py): stroke width, pressure,
    #: blur, paper tone and grain, unfinished strokes; 0 = off, 1 = the default mix
    sketch_augment: float = 0.0
    #: fraction of rows whose witness request is replaced by one that disagrees with the photo
    #: (attributes.counterfactual_requests): pixel losses become structure-only there, identity is
    #: off where the gender was swapped, and loss.attribute / loss.gender judge the request
    counterfactual: float = 0.0
    #: "sketch2photo" (the product) or "photo2sketch": the reverse model that draws artist-style
    #: sketches from photos (back-translation, issue 21). It trains on the same pairs with input
    #: and target swapped and the drawing style (``data.artist_styles``) as the condition.
    #: "refine": the second stage (issue 22), a face in and the photo out: real photos degraded
    #: like stage one's faces (refine/degrade.py) in training, stage one's own faces in validation.
    direction: str = "sketch2photo"
    #: leave these manifest styles out of training (e.g. "fs2k_style2": an artist never seen)
    exclude_styles: tuple[str, ...] = ()
    #: direction "refine": the stage-one model whose faces of the validation sketches the refiner
    #: is validated on ("" = the packaged default model)
    stage_one_checkpoint: str = ""
    #: direction "refine": share of training rows whose input is stage one's own face of the row's
    #: sketch (pairs (b): the real artefacts), among the rows that can have one (see
    #: ``stage_one_sources``); the rest are photos degraded like them (pairs (a))
    stage_one_pairs: float = 0.0
    #: direction "refine": pairs (b) only from train rows of these sources (empty = every source of
    #: ``sources``); stage one's faces are computed for those rows alone, and other rows always get
    #: pairs (a). Pick sketches stage one never trained on (e.g. "celeba_artist"): its faces of its
    #: own training sketches are memorised, far cleaner than its faces of new sketches
    stage_one_sources: tuple[str, ...] = ()
    #: direction "refine": at most this many rows get stage one's faces (0 = all of them), spread
    #: evenly over the chosen rows; stage one runs at a few faces a second on a CPU, so this bounds
    #: the one-off cost before the first step
    stage_one_max_rows: int = 0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(
                f"data.direction must be one of {', '.join(DIRECTIONS)}, not {self.direction!r}"
            )
        if not 0.0 <= self.stage_one_pairs <= 1.0:
            raise ConfigError(f"data.stage_one_pairs must be in [0, 1], not {self.stage_one_pairs}")
        if self.stage_one_max_rows < 0:
            raise ConfigError(
                f"data.stage_one_max_rows must be 0 (all rows) or more, not {self.stage_one_max_rows}"
            )
        outside = sorted(set(self.stage_one_sources) - set(self.sources)) if self.sources else []
        if outside:
            raise ConfigError(
                f"data.stage_one_sources {outside} are not among data.sources "
                f"{list(self.sources)}: rows of other sources are never loaded"
            )


#: what a model translates: the product's sketch -> photo, or its back-translation helper
DIRECTIONS = ("sketch2photo", "photo2sketch", "refine")
#: loss.identity_chips: cut the generated face's chip at the photo's landmarks or at its own
IDENTITY_CHIPS = ("photo", "own")


@dataclass(frozen=True)
class LossConfig:
    """Generator loss = gan * L_GAN + l1 * L1 + ssim * (1 - SSIM) + contextual * CX + identity * ID
    + face_perceptual * P + gender * BCE(gender head) + attribute * L1(region colours)
    + spectrum * S (radial power spectrum) + keep_structure * K (refiner: coarse luma of its input)
    + dark_lines * D + bright_lines * B (thin dark / bright lines the photo lacks)."""

    gan: float = 1.0
    l1: float = 100.0  # pix2pix §3.1
    #: 1 - SSIM with the evaluation's window (models/losses.ssim_loss); 0 = off (the seed recipe)
    ssim: float = 0.0
    contextual: float = 1.0
    contextual_backbone: str = "discriminator"  # or "vgg19" (needs vgg19_weights)
    vgg19_weights: str = ""
    contextual_pool_px: int = 16  # features pooled to this size: CX costs O((px^2)^2)
    contextual_band_width: float = 0.5
    #: 1 - cosine of dlib face descriptors of generated and real face (models/face_losses.py);
    #: needs the photos' 5 landmarks (computed by `prepare`, cached)
    identity: float = 0.0
    #: L1 of the face recogniser's residual-stage activations (normalised per stage)
    face_perceptual: float = 0.0
    #: cross-entropy of the shipped gender head (evaluation/gender.py) on the generated face's
    #: descriptor against the photo's gender (FS2K label or pseudo label); needs identity > 0
    gender: float = 0.0
    #: L1 of the mean colour of the generated cheeks / hair band against the requested skin tone /
    #: hair colour (models/losses.region_colour_loss), on every row with that request
    attribute: float = 0.0
    #: mean |log10 luma power| difference per radial frequency band between each face and its own
    #: photo (models/losses.spectrum_loss): pays for missing detail, not for where it is
    spectrum: float = 0.0
    #: refiner runs only (data.direction "refine"): mean |coarse luma of the refined face - of its
    #: input| inside the face oval (models/losses.structure_keeping_loss): detail may change, the
    #: face's shape and shading (who it is) may not
    keep_structure: float = 0.0
    #: Gaussian sigma (px at 256) of that coarse luma: structure larger than ~2 sigma is kept
    keep_structure_sigma_px: float = 3.0
    #: mean strength of thin dark lines (black top-hat of the luma, models/losses.dark_line_loss)
    #: in the face beyond its photo's at the same pixel: no drawn outlines where the photo has none
    dark_lines: float = 0.0
    #: the same for thin bright lines and spots the photo lacks (models/losses.bright_line_loss)
    bright_lines: float = 0.0
    #: a stroke narrower than 2 * this + 1 px (at 256) is a line, a wider one shading
    dark_line_width_px: int = 3
    #: where the generated face's chip for identity / perceptual is cut: "photo" (at the photo's
    #: landmarks) or "own" (at the landmarks dlib finds on the generated face, as the evaluation
    #: and a gallery search align it; validation rank-1 then aligns faces the same way)
    identity_chips: str = "photo"
    #: random similarity jitter of the face chip each step (keeps the recogniser from being gamed)
    chip_jitter: bool = True


@dataclass(frozen=True)
class OptimConfig:
    """Adam for both networks, constant LR then linear decay to zero (pix2pix policy)."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start_fraction: float = 0.5  # of max_steps


@dataclass(frozen=True)
class RuntimeConfig:
    """Device, precision and reproducibility."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (fp16 only on CUDA, with a GradScaler)
    channels_last: bool = True
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = all cores


@dataclass(frozen=True)
class RunConfig:
    """Length of the run, output folder and how often to log, sample, evaluate and save."""

    out_dir: str = "runs/default"
    max_steps: int = 20000
    log_every: int = 20
    sample_every: int = 500
    eval_every: int = 1000
    eval_pairs: int = 64
    checkpoint_every: int = 500
    #: training batches (of 16) to re-estimate BatchNorm statistics before validation and at the end
    bn_recalibration_batches: int = 16
    #: warm start: a checkpoint whose network weights are loaded (not optimisers)
    init_from: str = ""
    #: validation figure that picks best.safetensors: "val_ssim", or "val_score" (FS2K-val SSIM +
    #: FS2K-val identity rank-1: artist sketches are the target, and SSIM alone rewards blur).
    #: With ``data.direction = "refine"``, "val_score" is another formula: FS2K-val rank-1 minus
    #: the realism-FD ratio (refined / stage one's faces) above 0.5, minus twice any rank-1 lost
    #: against stage one (``Pix2PixTrainer.validate``)
    select_metric: str = "val_ssim"
    #: also keep a checkpoint of every validation (``checkpoints/step_NNNNNNN.safetensors``), so a
    #: run whose best point the select metric misjudged can still be shipped from that point
    keep_validated: bool = False
    #: exponential moving average of the generator's weights (0 = off). Validation, samples, best/
    #: final checkpoints and exports use the average: it smooths the step-to-step swings of the
    #: GAN game (FS2K-val rank-1 moved by +-0.17 between evaluations without it)
    ema_decay: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; stored as JSON in every checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.loss.keep_structure > 0 and self.data.direction != "refine":
            raise ConfigError(
                "loss.keep_structure keeps a refiner's output close to its input face; a "
                f"{self.data.direction!r} run's input is not a face: set it to 0 or use "
                'data.direction = "refine"'
            )
        if self.loss.identity_chips not in IDENTITY_CHIPS:
            raise ConfigError(
                f"loss.identity_chips must be one of {', '.join(IDENTITY_CHIPS)}, "
                f"not {self.loss.identity_chips!r}"
            )
        if self.loss.dark_line_width_px < 1:
            raise ConfigError(
                f"loss.dark_line_width_px must be >= 1, not {self.loss.dark_line_width_px}"
            )
        if self.loss.keep_structure_sigma_px <= 0:
            raise ConfigError(
                f"loss.keep_structure_sigma_px must be > 0, not {self.loss.keep_structure_sigma_px}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Stable JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if tp in (int, float, str):
            return tp(value)
        if origin is tuple:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            (item_tp, _ellipsis) = typing.get_args(tp)
            return tuple(_coerce(v, item_tp, key) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key {key!r}: cannot use {value!r} as {tp}") from exc
    return value


def _build(cls: Any, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown config key {prefix + key!r}; valid keys: {', '.join(sorted(fields))}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix + key!r} must be a table")
            kwargs[key] = _build(tp, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, prefix + key)
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a nested dict; unknown keys are errors."""
    return typing.cast(TrainConfig, _build(TrainConfig, values, ""))


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    dotted, raw = override.split("=", 1)
    parts = dotted.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    node[parts[-1]] = raw.strip()


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Load a TOML config (or the defaults) and apply ``section.key=value`` overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found")
        try:
            tree = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p} is not valid TOML: {exc}") from exc
    for override in overrides or []:
        _apply_override(tree, override)
    return config_from_dict(tree)
