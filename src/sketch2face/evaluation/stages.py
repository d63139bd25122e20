"""Refined (stage two) against stage one: the ratios and differences issue 22's go/no-go reads.

:func:`compare_stages` turns the figures of two systems scored on the same pairs (each a dict as
in ``EvalReport.systems()``: ``realism_distance``, ``rank1``, ...) into

* ``realism_distance_ratio``: refined realism FD / stage one's (below 1 = closer to real photos);
* ``<figure>_difference`` for rank-1, rank-5, identity cosine, SSIM, PSNR, realism accuracy,
  grid ratio and drawn lines: refined minus stage one (positive = refined higher);
* ``rank1_minus_sketch``: refined rank-1 minus the sketch's own (when the sketch was scored);
* ``go_no_go`` and ``done``: each criterion of the issue with its value, threshold and whether it
  is met (None when a figure is undefined), and ``met`` for all of them together.

Beside them (informative, not part of the issue's verdicts), refined against the trivial second
stage, stage one's face through an unsharp mask (:func:`.baselines.unsharp_mask`), which alone
can cut the realism FD well below 0.6x stage one's:

* ``realism_distance_ratio_vs_sharpened``: refined realism FD / the sharpened stage one's;
* ``rank1_minus_sharpened``: refined rank-1 minus the sharpened stage one's;
* ``beats_sharpened``: the verdict "beats the trivial sharpened stage one on rank-1 and FD" (FD
  strictly lower, rank-1 strictly higher), shaped like ``go_no_go``.

Nothing here knows about images: it only reads figures, so the report, the CLI and a reader of a
saved JSON report get the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Figures compared as "refined minus stage one" (``<key>_difference`` in the comparison).
DIFFERENCE_KEYS = (
    "rank1",
    "rank5",
    "identity_similarity",
    "ssim",
    "psnr",
    "realism_accuracy",
    "grid_artifact_ratio",
    "drawn_lines",
)
#: Slack for ">= 0" comparisons of means of the same number of 0/1 hits.
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class StageCriterion:
    """One target of issue 22: ``figure`` (a comparison key) compared with ``threshold``."""

    name: str
    figure: str
    op: str  # "<=", ">=", "<" or ">"
    threshold: float

    def check(self, figures: Mapping[str, Any]) -> dict[str, Any]:
        """{name, figure, value, op, threshold, met}; ``met`` is None when the value is undefined."""
        value = figures.get(self.figure)
        met: bool | None = None
        if value is not None and math.isfinite(float(value)):
            if self.op == "<=":
                met = float(value) <= self.threshold + _TOLERANCE
            elif self.op == ">=":
                met = float(value) >= self.threshold - _TOLERANCE
            elif self.op == "<":
                met = float(value) < self.threshold - _TOLERANCE
            elif self.op == ">":
                met = float(value) > self.threshold + _TOLERANCE
            else:
                raise ValueError(f"unknown comparison {self.op!r}; use '<=', '>=', '<' or '>'")
        return {
            "name": self.name,
            "figure": self.figure,
            "value": value,
            "op": self.op,
            "threshold": self.threshold,
            "met": met,
        }


#: Issue 22's first experiment: realism FD <= 0.6x stage one's at rank-1 not lower.
GO_NO_GO = (
    StageCriterion("realism FD <= 0.6x stage one", "realism_distance_ratio", "<=", 0.6),
    StageCriterion("rank-1 not below stage one", "rank1_difference", ">=", 0.0),
)
#: Issue 22's "done means" (meant for FS2K test): FD <= 0.5x, realism accuracy <= 0.90,
#: rank-1 >= stage one's and >= the sketch's, grid ratio <= 1.1.
DONE = (
    StageCriterion("realism FD <= 0.5x stage one", "realism_distance_ratio", "<=", 0.5),
    StageCriterion("realism acc <= 0.90", "refined_realism_accuracy", "<=", 0.90),
    StageCriterion("rank-1 >= stage one", "rank1_difference", ">=", 0.0),
    StageCriterion("rank-1 >= sketch itself", "rank1_minus_sketch", ">=", 0.0),
    StageCriterion("grid ratio <= 1.1", "refined_grid_artifact_ratio", "<=", 1.1),
)

#: Title of the verdict against the trivial second stage (``beats_sharpened``).
BEATS_SHARPENED_TITLE = "beats the trivial sharpened stage one on rank-1 and FD"
#: Refined against stage one + unsharp mask: strictly better on both figures. Not one of issue
#: 22's criteria (its verdicts stay as they are); it says whether a refiner that meets them does
#: more than sharpen.
BEATS_SHARPENED = (
    StageCriterion(
        "realism FD < sharpened stage one's", "realism_distance_ratio_vs_sharpened", "<", 1.0
    ),
    StageCriterion("rank-1 > sharpened stage one's", "rank1_minus_sharpened", ">", 0.0),
)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _difference(a: Any, b: Any) -> float | None:
    x, y = _finite(a), _finite(b)
    return None if x is None or y is None else x - y


def _ratio(a: Any, b: Any) -> float | None:
    x, y = _finite(a), _finite(b)
    return None if x is None or y is None or y == 0.0 else x / y


def _verdict(criteria: tuple[StageCriterion, ...], figures: Mapping[str, Any]) -> dict[str, Any]:
    checks = [c.check(figures) for c in criteria]
    outcomes = [c["met"] for c in checks]
    met = None if any(m is None for m in outcomes) else all(outcomes)
    return {"criteria": checks, "met": met}


def compare_stages(
    stage_one: Mapping[str, Any],
    refined: Mapping[str, Any],
    sketch: Mapping[str, Any] | None = None,
    sharpened: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Refined against stage one (and the sketch itself, and stage one sharpened) on the same
    pairs; see the module doc.

    Args:
        stage_one, refined: figures of the two stages (``realism_distance``, ``rank1``, ...).
        sketch: the sketch baseline's figures, or None / an unavailable baseline (then
            ``rank1_minus_sketch`` is None and the "done" verdict is undecided).
        sharpened: the figures of stage one + unsharp mask (the trivial second stage), or None /
            an unavailable baseline (then the figures against it are None and ``beats_sharpened``
            is undecided).

    Returns:
        A JSON-ready dict: the ratios and differences, the refined figures the criteria read
        (``refined_realism_accuracy``, ``refined_grid_artifact_ratio``), and the ``go_no_go`` and
        ``done`` verdicts, the figures against the sharpened stage one and the
        ``beats_sharpened`` verdict; undefined figures are None.
    """
    figures: dict[str, Any] = {
        "realism_distance_ratio": _ratio(
            refined.get("realism_distance"), stage_one.get("realism_distance")
        ),
        **{
            f"{key}_difference": _difference(refined.get(key), stage_one.get(key))
            for key in DIFFERENCE_KEYS
        },
        "rank1_minus_sketch": (
            _difference(refined.get("rank1"), sketch.get("rank1"))
            if sketch is not None and sketch.get("available", True)
            else None
        ),
        "realism_distance_ratio_vs_sharpened": (
            _ratio(refined.get("realism_distance"), sharpened.get("realism_distance"))
            if sharpened is not None and sharpened.get("available", True)
            else None
        ),
        "rank1_minus_sharpened": (
            _difference(refined.get("rank1"), sharpened.get("rank1"))
            if sharpened is not None and sharpened.get("available", True)
            else None
        ),
        "refined_realism_accuracy": _finite(refined.get("realism_accuracy")),
        "refined_grid_artifact_ratio": _finite(refined.get("grid_artifact_ratio")),
    }
    figures["go_no_go"] = _verdict(GO_NO_GO, figures)
    figures["done"] = _verdict(DONE, figures)
    figures["beats_sharpened"] = _verdict(BEATS_SHARPENED, figures)
    return figures


