"""Data sets of the paper's experiments (Section 5), behind one small protocol."""

from __future__ import annotations

from typing import Protocol

import torch

from sigdist.data.toys import (
    TOY_DATA_NAMES,
    CountMixtureToy,
    GaussianMixtureToy,
    NegBinomialCount,
    PoissonCount,
    RingNoiseToy,
    ToyData,
    sample_gamma,
    toy_data,
)


class DataSet(Protocol):
    """What the trainer needs of a data set: a name, a kind, one point's shape, a sampler."""

    name: str
    kind: str  # "continuous" | "count"

    @property
    def shape(self) -> tuple[int, ...]: ...

    def sample(self, n: int, generator: torch.Generator,
               device: torch.device | str | None = None) -> torch.Tensor: ...


__all__ = [
    "TOY_DATA_NAMES",
    "CountMixtureToy",
    "DataSet",
    "GaussianMixtureToy",
    "NegBinomialCount",
    "PoissonCount",
    "RingNoiseToy",
    "ToyData",
    "sample_gamma",
    "toy_data",
]
