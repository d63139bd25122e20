"""Validation curves of a training run as a PNG: what a person reads faster than the CSV.

One panel per figure family, against images seen: SSIM (all validation pairs and the FS2K artist
sketches, with the mean-face level when known) and identity (FS2K rank-1 of the generated face
next to the rank-1 of the model's own input, the baseline to beat: the sketch itself for the
product, stage one's face for the refiner; and the descriptor cosine).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

#: (column, label, line style) per panel
PANELS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "SSIM (validation)",
        (
            ("val_ssim", "all val pairs", "-"),
            ("val_ssim_fs2k", "FS2K artist sketches", "-"),
        ),
    ),
    (
        "identity, FS2K val (dlib on the photo's face chip)",
        (
            ("val_rank1_fs2k", "rank-1 generated face", "-"),
            ("val_rank1_sketch_fs2k", "rank-1 the sketch itself (baseline)", "--"),
            ("val_id_cos_fs2k", "descriptor cosine", ":"),
        ),
    ),
)

#: label of ``val_rank1_sketch_fs2k`` per ``data.direction``: the trainer ranks the model's own
#: input there, which is not a sketch for every direction
BASELINE_LABELS = {
    "sketch2photo": "rank-1 the sketch itself (baseline)",
    "photo2sketch": "rank-1 the photo itself (the input)",
    "refine": "rank-1 stage one's face (the input, baseline)",
}


def panels_for(
    direction: str = "sketch2photo",
) -> tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]:
    """:data:`PANELS` with the input's rank-1 series named for ``direction``."""
    label = BASELINE_LABELS.get(direction, BASELINE_LABELS["sketch2photo"])
    return tuple(
        (
            title,
            tuple(
                (column, label if column == "val_rank1_sketch_fs2k" else text, style)
                for column, text, style in series
            ),
        )
        for title, series in PANELS
    )


def read_validation_rows(metrics_csv: str | Path) -> list[dict[str, float]]:
    """Rows of a trainer's metrics.csv that carry validation figures, as floats, one per step
    (a run resumed from an earlier checkpoint logs some steps again: the later row wins)."""
    rows: dict[float, dict[str, float]] = {}
    with Path(metrics_csv).open(newline="") as fh:
        for raw in csv.DictReader(fh):
            if not raw.get("val_ssim"):
                continue
            row: dict[str, float] = {}
            for key, value in raw.items():
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    continue
            if "step" in row:
                rows[row["step"]] = row
    return [rows[step] for step in sorted(rows)]


def plot_validation_curves(
    metrics_csv: str | Path,
    out_png: str | Path,
    *,
    batch_size: int,
    images_before: int = 0,
    reference_lines: Mapping[str, float] | None = None,
    events: Mapping[int, str] | None = None,
    title: str = "",
    direction: str = "sketch2photo",
) -> Path | None:
    """Draw the run's validation figures against cumulative images seen; None without data.

    ``images_before`` shifts the x axis by the images seen by earlier phases (warm starts), so
    curves of successive sessions line up; ``reference_lines`` adds flat dashed levels per panel
    title prefix, e.g. ``{"SSIM": 0.45}`` for the mean face; ``events`` marks recipe changes
    (step -> label, e.g. ``{5200: "SSIM loss"}``) with dotted vertical lines on every panel;
    ``direction`` (the run's ``data.direction``) names the baseline: the model's input.
    """
    rows = read_validation_rows(metrics_csv)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    x = [images_before + r["step"] * batch_size for r in rows]
    panels = panels_for(direction)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), dpi=110)
    for ax, (panel_title, series) in zip(axes, panels):
        for column, label, style in series:
            ys = [r.get(column, math.nan) for r in rows]
            if all(math.isnan(y) for y in ys):
                continue
            ax.plot(x, ys, style, marker="o", markersize=3, label=label)
        for prefix, level in (reference_lines or {}).items():
            if panel_title.startswith(prefix):
                ax.axhline(
                    level, color="grey", linestyle="--", linewidth=1, label=f"mean face {level:.3f}"
                )
        for step, label in (events or {}).items():
            at = images_before + step * batch_size
            ax.axvline(at, color="tab:purple", linestyle=":", linewidth=1)
            ax.annotate(
                label,
                (at, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                va="top",
                ha="right",
                color="tab:purple",
            )
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("images seen (cumulative)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel with no series gets no empty legend
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def images_seen(steps_and_batches: Sequence[tuple[int, int]]) -> int:
    """Total images of earlier phases given as (steps, batch size) pairs."""
    return sum(steps * batch for steps, batch in steps_and_batches)
