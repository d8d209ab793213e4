"""Which data set is trained and how its samples are scored: the bridge from ``data.name`` to
the data sets of ``sigdist.data`` and the metrics of ``sigdist.metrics``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sigdist.config import Config
from sigdist.data import DataSet, toy_data

Scorer = Callable[[torch.Tensor], dict[str, float]]


def build_data(cfg: Config, device: torch.device) -> tuple[DataSet, Config]:
    """The data set of ``data.name`` on ``device``, and the config with ``data.source`` set to
    the source actually used (mnist3: mnist-60k or mnist-5k), as the run must record it."""
    if cfg.data.name == "mnist3":
        from sigdist.data.stacked import build_stacked_mnist

        data, source = build_stacked_mnist(cfg.data.root, cfg.data.source, device)
        return data, cfg.replace(**{"data.source": source})
    if cfg.data.name == "cifar10":
        from sigdist.data.cifar10 import build_cifar10
        from sigdist.metrics.fidelity import check_extractor

        data = build_cifar10(cfg.data.root, device, download=cfg.data.download,
                             stand_in=cfg.data.stand_in)
        check_extractor(cfg)  # missing Inception weights stop the run before it trains
        return data, cfg
    return toy_data(cfg.data.name), cfg


def build_scorer(cfg: Config, data: DataSet, device: torch.device) -> Scorer:
    """A function from generated samples to the data set's metrics (Table 1 / Table 2)."""
    if cfg.data.name == "mnist3":
        return stacked_mnist_scorer(cfg.data.root, cfg.data.source, device)
    if cfg.data.name == "cifar10":  # Table 3: inception score and FID (streamed)
        from sigdist.metrics.fidelity import cifar10_scorer

        return cifar10_scorer(cfg, data, device)
    from sigdist.metrics import evaluate_toy

    return lambda samples: {k: float(v) for k, v in evaluate_toy(data, samples).items()}


def stacked_mnist_scorer(root: str, source: str, device: torch.device | str = "cpu") -> Scorer:
    """Table 2 metrics through the cached digit classifiers (each trained once per source):
    the reference classifier's and the ensemble's."""
    from sigdist.data.mnist import load_mnist
    from sigdist.metrics.classifier import load_or_train_ensemble
    from sigdist.metrics.stacked import evaluate_stacked_mnist

    digits = load_mnist(root, source)
    (classifier, accuracy), ensemble = load_or_train_ensemble(digits, root, device=device)

    def score(samples: torch.Tensor) -> dict[str, float]:
        metrics = evaluate_stacked_mnist(samples, classifier, ensemble=ensemble,
                                         classifier_accuracy=accuracy)
        return {k: float(v) for k, v in metrics.items()}

    return score


__all__ = ["Scorer", "build_data", "build_scorer", "stacked_mnist_scorer"]