def describe_comparison(comparison: Mapping[str, Any]) -> list[str]:
    """Lines for the summary table: the go/no-go figures, then each verdict criterion by name, then
    refined against the sharpened stage one (when the comparison has it: older saved reports
    do not)."""

    def number(value: Any, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    def verdict(key: str, title: str) -> str:
        block = comparison[key]
        marks = {True: "met", False: "NOT met", None: "undecided"}
        cells = "; ".join(
            f"{c['name']}: {marks[c['met']]} "
            f"({number(c['value'], '+.3f' if c['op'] in ('>=', '>') else '.3f')})"
            for c in block["criteria"]
        )
        return f"  {title} -> {marks[block['met']]}: {cells}"

    lines = [
        "refined vs stage one (same pairs): realism FD ratio "
        f"{number(comparison['realism_distance_ratio'], '.3f')}, rank-1 "
        f"{number(comparison['rank1_difference'], '+.3f')}, rank-5 "
        f"{number(comparison['rank5_difference'], '+.3f')}, identity cos "
        f"{number(comparison['identity_similarity_difference'], '+.4f')}, realism acc "
        f"{number(comparison['realism_accuracy_difference'], '+.3f')}, grid ratio "
        f"{number(comparison['grid_artifact_ratio_difference'], '+.2f')}, drawn lines "
        f"{number(comparison.get('drawn_lines_difference'), '+.2f')}; rank-1 vs the sketch "
        f"itself {number(comparison['rank1_minus_sketch'], '+.3f')}",
        verdict("go_no_go", "issue 22 go/no-go"),
        verdict("done", "issue 22 done-means (on FS2K test)"),
    ]
    if "beats_sharpened" in comparison:
        lines += [
            "refined vs stage one + unsharp mask (trivial 2nd stage, same pairs): realism FD ratio "
            f"{number(comparison.get('realism_distance_ratio_vs_sharpened'), '.3f')}, rank-1 "
            f"{number(comparison.get('rank1_minus_sharpened'), '+.3f')}",
            verdict("beats_sharpened", BEATS_SHARPENED_TITLE),
        ]
    return lines
