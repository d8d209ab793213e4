"""Schedules over optimiser steps, each a pure function of the config and the step, so that a
resumed run follows exactly the schedule of the uninterrupted one."""

from __future__ import annotations

import math

from sigdist.config import Config


def sigma_at(cfg: Config, step: int) -> float:
    """The Gaussian likelihood's sigma at optimiser step ``step`` (0-based).

    Geometric from ``loss.sigma_start`` down to ``loss.sigma`` over the first
    ``loss.sigma_anneal`` fraction of ``train.steps``, then ``loss.sigma``: the paper's L_K
    (Lemma 1) is what the run ends on, however short. (Extending a run's ``train.steps``
    stretches its annealing: the schedule is the one a run of that length follows.)
    """
    loss = cfg.loss
    anneal_steps = round(loss.sigma_anneal * cfg.train.steps)
    if anneal_steps == 0 or step >= anneal_steps:
        return loss.sigma
    frac = step / anneal_steps
    return loss.sigma_start ** (1.0 - frac) * loss.sigma**frac


def lr_factor(cfg: Config, step: int) -> float:
    """Multiplier of both learning rates at step ``step``: 1, or cosine from 1 down to
    ``train.lr_final_ratio`` at ``train.steps``."""
    train = cfg.train
    if train.lr_schedule == "constant":
        return 1.0
    progress = min(step / train.steps, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return train.lr_final_ratio + (1.0 - train.lr_final_ratio) * cosine
