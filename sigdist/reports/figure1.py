"""Figure 1 of the paper (Section 5.1) from an MLflow study of SIG on four toys: data against
generated samples, and the learned mixing distribution q(psi) against the true one.

The metrics are each child run's final values in MLflow; the pictures are redrawn from each
seed-0 run's final checkpoint (logged in MLflow). Generated samples are those the metrics
scored: x ~ Poisson(e^psi) for the count toys, psi itself (the mixing distribution's draws) for
the continuous ones, whose marginal samples x = psi + sigma eps the pictures show too."""

from __future__ import annotations

import math
import os
import tempfile
from collections import defaultdict
from typing import Any

import torch

from sigdist.metrics.members import mean_se
from sigdist.reports.figures import plt
from sigdist.reports.runs import child_runs, load_final_trainer
from sigdist.reports.tables import table

# Figure 1 (Section 5.1): SIG on four toys. Count data under a Poisson likelihood, p(x | psi) =
# Poisson(x; e^psi): both count toys are Poisson mixtures, so the learned rates e^psi can be held
# against the true mixing distribution (NegBin(r, p) = Poisson(Gamma(r, p / (1 - p)))). The
# continuous toys under N(x; psi, sigma^2 I) with sigma the data's own noise, so that the true
# mixing distribution is the ring itself (ring + noise 0.1) or the 8 centres (ring, std 0.02).
# The keys each panel's runs set: the grid of studies/figure1.py.
PANELS = {
    "negbin": {"loss.likelihood": "poisson", "loss.sigma_anneal": 0.0},
    "poisson_negbin": {"loss.likelihood": "poisson", "loss.sigma_anneal": 0.0},
    "ring_noise": {"loss.likelihood": "gaussian", "loss.sigma": 0.1},
    "ring": {"loss.likelihood": "gaussian", "loss.sigma": 0.02},
}
TITLES = {"negbin": "NegBin(5, 0.5)",
          "poisson_negbin": "0.5 Poisson(2) + 0.5 NegBin(10, 0.6)",
          "ring_noise": "ring (radius 2) + N(0, 0.1^2) noise",
          "ring": "8 Gaussians (std 0.02) on a ring"}
# The metric columns of each toy, as ``sigdist.metrics.evaluate_toy`` names them.
PANEL_METRICS = {"negbin": ("tv", "mean", "true_mean"),
                 "poisson_negbin": ("tv", "mean", "true_mean"),
                 "ring_noise": ("radius_mean", "radius_std", "near_ring"),
                 "ring": ("modes", "high_quality", "kl")}
SAMPLES = 50_000


