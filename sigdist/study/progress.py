"""Ray Tune's progress table for a study: a row per trial with the values that tell trials
apart (method, lam, K, size) and the metrics that rank them, instead of bare trial ids."""

from __future__ import annotations

from typing import Any

PARAMETER_COLUMNS = {"method": "method", "loss.lam": "lam", "loss.k": "K",
                     "model.size": "size", "model.width_g": "width"}
METRIC_COLUMNS = {"step": "step", "modes": "modes", "kl": "KL", "high_quality": "HQ"}


def progress_reporter(options: Any):
    """Ray's CLIReporter with this study's columns: the keys it searches or grids over, else
    all of :data:`PARAMETER_COLUMNS`; at most one table every 30 s."""
    from ray.tune import CLIReporter

    varied = set(options.grid) | (set(PARAMETER_COLUMNS) - set(options.pinned))
    columns = {key: title for key, title in PARAMETER_COLUMNS.items() if key in varied}
    if "seed" in options.grid:
        columns["seed"] = "seed"
    return CLIReporter(parameter_columns=columns or PARAMETER_COLUMNS,
                       metric_columns=METRIC_COLUMNS, max_report_frequency=30,
                       print_intermediate_tables=True)
