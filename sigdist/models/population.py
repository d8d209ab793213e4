"""A seed population of one network: P members of the same architecture, their weights stacked
along a leading member axis (``torch.func.stack_module_state``) and trained as one module.

Inputs and outputs carry the member axis first, (P, B, ...). ``batched=True`` runs one batched
kernel per layer for all members (one ``functional_call`` under ``torch.func.vmap``: a GPU's
way, where a step is launch-bound); ``batched=False`` runs each member's own kernels in turn on
its slice of the stacked weights, the single run's own arithmetic (on a CPU the batched
convolutions were slower than the members one by one: docs/results/populations.md). Batch
norm stays per member, its running statistics included (each member's buffers are a slice of
the stacked ones), and Adam is elementwise, so member i trains as the network alone would:
bit for bit member by member, to float rounding batched (a batched kernel sums in another
order).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class Population(nn.Module):
    """P networks of one architecture as one module: ``forward(x)`` maps (P, B, ...) to the
    members' outputs (P, B, ...); ``member(i)`` is member i alone, on unbatched inputs."""

    def __init__(self, members: list[nn.Module], *, batched: bool = False) -> None:
        super().__init__()
        self.batched = batched
        if not members:
            raise ValueError("a population needs at least one member")
        params, buffers = stack_module_state(members)
        # The architecture, without storage: functional_call supplies every tensor.
        self._skeleton = [copy.deepcopy(members[0]).to("meta")]  # a list: not a submodule
        self.size = len(members)
        self.noise_dim = getattr(members[0], "noise_dim", None)
        self._names = {name: name.replace(".", "__") for name in (*params, *buffers)}
        for name, value in params.items():
            self.register_parameter(self._names[name], nn.Parameter(value.detach()))
        for name, value in buffers.items():
            self.register_buffer(self._names[name], value)

    @property
    def skeleton(self) -> nn.Module:
        return self._skeleton[0]

    def train(self, mode: bool = True) -> Population:
        super().train(mode)
        self.skeleton.train(mode)  # functional_call runs the skeleton's mode (batch norm)
        return self

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, stored) for name, stored in self._names.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def one(tensors: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
            return functional_call(self.skeleton, tensors, (xi,))

        if self.batched:
            return vmap(one)(self._tensors(), x)
        # unbind, not indexing: its backward is one stack, where P index backwards would
        # each write a full-size zero gradient
        names, columns = zip(*((name, value.unbind(0))
                               for name, value in self._tensors().items()), strict=True)
        return torch.stack([one(dict(zip(names, member, strict=True)), xi)
                            for member, xi in zip(zip(*columns, strict=True), x.unbind(0),
                                                  strict=True)])

    def member(self, index: int):
        """Member ``index`` as a function of unbatched inputs (the plain network's kernels)."""
        tensors = {name: value[index] for name, value in self._tensors().items()}
        return lambda x: functional_call(self.skeleton, tensors, (x,))

    # The checkpoint holds the network's own keys, each tensor stacked over the members.
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return {name: value.detach().clone() for name, value in self._tensors().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True,
                        assign: bool = False):
        missing = [name for name in self._names if name not in state]
        unexpected = [name for name in state if name not in self._names]
        if missing or unexpected:
            raise RuntimeError(f"population state: missing keys {missing[:3]}, unexpected "
                               f"keys {unexpected[:3]}")
        tensors = self._tensors()
        for name, value in state.items():
            if not isinstance(value, torch.Tensor) or value.shape != tensors[name].shape:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
                raise RuntimeError(f"population state: {name} has shape {shape}, this "
                                   f"population {tuple(tensors[name].shape)}")
        with torch.no_grad():
            for name, value in state.items():
                tensors[name].copy_(value)
        return None

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Member ``index``'s weights under the network's own keys: a single run's state."""
        return {name: value[index].detach().clone() for name, value in self._tensors().items()}


__all__ = ["Population"]
