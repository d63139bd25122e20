"""Learning-rate policy as a pure function of the step."""

from __future__ import annotations


def linear_decay_factor(step: int, max_steps: int, decay_start_fraction: float) -> float:
    """1.0 until ``decay_start_fraction * max_steps``, then linearly down to 0 at ``max_steps``."""
    start = int(max_steps * decay_start_fraction)
    if step < start or max_steps <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / float(max_steps - start))