def collect(tracking_uri: str, parent_run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    from mlflow import MlflowClient

    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in child_runs(MlflowClient(tracking_uri), parent_run_ids, "data.name"):
        name = run.data.params["data.name"]
        if run.info.status != "FINISHED" or name not in PANEL_METRICS:
            continue
        runs[name].append({"seed": int(run.data.params["seed"]), "run_id": run.info.run_id,
                           "step": int(run.data.metrics["step"]),
                           "likelihood": run.data.params["loss.likelihood"],
                           "sigma": float(run.data.params["loss.sigma"]),
                           **{m: float(run.data.metrics[m]) for m in PANEL_METRICS[name]}})
    return {name: sorted(records, key=lambda r: r["seed"]) for name, records in runs.items()}


def _gamma_pdf(rate: torch.Tensor, shape: float, scale: float) -> torch.Tensor:
    return torch.exp((shape - 1) * torch.log(rate) - rate / scale - math.lgamma(shape)
                     - shape * math.log(scale))


def panel_figure(trainer, name: str, title: str):
    """Left: data against generated samples; right: learned mixing distribution against the
    true one."""
    data = trainer.data
    real = data.sample(SAMPLES, torch.Generator().manual_seed(12345)).double()
    generated = trainer.generate(SAMPLES).double()
    with torch.no_grad():
        psi = trainer.psi(trainer.noise(SAMPLES, torch.Generator().manual_seed(1))).double()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2), dpi=100)
    if data.kind == "count":
        # the axis ends where the true pmf does (its 0.9995 quantile): a few far samples would
        # squeeze the picture; shares are of all samples, so mass beyond the axis is not hidden
        top = int(torch.nonzero(torch.cumsum(data.pmf(torch.arange(1000)), 0) >= 0.9995)[0]
                  * 1.3) + 2
        values = torch.arange(top)
        for counts, label in ((real, "data"), (generated, "SIG samples")):
            share = torch.bincount(counts[:, 0].long().clamp(max=top), minlength=top + 1)
            left.step(values.numpy(), (share[:top] / len(counts)).numpy(), where="mid",
                      label=label)
        left.plot(values.numpy(), data.pmf(values).numpy(), "k.", ms=4, label="true pmf")
        left.set_xlabel("x")
        rates = psi[:, 0].exp()
        edges = torch.linspace(0, float(top), 81, dtype=torch.float64)
        counts = torch.histc(rates.clamp(max=float(top)), bins=80, min=0, max=float(top))
        right.stairs((counts / (len(rates) * (edges[1] - edges[0]))).numpy(), edges.numpy(),
                     fill=True, alpha=0.6, label="learned rates e^psi")
        grid = torch.linspace(1e-3, float(top), 400, dtype=torch.float64)
        density = torch.zeros_like(grid)
        for weight, component in zip(data.weights, data.components, strict=True):
            if hasattr(component, "r"):  # NegBin(r, p) = Poisson(Gamma(r, scale p / (1 - p)))
                density += weight * _gamma_pdf(grid, component.r,
                                               component.p / (1 - component.p))
            else:  # a Poisson component: a point mass at its rate
                right.axvline(component.rate, color="k", ls="--",
                              label=f"true point mass {weight:g} at {component.rate:g}")
        right.plot(grid.numpy(), density.numpy(), "k-", label="true mixing density")
        right.set_xlabel("Poisson rate")
    else:
        noisy = psi + trainer.cfg.loss.sigma * torch.randn(
            psi.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        shown = slice(0, 10_000)
        left.scatter(noisy[shown, 0], noisy[shown, 1], s=1, alpha=0.3, color="tab:orange",
                     label="SIG samples psi + sigma eps")
        left.scatter(real[shown, 0], real[shown, 1], s=1, alpha=0.3, color="tab:blue",
                     label="data")
        right.scatter(psi[shown, 0], psi[shown, 1], s=1, alpha=0.3, color="tab:green",
                      label="learned psi ~ q(psi)")
        if name == "ring":
            c = data.centres.numpy()
            right.scatter(c[:, 0], c[:, 1], s=40, marker="x", color="k",
                          label="true mixing: 8 point masses")
        else:
            angle = torch.linspace(0, 2 * math.pi, 400)
            right.plot(data.radius * angle.cos(), data.radius * angle.sin(), "k-", lw=1,
                       label="true mixing: the circle")
        for ax in (left, right):
            ax.set_aspect("equal")
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
    left.set_title("data vs samples", fontsize=9)
    right.set_title("mixing distribution: learned vs true", fontsize=9)
    for ax in (left, right):
        legend = ax.legend(fontsize=7, loc="upper right")
        for handle in legend.legend_handles:  # scatter dots of size 1 legible in the legend
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([20])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _row(name: str, records: list[dict[str, Any]]) -> list[Any]:
    cells = []
    for metric in PANEL_METRICS[name]:
        values = [r[metric] for r in records]
        mean, se = mean_se(values)
        seeds = "/".join(f"{v:.3f}" for v in values)
        cells.append(f"{metric} {mean:.3f} ± {se:.3f} ({seeds})")
    first = records[0]
    likelihood = first["likelihood"] + (f", sigma {first['sigma']:g}"
                                        if first["likelihood"] == "gaussian" else "")
    return [TITLES[name], likelihood, len(records), first["step"], "; ".join(cells)]


def figure1_report(tracking_uri: str, parent_run_ids: list[str], out: str) -> list[str]:
    """Write ``out/figure1.md`` and ``out/figure1_<data>.png``; return the paths written."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = collect(tracking_uri, parent_run_ids)
    names = [n for n in PANELS if runs.get(n)]
    lines = ["# Figure 1: SIG on the toy data", "",
             "Measured by `studies/figure1.py` (grid study under Ray Tune, one "
             "MLflow child run per data set and seed); the metrics are read back from MLflow, "
             "each run's values at its last step (mean ± standard error over seeds, each seed's "
             "value in brackets). Count toys: `tv` is the total-variation distance between the "
             "samples' histogram and the true pmf, `mean` against `true_mean`. Ring + noise: "
             "radius mean and std and the share within 3 noise std of the circle, all of psi, "
             "the learned mixing distribution (true: radius 2, std 0). Ring of 8 Gaussians: "
             "Table 1's metrics on psi (modes of 8, high quality, KL).", "",
             table(["data", "likelihood", "seeds", "steps", "metrics"],
                   [_row(name, runs[name]) for name in names], markdown=True)]
    lines += ["", "Each picture: a seed-0 run's final model, 50,000 samples (10,000 shown in "
              "the scatters).", ""]
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            trainer = load_final_trainer(client, runs[name][0]["run_id"], scratch)
            fig = panel_figure(trainer, name, f"SIG on {TITLES[name]} (seed "
                                              f"{runs[name][0]['seed']}, step "
                                              f"{runs[name][0]['step']})")
            file = f"figure1_{name}.png"
            fig.savefig(os.path.join(out, file))
            plt.close(fig)
            written.append(os.path.join(out, file))
            lines.append(f"![{TITLES[name]}]({file})")
    path = os.path.join(out, "figure1.md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return [path, *written]
