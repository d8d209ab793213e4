"""The one statistics helper of the reports: mean and standard error over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


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
