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
# Stacked MNIST's ensemble metrics, where the runs reported them (runs from before have none)
ENSEMBLE = ("ensemble_modes", "ensemble_kl", "confident_modes")


def headline(summary: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The (coverage, KL) pair a grid's figures draw: the ensemble's where every cell has it."""
    if summary and all(math.isfinite(e.get("ensemble_kl", math.nan)) for e in summary):
        return ("ensemble_modes", "ensemble_kl")
    return ("modes", "kl")


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
            names = {m: seed_key(seed, m) if members > 1 else m for m in (*METRICS, *ENSEMBLE)}
            history: dict[int, dict[str, float]] = defaultdict(dict)
            for metric, name in names.items():
                for point in client.get_metric_history(run.info.run_id, name):
                    history[point.step][metric] = point.value
            for step, measured in sorted(history.items()):
                if all(m in measured for m in METRICS[:3]):
                    rows.append({**values, "seed": seed, "step": step,
                                 **{m: measured.get(m, math.nan) for m in (*METRICS, *ENSEMBLE)}})
    return rows


def summarize(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean, standard error and per-seed values of each metric per (keys..., step) cell."""
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cells[(*(row[k] for k in keys), row["step"])].append(row)
    out = []
    for cell, members in sorted(cells.items(), key=lambda item: tuple(map(str, item[0]))):
        entry = dict(zip((*keys, "step"), cell, strict=True)) | {"seeds": len(members)}
        for metric in (*METRICS, *ENSEMBLE):  # nan where not measured (the toys' digit IS)
            values = [m.get(metric, math.nan) for m in sorted(members, key=lambda m: m["seed"])]
            entry[metric], entry[f"{metric}_se"] = mean_se(values)
            entry[f"{metric}_values"] = values
        out.append(entry)
    return out


_CELL_FORMATS = {"modes": ".0f", "kl": ".2f", "high_quality": ".3f",
                 "inception_score_digit": ".2f", "ensemble_modes": ".0f", "ensemble_kl": ".2f",
                 "confident_modes": ".0f"}


def summary_table(summary: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """Markdown: one line per cell, mean ± standard error, and each seed's value in brackets
    for the headline pair (:func:`headline`). Columns only for what was measured: the digit IS
    and the ensemble's metrics for Stacked MNIST, which the ensemble's pair leads."""
    measured = [m for m in (*METRICS, *ENSEMBLE)
                if any(math.isfinite(e[m]) for e in summary)] if summary else list(METRICS[:3])
    seeded = headline(summary)
    shown = [*(m for m in ENSEMBLE if m in measured), *(m for m in METRICS if m in measured)]
    rows = []
    for entry in sorted(summary, key=lambda e: (*(str(e[k]) for k in keys[:1]),
                                                *(e[k] for k in keys[1:]), e["step"])):
        cells = []
        for metric in shown:
            fmt = _CELL_FORMATS[metric]
            text = f"{entry[metric]:{fmt}} ± {entry[f'{metric}_se']:{fmt}}"
            if metric in seeded:
                text += " (" + "/".join(f"{v:{fmt}}" for v in entry[f"{metric}_values"]) + ")"
            cells.append(text)
        rows.append(
            [*(f"{entry[k]:g}" if isinstance(entry[k], float) else str(entry[k]) for k in keys),
             entry["step"], entry["seeds"], *cells])
    return table([*keys, "step", "seeds", *(NAMES[m].label for m in shown)], rows,
                 markdown=True)
