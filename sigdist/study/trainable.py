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
from sigdist.plots import save_samples
from sigdist.train import DivergenceError, Trainer

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"


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
        # The checkpoint carries what the driver's tracking callback logs: the metrics of this
        # evaluation and a picture of its samples, next to the trainer's state.
        with tempfile.TemporaryDirectory() as directory:
            trainer_.save(os.path.join(directory, CHECKPOINT_FILE))
            with open(os.path.join(directory, METRICS_FILE), "w") as fh:
                json.dump(metrics, fh)
            samples = trainer_.generate(64 if len(trainer_.data.shape) == 3 else 2000)
            save_samples(samples, trainer_.data,
                         os.path.join(directory, f"samples_step_{trainer_.step:07d}.png"),
                         title=f"{cfg.method}, {cfg.data.name}, step {trainer_.step}")
            # where it ran and on which data (``auto`` resolved), for the trial's MLflow run
            where = {"node_id": ray.get_runtime_context().get_node_id(),
                     "data_source": trainer_.cfg.data.source}
            tune.report({**metrics, **where}, checkpoint=tune.Checkpoint.from_directory(directory))

    try:
        trainer.fit(report=report)
    except DivergenceError as err:
        raise RuntimeError(f"trial diverged: {err}") from err
