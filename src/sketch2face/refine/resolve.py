"""Which second stage runs: the one place every entry point resolves its refiner.

In order, the first that applies wins:

1. an explicit refiner (``refiner=`` path, ``--refiner PATH``): the project's refiner from that
   checkpoint; ``none`` / ``off`` turns refinement off;
2. explicit GFPGAN weights (``gfpgan_weights=``, ``--gfpgan-weights``): GFPGAN;
3. ``$SKETCH2FACE_REFINER``: that refiner checkpoint (``none`` / ``off``: refinement off);
4. ``$SKETCH2FACE_GFPGAN_WEIGHTS``: GFPGAN;
5. the packaged refiner (``assets/refiner/refiner.safetensors``) when the file is there;
6. nothing: stage one only, with a notice saying how to get a refiner.

An explicit path that cannot be loaded is an error (CheckpointError / WeightsNotFoundError: the
user asked for that file); a setting (environment variable) or the packaged file that cannot be
loaded leaves stage one alone with a notice naming the problem, so a server still starts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from sketch2face.errors import Sketch2FaceError
from sketch2face.refine import own
from sketch2face.refine.base import Refiner
from sketch2face.refine.own import REFINER_ENV_VAR, OwnRefiner

log = logging.getLogger(__name__)

#: values of ``--refiner`` / ``$SKETCH2FACE_REFINER`` that turn refinement off
OFF_VALUES = ("none", "off")
#: the notice of every call asking for refinement when none is loaded starts with this
SKIPPED = "refinement skipped"
NO_REFINER_NOTICE = (
    f"{SKIPPED}: no refiner is installed (this release packages none: those trained so far "
    "cost identification, see assets/refiner/MODEL_CARD.md), so the face is stage one's; to "
    "refine, "
    f"pass --refiner PATH or set {REFINER_ENV_VAR} to a refiner checkpoint, or give GFPGAN "
    "weights with --gfpgan-weights / SKETCH2FACE_GFPGAN_WEIGHTS"
)
OFF_NOTICE = f"{SKIPPED}: refinement is turned off on this installation ({REFINER_ENV_VAR}=none)"


@dataclass(frozen=True)
class RefinerChoice:
    """The resolved second stage.

    Attributes:
        refiner: the loaded refiner, or None (stage one only).
        notice: why there is none, or what went wrong loading one (None when loaded).
        source: where it came from: "argument", "gfpgan-argument", "environment",
            "gfpgan-environment", "packaged", "off" or "none".
    """

    refiner: Refiner | None
    notice: str | None
    source: str


def is_off(value: str | os.PathLike[str] | None) -> bool:
    """Whether a refiner setting means "no refinement" (``none`` or ``off``, any case)."""
    return value is not None and str(value).strip().lower() in OFF_VALUES


def _own(
    path: str | os.PathLike[str],
    source: str,
    device: torch.device | str,
    backend: str,
    *,
    strict: bool,
) -> RefinerChoice:
    """The project's refiner from ``path``; a load error raises when ``strict``, else it is the
    notice of a choice without refiner."""
    try:
        loaded = OwnRefiner.from_checkpoint(path, device=device, backend=backend)
    except Sketch2FaceError as exc:
        if strict:
            raise
        log.warning("refiner (%s) unavailable: %s", source, exc)
        return RefinerChoice(None, f"{SKIPPED}: {exc}", source)
    return RefinerChoice(loaded, None, source)


def resolve_refiner(
    refiner: str | os.PathLike[str] | None = None,
    *,
    gfpgan_weights: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    backend: str = "auto",
) -> RefinerChoice:
    """Resolve and load the second stage (see the module docstring for the order).

    Raises:
        CheckpointError: an explicit ``refiner`` path that is missing or not a refiner.
        WeightsNotFoundError, CheckpointError: explicit ``gfpgan_weights`` that cannot be loaded.
    """
    from sketch2face.refine.gfpgan import WEIGHTS_ENV_VAR, load_refiner

    if refiner is not None and str(refiner).strip():
        if is_off(refiner):
            return RefinerChoice(None, f"{SKIPPED}: turned off (--refiner none)", "off")
        return _own(refiner, "argument", device, backend, strict=True)
    if gfpgan_weights is not None and str(gfpgan_weights).strip():
        gfpgan, _ = load_refiner(gfpgan_weights, strict=True, device=str(device))
        return RefinerChoice(gfpgan, None, "gfpgan-argument")
    env = os.environ.get(REFINER_ENV_VAR, "").strip()
    if env:
        if is_off(env):
            return RefinerChoice(None, OFF_NOTICE, "off")
        return _own(env, "environment", device, backend, strict=False)
    if os.environ.get(WEIGHTS_ENV_VAR, "").strip():
        gfpgan, notice = load_refiner(None, device=str(device))
        return RefinerChoice(gfpgan, notice, "gfpgan-environment")
    if Path(own.DEFAULT_REFINER).is_file():
        return _own(own.DEFAULT_REFINER, "packaged", device, backend, strict=False)
    return RefinerChoice(None, NO_REFINER_NOTICE, "none")


def refiner_configured() -> bool:
    """Whether :func:`resolve_refiner` without arguments would find a refiner file, without
    loading anything (for a status page before the model is loaded)."""
    from sketch2face.refine.gfpgan import resolve_weights_path

    env = os.environ.get(REFINER_ENV_VAR, "").strip()
    if env:
        return not is_off(env) and Path(env).expanduser().is_file()
    weights = resolve_weights_path()
    if weights is not None:
        return weights.is_file()
    return Path(own.DEFAULT_REFINER).is_file()
