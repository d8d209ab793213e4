"""Table 1 of the paper (Section 5.2) from an MLflow study of the 25-Gaussian grid: modes, high
quality and KL per method, mean +- standard error over seeds, beside the paper's numbers and
PacGAN's; and Figure 2, a scatter of each method's 50,000 scored samples over the grid.

Everything comes from MLflow: the metrics are each child run's final values (its last step),
the scatters are redrawn from each run's final checkpoint with the evaluation seed, so they
show exactly the samples that were scored."""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from typing import Any

from sigdist.metrics.members import mean_se
from sigdist.metrics.names import METRICS as METRICS_BY_NAME
from sigdist.reports.figures import plt, scatter_figure
from sigdist.reports.runs import child_runs, load_final_trainer
from sigdist.reports.tables import table

METRICS = ("modes", "high_quality", "kl")
LABELS = {"gan": "GAN", "gan_si": "GAN-SI", "sig": "SIG", "vae": "VAE", "veegan": "VEEGAN",
          "unrolled_gan": "Unrolled GAN"}
METHODS = tuple(LABELS)  # Table 1's rows, in its order: the grid of studies/table1.py
# The paper's Table 1: means over 5 trials (modes, high quality, KL); GAN-SI has no row there.
PAPER = {"gan": (4.0, 0.36, 2.87), "vae": (25.0, 0.83, 0.32), "veegan": (23.2, 0.82, 0.38),
         "unrolled_gan": (6.2, 0.42, 1.97), "sig": (25.0, 0.91, 0.14)}
# PacGAN (Lin et al. 2018) on the same 2-D grid protocol, the numbers this project compares with.
PACGAN = (24.8, 0.936, 0.04)


def collect(tracking_uri: str, parent_run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per method, one record per run (ordered by seed): seed, final metrics, steps, run id."""
    from mlflow import MlflowClient

    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in child_runs(MlflowClient(tracking_uri), parent_run_ids, "method"):
        params, metrics = run.data.params, run.data.metrics
        if run.info.status != "FINISHED" or not all(m in metrics for m in METRICS):
            continue
        runs[params["method"]].append({
            "seed": int(params["seed"]), "run_id": run.info.run_id,
            "step": int(metrics["step"]), "steps": int(params["train.steps"]),
            "samples": int(params["run.eval_samples"]),
            **{m: float(metrics[m]) for m in METRICS}})
    return {method: sorted(records, key=lambda r: r["seed"]) for method, records in runs.items()}


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for method, records in runs.items():
        out[method] = {"seeds": [r["seed"] for r in records],
                       "steps": records[0]["steps"] if records else 0}
        for metric in METRICS:
            values = [r[metric] for r in records]
            out[method][metric] = mean_se(values)
            out[method][f"{metric}_values"] = values
    return out


def _fmt(metric: str, value: float) -> str:
    # a mean of mode counts keeps one decimal (the paper's 23.2)
    return f"{value:.1f}" if metric == "modes" else METRICS_BY_NAME[metric].format(value)


def markdown(stats: dict[str, dict[str, Any]], figures: dict[str, str], samples: int) -> str:
    methods = [m for m in METHODS if m in stats]
    lines = ["# Table 1: mode coverage on the 25-Gaussian grid", "",
             "Measured by `studies/table1.py` (grid study under Ray Tune, one MLflow "
             "child run per method and seed); every number below is read back from MLflow: "
             f"each run's metrics at its last step, on {samples:,} generated points. Mean ± "
             "standard error over the seeds (each seed's value in brackets); the paper's "
             "numbers are its means over 5 trials.", ""]
    rows = []
    for method in methods:
        entry = stats[method]
        cells = []
        for metric in METRICS:
            mean, se = entry[metric]
            seeds = "/".join(_fmt(metric, v) for v in entry[f"{metric}_values"])
            cells.append(f"{_fmt(metric, mean)} ± {_fmt(metric, se)} ({seeds})")
        paper = PAPER.get(method)
        paper_cell = " / ".join(f"{v:g}" for v in paper) if paper else "-"
        rows.append([LABELS[method], len(entry["seeds"]), entry["steps"], *cells, paper_cell])
    rows.append(["PacGAN (Lin et al. 2018)", "", "", "", "", "",
                 " / ".join(f"{v:g}" for v in PACGAN)])
    lines += [table(["method", "seeds", "steps", "modes (of 25)", "high quality", "KL",
                     "paper: modes / high quality / KL"], rows, markdown=True), "",
              "Real data scores 25 modes, high quality 0.989, KL 0 (the metrics' own "
              "ceiling). Scatters (the paper's Figure 2), each of a seed-0 run's "
              f"{samples:,} scored samples over the 25 true centres:", ""]
    for method in methods:
        if method in figures:
            lines.append(f"![{LABELS[method]}]({figures[method]})")
    return "\n".join(lines) + "\n"


def table1_report(tracking_uri: str, parent_run_ids: list[str], out: str) -> list[str]:
    """Write ``out/table1.md`` and ``out/table1_<method>.png`` from the studies' MLflow runs;
    return the paths written."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = collect(tracking_uri, parent_run_ids)
    stats = summary(runs)
    figures, written = {}, []
    with tempfile.TemporaryDirectory() as scratch:
        for method in (m for m in METHODS if runs.get(m)):
            record = runs[method][0]
            trainer = load_final_trainer(client, record["run_id"], scratch)
            samples = trainer.generate(trainer.cfg.run.eval_samples)
            title = (f"{LABELS[method]}, seed {record['seed']}, step {record['step']}\n"
                     f"{record['modes']:.0f} modes, HQ {record['high_quality']:.3f}, "
                     f"KL {record['kl']:.3f}")
            fig = scatter_figure(samples, trainer.data.centres, title)
            name = f"table1_{method}.png"
            fig.savefig(os.path.join(out, name))
            plt.close(fig)
            figures[method] = name
            written.append(os.path.join(out, name))
    path = os.path.join(out, "table1.md")
    with open(path, "w") as fh:
        samples = next(r["samples"] for records in runs.values() for r in records)
        fh.write(markdown(stats, figures, samples))
    return [path, *written]
