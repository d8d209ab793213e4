"""Every picture the project draws (matplotlib, files only): samples (the scatter over the true
centres of Figure 2, the count histograms of Figure 1, image grids of Figures 4-6), a grid
study's capacity map and learning curves, and a study's metric against lam."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from sigdist.data import DataSet, ToyData  # noqa: E402
from sigdist.metrics.names import METRICS  # noqa: E402


def toy_samples_figure(samples: torch.Tensor, data: ToyData, *, max_points: int = 5000,
                       title: str = "") -> plt.Figure:
    """Generated samples over the data: centres (mixtures), the true pmf (counts)."""
    points = samples[:max_points].detach().cpu().double().numpy()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if data.kind == "count":
        values = np.arange(0, int(max(points.max(), 1)) + 2)
        ax.hist(points[:, 0], bins=values - 0.5, density=True, alpha=0.6, label="generated")
        ax.plot(values, data.pmf(torch.as_tensor(values)).numpy(), "k.-", label="true pmf")
        ax.set_xlabel("x")
        ax.legend()
    else:
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, label="generated")
        centres = getattr(data, "centres", None)
        if centres is not None:
            c = centres.cpu().numpy()
            ax.scatter(c[:, 0], c[:, 1], s=30, marker="x", color="red", label="true centres")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or data.name)
    fig.tight_layout()
    return fig


def image_grid(samples: torch.Tensor, *, count: int = 64) -> torch.Tensor:
    """The first ``count`` images (B, C, H, W) in [0, 1] as one (C, H', W') grid, 8 per row."""
    return make_grid(samples[:count].detach().cpu().clamp(0, 1), nrow=8, padding=2)


def samples_figure(samples: torch.Tensor, data: DataSet, *, title: str = "") -> plt.Figure:
    """The picture of a batch of samples for any data set: a grid of images or a toy plot."""
    if len(data.shape) == 3:
        grid = image_grid(samples).permute(1, 2, 0).numpy()
        fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
        ax.imshow(grid)
        ax.axis("off")
        ax.set_title(title or data.name)
        fig.tight_layout()
        return fig
    return toy_samples_figure(samples, data, title=title)


def save_samples(samples: torch.Tensor, data: DataSet, path: str, *, title: str = "") -> None:
    fig = samples_figure(samples, data, title=title)
    fig.savefig(path)
    plt.close(fig)


def save_trainer_samples(trainer, path: str) -> None:
    """The picture of a run at its current step (a :class:`sigdist.train.Trainer`): 64 images,
    or 2,000 points of a toy, drawn with the evaluation seed so pictures compare across steps.
    A seed population's: a row of 8 images for each of its first 8 members (a toy: member 0)."""
    title = f"{trainer.cfg.method}, {trainer.cfg.data.name}, step {trainer.step}"
    members = len(trainer.seeds)
    if len(trainer.data.shape) != 3:
        title += f" (member 0 of {members})" if members > 1 else ""
        save_samples(trainer.generate(2000), trainer.data, path, title=title)
        return
    if members == 1:
        samples = trainer.generate(64)
    else:
        shown = min(8, members)
        samples = torch.cat([trainer.generate(8, member=m) for m in range(shown)])
        title += f" (a row per member: {shown} of {members})"
    save_samples(samples, trainer.data, path, title=title)


_AXIS_LABELS = {"modes": "modes (of 1,000)", "ensemble_modes": "modes, classifier ensemble",
                "kl": "KL(p_gen || uniform), nats",
                "ensemble_kl": "KL(p_gen || uniform), nats, ensemble"}


