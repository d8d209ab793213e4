"""A Ray Tune function trainable for every method: rebuild and validate the typed config from
the flat ``param_space``, train with :class:`sigdist.train.Trainer`, report each evaluation with
a checkpoint, and resume from ``tune.get_checkpoint()``."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import ray
import torch
from ray import tune

from sigdist.config import from_flat
from sigdist.metrics.members import mean_se_texts
from sigdist.reports.figures import save_trainer_samples
from sigdist.train import CHECKPOINT_FILE, DivergenceError, Trainer

METRICS_FILE = "metrics.json"


def write_evaluation(trainer: Trainer, metrics: dict[str, float], directory: str) -> None:
    """One evaluation's checkpoint directory: the trainer's state, the metrics, and a picture
    of samples; the driver's tracking callback logs the last two to MLflow."""
    trainer.save(os.path.join(directory, CHECKPOINT_FILE))
    with open(os.path.join(directory, METRICS_FILE), "w") as fh:
        json.dump(metrics, fh)
    save_trainer_samples(trainer, os.path.join(directory, f"samples_step_{trainer.step:07d}.png"))


def train_sigdist(flat_config: dict[str, Any]) -> None:
    """Ray Tune trainable: ``flat_config`` is the flat (dotted-key) config of one trial.

    An invalid config raises :class:`sigdist.config.ConfigError` before any training; a
    diverging run raises :class:`DivergenceError`, which Tune records as the trial's failure.
    """
    cfg = from_flat(dict(flat_config))
    # The trial's CPU share sets torch's threads, so concurrent trials do not oversubscribe.
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer = Trainer.from_checkpoint(os.path.join(directory, CHECKPOINT_FILE))
    else:
        trainer = Trainer(cfg)

    def report(trainer_: Trainer, metrics: dict[str, float]) -> None:
        with tempfile.TemporaryDirectory() as directory:
            write_evaluation(trainer_, metrics, directory)
            # where it ran and on which data (``auto`` resolved), for the trial's MLflow run
            where = {"node_id": ray.get_runtime_context().get_node_id(),
                     "data_source": trainer_.cfg.data.source}
            tune.report({**metrics, **mean_se_texts(metrics), **where},
                        checkpoint=tune.Checkpoint.from_directory(directory))

    try:
        trainer.fit(report=report)
    except DivergenceError as err:
        raise RuntimeError(f"trial diverged: {err}") from err
