"""Statistics over seeds, named once: the mean and standard error that the reports give over
seeds, and the summary of a seed population's members (``run.seeds``) that its evaluations
report: each metric's mean under its own name, ``<name>_se``, ``<name>_worst`` (the worst
member by the metric's direction) and ``seed_<s>/<name>`` (the value of the member of seed s;
MLflow shows one section per seed, and sorts them after the trial's own metrics)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from sigdist.metrics.names import METRICS


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample stdev / sqrt n; 0 for one value, nan where
    a value is nan: a metric the data set does not have)."""
    if not values:
        return math.nan, math.nan
    if not all(map(math.isfinite, values)):
        return math.nan, math.nan
    if len(values) < 2:
        return float(values[0]), 0.0
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


SE_SUFFIX = "_se"
WORST_SUFFIX = "_worst"
PM_SUFFIX = "_pm"  # "mean ± s.e." as text, for the progress table (not an MLflow metric)


def seed_key(seed: int, name: str) -> str:
    """The value of ``name`` of a population's member of seed ``seed``."""
    return f"seed_{seed}/{name}"


def base_metric(key: str) -> str:
    """The registry's name behind a reported key: ``kl_worst`` and ``kl_se`` are ``kl``'s."""
    for suffix in (WORST_SUFFIX, SE_SUFFIX):
        if key.endswith(suffix) and key[:-len(suffix)] in METRICS:
            return key[:-len(suffix)]
    return key


def label(key: str) -> str:
    """A reported key as tables and figures title it: "KL", "KL (worst member)"."""
    name = base_metric(key)
    text = METRICS[name].label if name in METRICS else name
    return text + (" (worst member)" if key == name + WORST_SUFFIX else "")


def with_se(metrics: dict[str, float], name: str) -> str:
    """``name``'s value formatted by the registry, "mean ± s.e." where the trial had several
    seeds (its ``_se`` reported)."""
    metric = METRICS[base_metric(name)]
    text = metric.format(metrics.get(name, math.nan))
    se = metrics.get(name + SE_SUFFIX)
    return f"{text} ± {metric.format(se)}" if se is not None else text


def mean_se_texts(metrics: dict[str, float]) -> dict[str, str]:
    """``<name>_pm``: "mean ± s.e." of every registry metric a population reported, and
    ``<name>_worst_pm``: its worst member, as the registry formats it."""
    texts = {}
    for name, metric in METRICS.items():
        if name in metrics and name + SE_SUFFIX in metrics:
            texts[name + PM_SUFFIX] = with_se(metrics, name)
        if name + WORST_SUFFIX in metrics:
            texts[name + WORST_SUFFIX + PM_SUFFIX] = metric.format(metrics[name + WORST_SUFFIX])
    return texts


def worst(name: str, values: Sequence[float]) -> float:
    """The worst of the members' values of metric ``name`` (least modes, largest KL, largest
    FID, ...); nan where a value is nan or the metric has no better direction."""
    better = METRICS[name].better if name in METRICS else ""
    if not better or not all(map(math.isfinite, values)):
        return math.nan
    return min(values) if better == "max" else max(values)


def summarize_members(per_member: Sequence[dict[str, float]], seeds: Sequence[int], *,
                      spread: Callable[[str], bool] = lambda name: True,
                      per_seed: Callable[[str], bool] = lambda name: True) -> dict[str, float]:
    """A population's metrics from each member's (the same names in each; member i of seed
    ``seeds[i]``): the mean under the metric's own name; for the ``spread`` names its standard
    error and worst member (for metrics with a direction); for the ``per_seed`` names every
    member's value."""
    out: dict[str, float] = {}
    for name in per_member[0]:
        values = [float(member[name]) for member in per_member]
        out[name], se = mean_se(values)
        if spread(name):
            out[name + SE_SUFFIX] = se
            if not math.isnan(bad := worst(name, values)):
                out[name + WORST_SUFFIX] = bad
        if per_seed(name):
            for seed, value in zip(seeds, values, strict=True):
                out[seed_key(seed, name)] = value
    return out
