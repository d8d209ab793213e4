"""What a grid study reports: every cell of the grid at every evaluation step (each evaluation of
a constant-learning-rate run is the same run at a smaller step budget), averaged over seeds,
as a table and as the capacity x budget map (modes and KL against width, one panel a budget).
The rows come from MLflow: each child run's params and its metric histories."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sigdist.config import parse_assignment
from sigdist.metrics.members import mean_se, seed_key
from sigdist.metrics.names import METRICS as NAMES
from sigdist.reports.tables import table

METRICS = ("modes", "kl", "high_quality", "inception_score_digit")


def grid_rows(client, runs, keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per run, seed and evaluation: the run's values of ``keys`` (typed as the config
    types them), the seed, the step and the metrics, from each MLflow run's metric history.
    A run of a seed population (``run.seeds`` P > 1) gives a row per member, seed + i, from
    its ``seed_<s>/`` histories."""
    rows = []
    for run in runs:
        params = run.data.params
        if not all(m in run.data.metrics for m in METRICS[:3]):
            continue  # no evaluation reached MLflow
        values = dict(parse_assignment(f"{k}={params[k]}") for k in (*keys, "seed"))
        members = int(params.get("run.seeds", 1))
        for member in range(members):
            seed = values["seed"] + member
            names = {m: seed_key(seed, m) if members > 1 else m for m in METRICS}
            history: dict[int, dict[str, float]] = defaultdict(dict)
            for metric, name in names.items():
                for point in client.get_metric_history(run.info.run_id, name):
                    history[point.step][metric] = point.value
            for step, measured in sorted(history.items()):
                if all(m in measured for m in METRICS[:3]):
                    rows.append({**values, "seed": seed, "step": step,
                                 **{m: measured.get(m, math.nan) for m in METRICS}})
    return rows


def summarize(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean, standard error and per-seed values of each metric per (keys..., step) cell."""
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cells[(*(row[k] for k in keys), row["step"])].append(row)
    out = []
    for cell, members in sorted(cells.items(), key=lambda item: tuple(map(str, item[0]))):
        entry = dict(zip((*keys, "step"), cell, strict=True)) | {"seeds": len(members)}
        for metric in METRICS:  # nan where not measured (the toys' digit IS)
            values = [m[metric] for m in sorted(members, key=lambda m: m["seed"])]
            entry[metric], entry[f"{metric}_se"] = mean_se(values)
            entry[f"{metric}_values"] = values
        out.append(entry)
    return out


def summary_table(summary: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """Markdown: one line per cell, mean ± standard error (seeds' values in brackets). The
    digit IS column only where it was measured (Stacked MNIST; the toys have none)."""
    digits = any(math.isfinite(e["inception_score_digit"]) for e in summary)
    shown = [m for m in METRICS if digits or m != "inception_score_digit"]
    rows = []
    for entry in sorted(summary, key=lambda e: (*(str(e[k]) for k in keys[:1]),
                                                *(e[k] for k in keys[1:]), e["step"])):
        modes = "/".join(f"{v:.0f}" for v in entry["modes_values"])
        kl = "/".join(f"{v:.2f}" for v in entry["kl_values"])
        rows.append(
            [*(f"{entry[k]:g}" if isinstance(entry[k], float) else str(entry[k]) for k in keys),
             entry["step"], entry["seeds"],
             f"{entry['modes']:.0f} ± {entry['modes_se']:.0f} ({modes})",
             f"{entry['kl']:.2f} ± {entry['kl_se']:.2f} ({kl})",
             f"{entry['high_quality']:.3f} ± {entry['high_quality_se']:.3f}",
             *([f"{entry['inception_score_digit']:.2f} ± "
                f"{entry['inception_score_digit_se']:.2f}"] if digits else [])])
    return table([*keys, "step", "seeds", *(NAMES[m].label for m in shown)], rows,
                 markdown=True)
