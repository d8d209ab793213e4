"""What every method is: a class with its own networks, optimisers and one training step,
built on a :class:`TrainingContext` (the run's generator, its data, its random stream). The
training loop (:mod:`sigdist.train`) is the context; a method never reaches past it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from sigdist.config import Config


class TrainingContext(Protocol):
    """The run as a method sees it (:class:`sigdist.train.Trainer` is one)."""

    cfg: Config
    device: torch.device
    data_shape: tuple[int, ...]
    noise_dim: int
    generator: nn.Module
    opt_g: torch.optim.Optimizer
    rng: torch.Generator  # every training draw: data, noise, penalty mixing
    channels_last: bool
    step: int  # steps taken so far (sigma's annealing follows it)

    def data_batch(self, n: int) -> torch.Tensor: ...
    def noise(self, n: int, rng: torch.Generator) -> torch.Tensor: ...
    def psi(self, noise: torch.Tensor) -> torch.Tensor: ...
    def g(self, noise: torch.Tensor) -> torch.Tensor: ...
    def autocast(self) -> contextlib.AbstractContextManager: ...
    # A seed population (run.seeds > 1): tensors carry the member axis first, ``rng`` is a
    # list of the members' streams; a method builds its networks through ``network`` and
    # applies each loss through ``per_member``, which both leave a single run as it is.
    def network(self, build: Callable[[], nn.Module]) -> nn.Module: ...
    def per_member(self, loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]: ...


class Method:
    """One training method. Subclasses set :attr:`names` (the ``method`` values they train),
    build their networks and optimisers in ``__init__`` (after the generator, which the
    context owns, so initialisation draws keep their order) and implement :meth:`step`.

    :attr:`networks` and the optimisers of :meth:`optimisers` are checkpointed by
    :meth:`state_dict` under the names the checkpoint format has always used."""

    names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: TrainingContext) -> None:
        self.ctx = ctx
        self.networks: dict[str, nn.Module] = {}  # trained beside the generator

    def step(self) -> dict[str, torch.Tensor]:
        """One optimisation step; the step's losses as 0-d tensors (not yet synced)."""
        raise NotImplementedError

    def optimisers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        """The method's own optimisers with their base learning rates, which the loop's
        schedule scales (the generator's ``opt_g`` is the context's)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint; a missing or misfitting part raises KeyError,
        RuntimeError or ValueError, which the loop reports as an unusable checkpoint."""


def adam(ctx: TrainingContext, params, lr: float) -> torch.optim.Adam:
    """Adam with the run's betas: every optimiser of every method."""
    return torch.optim.Adam(params, lr=lr, betas=(ctx.cfg.train.beta1, ctx.cfg.train.beta2))


__all__ = ["Method", "TrainingContext", "adam"]
