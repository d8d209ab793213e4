"""Evaluation metrics of the paper's experiments (Section 5)."""

from sigdist.metrics.mixture import (
    count_metrics,
    evaluate_toy,
    mixture_metrics,
    ring_noise_metrics,
)

__all__ = ["count_metrics", "evaluate_toy", "mixture_metrics", "ring_noise_metrics"]
