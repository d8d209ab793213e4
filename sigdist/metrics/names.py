"""Every metric a run reports, named once: its label in tables and figures, its short column
title, its format, which direction is better, and the data sets that have it. The progress
table, the MLflow tracking, the studies' objectives and every report read it from here."""

from __future__ import annotations

from dataclasses import dataclass

GRID_TOYS = ("gmm25", "ring")  # mode coverage of a mixture of Gaussians
COVERAGE = (*GRID_TOYS, "mnist3")


@dataclass(frozen=True)
class Metric:
    name: str  # as the metric functions return it and MLflow logs it
    label: str  # in tables and figures
    short: str  # a progress-table column title
    fmt: str  # format spec of one value
    better: str  # "max" or "min"; "" for a description (a mean), neither better
    datasets: tuple[str, ...]  # the data sets whose evaluation reports it

    def format(self, value: float) -> str:
        return format(value, self.fmt)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("modes", "modes", "modes", ".0f", "max", COVERAGE),
    Metric("high_quality", "high quality", "HQ", ".3f", "max", COVERAGE),
    Metric("kl", "KL", "KL", ".3f", "min", COVERAGE),
    Metric("inception_score_digit", "IS (digits)", "IS-d", ".2f", "max", ("mnist3",)),
    # Stacked MNIST through an ensemble of digit classifiers (metrics/stacked.py)
    Metric("ensemble_modes", "modes (ensemble)", "modes-E", ".0f", "max", ("mnist3",)),
    Metric("ensemble_kl", "KL (ensemble)", "KL-E", ".3f", "min", ("mnist3",)),
    Metric("ensemble_high_quality", "high quality (ensemble)", "HQ-E", ".3f", "max",
           ("mnist3",)),
    Metric("confident_modes", "confident modes", "conf", ".0f", "max", ("mnist3",)),
    Metric("classifier_spread_kl", "KL spread over classifiers", "KL-C", ".3f", "",
           ("mnist3",)),
    Metric("inception_score", "inception score", "IS", ".3f", "max", ("mnist3", "cifar10")),
    Metric("fid", "FID", "FID", ".2f", "min", ("cifar10",)),
    Metric("tv", "total variation", "TV", ".3f", "min", ("negbin", "poisson_negbin")),
    Metric("mean", "mean", "mean", ".3f", "", ("negbin", "poisson_negbin")),
    Metric("true_mean", "true mean", "true mean", ".3f", "", ("negbin", "poisson_negbin")),
    Metric("radius_mean", "radius mean", "radius", ".3f", "", ("ring_noise",)),
    Metric("radius_std", "radius std", "radius std", ".3f", "", ("ring_noise",)),
    Metric("near_ring", "near the ring", "near", ".3f", "max", ("ring_noise",)),
)}

# The objectives a study can optimise (--objective): one metric, or two for a Pareto front
# (quality vs coverage); ASHA compares trials on the last, the coverage one.
OBJECTIVES = {"kl": ("kl",), "pareto": ("high_quality", "kl")}
FIDELITY_OBJECTIVES = {"fid": ("fid",), "pareto": ("inception_score", "fid")}  # CIFAR-10
# Stacked MNIST: the ensemble's, which no single classifier decides (docs/classifiers.md)
STACKED_OBJECTIVES = {"kl": ("ensemble_kl",), "pareto": ("ensemble_high_quality", "ensemble_kl")}
ENSEMBLE_TABLE = ("ensemble_modes", "ensemble_kl", "confident_modes")


def metrics_of(data_name: str | None) -> list[str]:
    """The metrics the evaluation of ``data_name`` reports, in the registry's order."""
    return [name for name, metric in METRICS.items() if data_name in metric.datasets]


def modes_of(names: tuple[str, ...] | list[str]) -> list[str]:
    """Each metric's direction, as Ray Tune and Optuna take it."""
    return [METRICS[name].better for name in names]


def table_metrics(objective_metric: str) -> tuple[str, ...]:
    """The metrics shown beside a study's trials, by the metric that ranks them."""
    if objective_metric in ("fid", "inception_score"):
        return ("inception_score", "fid")
    if objective_metric in STACKED_OBJECTIVES["pareto"]:
        return (*ENSEMBLE_TABLE, "ensemble_high_quality")
    return ("modes", "kl", "high_quality")


__all__ = ["ENSEMBLE_TABLE", "FIDELITY_OBJECTIVES", "METRICS", "OBJECTIVES", "STACKED_OBJECTIVES",
           "Metric", "metrics_of", "modes_of", "table_metrics"]