def capacity_map_figure(summary: Sequence[dict[str, Any]], *, x_key: str, line_key: str,
                        x_label: str = "width multiplier", title: str = "",
                        metrics: tuple[str, str] = ("modes", "kl")):
    """Modes (top row) and KL (bottom row), or the ``metrics`` pair of that kind, against
    ``x_key`` on a log axis, a line per value of ``line_key`` with standard-error bars, a
    column per step budget."""
    budgets = sorted({e["step"] for e in summary})
    lines = sorted({e[line_key] for e in summary})
    fig, axes = plt.subplots(2, len(budgets), figsize=(4 * len(budgets), 7), squeeze=False,
                             sharex=True, sharey="row")
    for col, budget in enumerate(budgets):
        for line in lines:
            cells = sorted((e for e in summary if e["step"] == budget and e[line_key] == line),
                           key=lambda e: e[x_key])
            xs = [e[x_key] for e in cells]
            for row, metric in enumerate(metrics):
                axes[row][col].errorbar(xs, [e[metric] for e in cells],
                                        yerr=[e[f"{metric}_se"] for e in cells], marker="o",
                                        capsize=3, label=str(line))
        axes[0][col].set_title(f"{budget} steps")
        axes[1][col].set_xlabel(x_label)
        for row in range(2):
            axes[row][col].set_xscale("log", base=2)
            axes[row][col].grid(alpha=0.3)
    axes[0][0].set_ylabel(_AXIS_LABELS[metrics[0]])
    axes[1][0].set_ylabel(_AXIS_LABELS[metrics[1]])
    axes[0][0].set_ylim(0, 1050)
    axes[0][-1].legend(title=line_key)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves_figure(summary: Sequence[dict[str, Any]], keys: Sequence[str], *,
                           title: str = "", metrics: tuple[str, str] = ("modes", "kl")):
    """Modes and KL (or the ``metrics`` pair of that kind) against the training step, a line
    (with standard-error bars) per cell."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cells = sorted({tuple(e[k] for k in keys) for e in summary}, key=lambda c: tuple(map(str, c)))
    for cell in cells:
        points = sorted((e for e in summary if tuple(e[k] for k in keys) == cell),
                        key=lambda e: e["step"])
        label = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in cell)
        for ax, metric in zip(axes, metrics, strict=True):
            ax.errorbar([e["step"] for e in points], [e[metric] for e in points],
                        yerr=[e[f"{metric}_se"] for e in points], marker="o", capsize=3,
                        label=label)
    axes[0].set_ylabel(_AXIS_LABELS[metrics[0]])
    axes[0].set_ylim(0, 1050)
    axes[1].set_ylabel(_AXIS_LABELS[metrics[1]])
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[1].legend(title=", ".join(keys), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def scatter_figure(samples, centres, title: str):
    points = samples.double().numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=110)
    ax.scatter(points[:, 0], points[:, 1], s=0.3, alpha=0.25, color="tab:blue", linewidths=0)
    c = centres.numpy()
    ax.scatter(c[:, 0], c[:, 1], s=12, marker="+", color="red", linewidths=0.6)
    ax.set_xlim(-6, 6)
    ax.set_ylim(-6, 6)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def lam_figure_metric(metric: str) -> str:
    """The metric drawn against lam: the study's own (FID for CIFAR-10), else KL."""
    return metric if metric in METRICS else "kl"


def lam_metric_figure(frame, metric: str, title: str):
    """``metric`` of each trial's final evaluation against its lam, a colour per method (plain
    GAN, lam = 0: squares left of the log axis' range); a trial ASHA stopped early is a
    hollow marker (its final evaluation came at fewer steps)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    scored = frame.dropna(subset=[metric])
    stopped = scored["stopped_early"].astype(bool) if "stopped_early" in scored else (
        scored["lam"] != scored["lam"])
    positive = scored["lam"] > 0
    left = scored.loc[positive, "lam"].min() / 3 if positive.any() else 0.0
    if positive.any():
        ax.set_xscale("log")
    for index, method in enumerate(sorted(scored["method"].astype(str).unique())):
        mine = scored["method"].astype(str) == method
        color = f"C{index}"
        for ended, face, what in ((~stopped, color, "all steps"), (stopped, "none", "stopped")):
            chosen = scored[mine & ended]
            if not len(chosen):
                continue
            plain = chosen["lam"] <= 0
            lam = chosen["lam"].where(~plain, left)
            name = f"{method} (lam = 0, drawn at {left:.2g})" if plain.all() and left else method
            ax.scatter(lam, chosen[metric], marker="s" if plain.all() else "o",
                       facecolors=face, edgecolors=color, label=f"{name}, {what}")
    ax.set_xlabel("lam (weight of L_K)")
    ax.set_ylabel(f"{METRICS[metric].label} (final evaluation)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
