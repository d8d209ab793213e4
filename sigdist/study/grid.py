"""What a grid study reports: every cell of the grid at every evaluation step (each evaluation of
a constant-learning-rate run is the same run at a smaller step budget), averaged over seeds,
as a table and as the capacity x budget map (modes and KL against width, one panel a budget)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

METRICS = ("modes", "kl", "high_quality", "inception_score_digit")


def grid_rows(results, keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per trial and evaluation: the trial's values of ``keys``, its seed, the step
    and the metrics, from each trial's whole reported history (Ray Tune's ResultGrid)."""
    rows = []
    for result in results:
        history = result.metrics_dataframe
        if history is None or "step" not in history:
            continue
        for record in history.to_dict("records"):
            if not all(isinstance(record.get(m), int | float) for m in METRICS[:3]):
                continue
            rows.append({**{k: result.config[k] for k in keys}, "seed": result.config["seed"],
                         "step": int(record["step"]),
                         **{m: float(record.get(m, float("nan"))) for m in METRICS}})
    return rows


def summarize(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean, standard error and per-seed values of each metric per (keys..., step) cell."""
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cells[(*(row[k] for k in keys), row["step"])].append(row)
    out = []
    for cell, members in sorted(cells.items(), key=lambda item: tuple(map(str, item[0]))):
        entry = dict(zip((*keys, "step"), cell, strict=True)) | {"seeds": len(members)}
        for metric in METRICS:
            values = [m[metric] for m in sorted(members, key=lambda m: m["seed"])]
            if not all(map(math.isfinite, values)):  # not measured here (the toys' digit IS);
                entry[metric] = entry[f"{metric}_se"] = math.nan  # stdev raises on nan
            else:
                entry[metric] = statistics.mean(values)
                entry[f"{metric}_se"] = (statistics.stdev(values) / math.sqrt(len(values))
                                         if len(values) > 1 else 0.0)
            entry[f"{metric}_values"] = values
        out.append(entry)
    return out


def summary_table(summary: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """Markdown: one line per cell, mean ± standard error (seeds' values in brackets). The
    digit IS column only where it was measured (Stacked MNIST; the toys have none)."""
    digits = any(math.isfinite(e["inception_score_digit"]) for e in summary)
    head = [*keys, "step", "seeds", "modes", "KL", "high quality"]
    if digits:
        head.append("IS (digits)")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for entry in sorted(summary, key=lambda e: (*(str(e[k]) for k in keys[:1]),
                                                *(e[k] for k in keys[1:]), e["step"])):
        modes = "/".join(f"{v:.0f}" for v in entry["modes_values"])
        kl = "/".join(f"{v:.2f}" for v in entry["kl_values"])
        lines.append("| " + " | ".join(
            [*(f"{entry[k]:g}" if isinstance(entry[k], float) else str(entry[k]) for k in keys),
             str(entry["step"]), str(entry["seeds"]),
             f"{entry['modes']:.0f} ± {entry['modes_se']:.0f} ({modes})",
             f"{entry['kl']:.2f} ± {entry['kl_se']:.2f} ({kl})",
             f"{entry['high_quality']:.3f} ± {entry['high_quality_se']:.3f}",
             *([f"{entry['inception_score_digit']:.2f} ± "
                f"{entry['inception_score_digit_se']:.2f}"] if digits else [])]) + " |")
    return "\n".join(lines)


def capacity_map_figure(summary: Sequence[dict[str, Any]], *, x_key: str, line_key: str,
                        x_label: str = "width multiplier", title: str = ""):
    """Modes (top row) and KL (bottom row) against ``x_key`` on a log axis, a line per value
    of ``line_key`` with standard-error bars, a column per step budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({e["step"] for e in summary})
    lines = sorted({e[line_key] for e in summary})
    fig, axes = plt.subplots(2, len(budgets), figsize=(4 * len(budgets), 7), squeeze=False,
                             sharex=True, sharey="row")
    for col, budget in enumerate(budgets):
        for line in lines:
            cells = sorted((e for e in summary if e["step"] == budget and e[line_key] == line),
                           key=lambda e: e[x_key])
            xs = [e[x_key] for e in cells]
            for row, metric in enumerate(("modes", "kl")):
                axes[row][col].errorbar(xs, [e[metric] for e in cells],
                                        yerr=[e[f"{metric}_se"] for e in cells], marker="o",
                                        capsize=3, label=str(line))
        axes[0][col].set_title(f"{budget} steps")
        axes[1][col].set_xlabel(x_label)
        for row in range(2):
            axes[row][col].set_xscale("log", base=2)
            axes[row][col].grid(alpha=0.3)
    axes[0][0].set_ylabel("modes (of 1,000)")
    axes[1][0].set_ylabel("KL(p_gen || uniform), nats")
    axes[0][0].set_ylim(0, 1050)
    axes[0][-1].legend(title=line_key)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves_figure(summary: Sequence[dict[str, Any]], keys: Sequence[str], *,
                           title: str = ""):
    """Modes and KL against the training step, a line (with standard-error bars) per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cells = sorted({tuple(e[k] for k in keys) for e in summary}, key=lambda c: tuple(map(str, c)))
    for cell in cells:
        points = sorted((e for e in summary if tuple(e[k] for k in keys) == cell),
                        key=lambda e: e["step"])
        label = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in cell)
        for ax, metric in zip(axes, ("modes", "kl"), strict=True):
            ax.errorbar([e["step"] for e in points], [e[metric] for e in points],
                        yerr=[e[f"{metric}_se"] for e in points], marker="o", capsize=3,
                        label=label)
    axes[0].set_ylabel("modes (of 1,000)")
    axes[0].set_ylim(0, 1050)
    axes[1].set_ylabel("KL(p_gen || uniform), nats")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[1].legend(title=", ".join(keys), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
