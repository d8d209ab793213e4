"""Pictures of generated samples: the scatter over the true centres of Figure 2, the count
histograms of Figure 1."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sigdist.data import ToyData  # noqa: E402


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


def save_toy_samples(samples: torch.Tensor, data: ToyData, path: str, *, title: str = "") -> None:
    fig = toy_samples_figure(samples, data, title=title)
    fig.savefig(path)
    plt.close(fig)
