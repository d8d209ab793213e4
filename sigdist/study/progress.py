"""Ray Tune's progress table for a study: a row per trial with the values that tell trials
apart (method, lam, K, size) and the metrics that rank them, instead of bare trial ids."""

from __future__ import annotations

from typing import Any

from sigdist.config import has_width
from sigdist.metrics.members import PM_SUFFIX
from sigdist.metrics.names import METRICS, table_metrics

PARAMETER_COLUMNS = {"method": "method", "loss.lam": "lam", "loss.k": "K",
                     "model.size": "size", "model.width_g": "width"}
SIZE_KEYS = ("model.size", "model.width_g")


def progress_reporter(options: Any):
    """Ray's CLIReporter with this study's columns: the keys it searches or grids over, else
    all of :data:`PARAMETER_COLUMNS` that the data set uses, and its metrics; at most one
    table every 30 s."""
    from ray.tune import CLIReporter

    used = dict(PARAMETER_COLUMNS)
    if not has_width(options.base.get("data.name")):
        for key in SIZE_KEYS:
            used.pop(key)
    if options.space is not None and not options.grid:  # the keys the search proposes
        from sigdist.study.search import searched_keys

        pins = {key: options.base[key] for key in options.pinned}
        varied = set(searched_keys(options.space, pins))
    else:
        varied = set(options.grid) | (set(used) - set(options.pinned))
    columns = {key: title for key, title in used.items() if key in varied}
    if "seed" in options.grid:
        columns["seed"] = "seed"
    shown = {name: METRICS[name].short for name in table_metrics(options.metrics[-1])}
    if options.base.get("run.seeds", 1) > 1:  # "mean ± s.e." over each trial's members
        shown = {name + PM_SUFFIX: title for name, title in shown.items()}
        if options.member_objective == "worst":
            shown[options.scheduler_metric[0] + PM_SUFFIX] = (
                METRICS[options.metrics[-1]].short + " worst")
    metrics = {"step": "step", **shown}
    return CLIReporter(parameter_columns=columns or used, metric_columns=metrics,
                       max_report_frequency=30, print_intermediate_tables=True)
