"""The search: Optuna (through Ray Tune's ``OptunaSearch``) over lambda, K and network size,
with plain GAN (lambda = 0) as a baseline arm of the same search."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from sigdist.config import CUSTOM_SIZE, WIDTH_KEYS, WIDTH_PRESETS


def define_search_space(trial: optuna.Trial, *, lam_range: tuple[float, float] = (1e-2, 1e1),
                        k_choices: Sequence[int] = (16, 64, 256),
                        sizes: Sequence[str] = ("S", "M", "L"),
                        width_range: tuple[float, float] | None = None,
                        lr_choices: Sequence[float] | None = None,
                        sigma_range: tuple[float, float] | None = None,
                        methods: Sequence[str] = ("gan", "gan_si")) -> dict[str, Any]:
    """Define-by-run space: ``method`` one of ``methods``, the plain ones (gan, wgan_gp: the
    baselines) with lambda = 0, the -SI ones with ``loss.lam`` log-uniform in ``lam_range``;
    ``loss.k`` categorical; the networks' width either a preset ``model.size`` (categorical
    over ``sizes``) or, with ``width_range``, ``model.width_g`` log-uniform (the
    discriminator's ``model.width_d`` the same); optionally the learning rate (both networks)
    and the kernel width sigma of L_K.
    Every name is a config key, so a suggestion is a valid flat config fragment; the constants
    returned keep the fragment consistent (a preset's widths, a searched width's "custom")."""
    method = trial.suggest_categorical("method", list(methods))
    fixed: dict[str, Any] = {} if method.endswith("_si") else {"loss.lam": 0.0}
    if method.endswith("_si"):
        trial.suggest_float("loss.lam", *lam_range, log=True)
        if sigma_range is not None:
            trial.suggest_float("loss.sigma", *sigma_range, log=True)
    k = trial.suggest_categorical("loss.k", list(k_choices))
    if method.startswith("wgan"):  # the gradient penalty pairs each real with a generated image
        fixed["train.batch_size"] = k
    if width_range is not None:
        width = trial.suggest_float("model.width_g", *width_range, log=True)
        fixed |= {"model.width_d": width, "model.size": CUSTOM_SIZE}
    else:
        size = trial.suggest_categorical("model.size", list(sizes))
        fixed |= dict(zip(WIDTH_KEYS, WIDTH_PRESETS[size], strict=True))
    if lr_choices is not None:
        fixed["train.lr_d"] = trial.suggest_categorical("train.lr", list(lr_choices))
    return fixed


def optuna_searcher(metric: str | list[str], mode: str | list[str], *, seed: int,
                    storage_url: str | None = None, study_name: str | None = None,
                    **space_options: Any) -> OptunaSearch:
    """A seeded TPE search over one metric or several (a Pareto front).

    With ``storage_url`` Optuna keeps the study's history in its own database as well, where
    its plots and Pareto front are read after the run; Ray checkpoints the searcher itself, so
    a restored study proposes from the whole history."""
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
    storage = optuna.storages.RDBStorage(storage_url) if storage_url else None
    return OptunaSearch(
        # a partial of a module-level function pickles: the searcher's state is checkpointed
        space=functools.partial(define_search_space, **space_options),
        metric=metric, mode=mode, sampler=sampler, storage=storage, study_name=study_name,
    )
