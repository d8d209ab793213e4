"""The search machinery: a study's define-by-run space (written in its ``studies/*.py`` file)
run by Optuna through Ray Tune's ``OptunaSearch``, with the keys a user pins by ``--set`` left
out of the search.

A space is a function of a :class:`SearchSpace`; every name it suggests is a config key, so a
suggestion is a valid flat config fragment::

    def space(s: SearchSpace) -> None:
        if s.categorical("method", ["gan", "gan_si"]) == "gan_si":
            s.log_uniform("loss.lam", 1e-2, 10.0)
        s.categorical("loss.k", [16, 64])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from sigdist.config import from_flat

SpaceFn = Callable[["SearchSpace"], None]


class SearchSpace:
    """What a space function sees: suggestions through an Optuna trial, except for the keys
    pinned by the user, which return their pinned value and are never suggested nor set."""

    def __init__(self, trial: optuna.Trial, pinned: dict[str, Any]) -> None:
        self.trial, self.pinned = trial, dict(pinned)
        self.chosen: dict[str, Any] = {}  # what the space suggested and set, in its order

    def categorical(self, key: str, choices: Sequence[Any]) -> Any:
        if key in self.pinned:
            return self.pinned[key]
        self.chosen[key] = self.trial.suggest_categorical(key, list(choices))
        return self.chosen[key]

    def log_uniform(self, key: str, low: float, high: float) -> float:
        if key in self.pinned:
            return self.pinned[key]
        self.chosen[key] = self.trial.suggest_float(key, low, high, log=True)
        return self.chosen[key]

    def set(self, key: str, value: Any) -> None:
        """A key that follows the suggestions (a tied width); a pinned key keeps its value."""
        if key not in self.pinned:
            self.chosen[key] = value

    def size_preset(self, sizes: Sequence[str]) -> None:
        """``model.size`` over presets (the widths follow it, as the config resolves them)."""
        self.categorical("model.size", sizes)

    def tied_width(self, low: float, high: float) -> None:
        """``model.width_g`` log-uniform, the discriminator's the same."""
        self.set("model.width_d", self.log_uniform("model.width_g", low, high))


def run_space(space: SpaceFn, pinned: dict[str, Any], base: dict[str, Any],
              trial: optuna.Trial) -> dict[str, Any]:
    """OptunaSearch's define-by-run callable: run ``space`` over the study's flat ``base``
    config and return the proposal resolved once into the trial's config (a preset's widths,
    the lam its method gives: every key whose value the proposal changes)."""
    search = SearchSpace(trial, pinned)
    space(search)
    resolved = from_flat(base).replace(**search.chosen).to_flat()
    return {key: value for key, value in resolved.items()
            if key in search.chosen or value != base.get(key)}


def searched_keys(space: SpaceFn, pinned: dict[str, Any], *, draws: int = 64) -> list[str]:
    """The keys ``space`` suggests once ``pinned`` are left out, found by running it on
    ``draws`` random trials of a throwaway in-memory study (so keys behind a branch, such as
    lam behind method = gan_si, are found too). In the order the space first suggests them."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        found: dict[str, None] = {}
        for _ in range(draws):
            trial = study.ask()
            search = SearchSpace(trial, pinned)
            space(search)
            found.update(dict.fromkeys(trial.params))
    finally:
        optuna.logging.set_verbosity(level)
    return list(found)


def optuna_searcher(space: SpaceFn, metric: str | list[str], mode: str | list[str], *,
                    seed: int, base: dict[str, Any], pinned: dict[str, Any] | None = None,
                    storage_url: str | None = None, study_name: str | None = None
                    ) -> OptunaSearch:
    """A seeded TPE search of ``space`` over one metric or several (a Pareto front).

    With ``storage_url`` Optuna keeps the study's history in its own database as well, where
    its plots and Pareto front are read after the run; Ray checkpoints the searcher itself, so
    a restored study proposes from the whole history."""
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
    storage = optuna.storages.RDBStorage(storage_url) if storage_url else None
    return OptunaSearch(
        # a partial of module-level functions pickles: the searcher's state is checkpointed
        space=functools.partial(run_space, space, dict(pinned or {}), dict(base)),
        metric=metric, mode=mode, sampler=sampler, storage=storage, study_name=study_name,
    )
