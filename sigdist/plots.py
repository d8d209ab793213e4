"""Pictures of generated samples: the scatter over the true centres of Figure 2, the count
histograms of Figure 1, image grids (torchvision ``make_grid``) of Figures 4-6."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from sigdist.data import DataSet, ToyData  # noqa: E402


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
    or 2,000 points of a toy, drawn with the evaluation seed so pictures compare across steps."""
    samples = trainer.generate(64 if len(trainer.data.shape) == 3 else 2000)
    save_samples(samples, trainer.data, path,
                 title=f"{trainer.cfg.method}, {trainer.cfg.data.name}, step {trainer.step}")
