"""Toy data sets of the paper's Figure 1 and Table 1 (Yin & Zhou, Semi-Implicit Generative Model).

Figure 1 (Section 5.1) uses two count data sets (NegBin, Poisson + NegBin) and two 2-D sets
(ring + Gaussian noise, a Gaussian mixture on a ring); Table 1 (Section 5.2) uses the 2-D grid of
25 Gaussians. Every sampler is vectorised and draws all of its randomness from the
``torch.Generator`` it is given, so a generator state fixes the sample exactly.

``torch.distributions`` ignores generators, so Gamma variates come from our own Marsaglia-Tsang
sampler and Poisson variates from ``torch.poisson(rates, generator=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TOY_DATA_NAMES: tuple[str, ...] = ("gmm25", "ring", "ring_noise", "negbin", "poisson_negbin")


def sample_gamma(shape: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Unit-scale Gamma(shape) variates (float64, on the generator's device), one per element.

    Marsaglia & Tsang (2000). Every round redraws only the still-rejected elements; the acceptance
    rate is above 95 % for shape >= 1, so after a few rounds only a handful are left. Shapes below
    1 use the boost Gamma(a) = Gamma(a + 1) * U^(1/a).
    """
    device = generator.device
    shape = torch.as_tensor(shape, dtype=torch.float64).to(device)
    if bool((shape <= 0).any()):
        raise ValueError("Gamma shape parameters must be positive")
    boosted = shape < 1
    d = torch.where(boosted, shape + 1, shape) - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    result = torch.empty_like(shape)
    pending = torch.arange(shape.numel(), device=device)
    d_flat, c_flat, result_flat = d.reshape(-1), c.reshape(-1), result.view(-1)
    while pending.numel() > 0:
        d_p, c_p = d_flat[pending], c_flat[pending]
        x = torch.randn(pending.numel(), generator=generator, dtype=torch.float64, device=device)
        u = torch.rand(pending.numel(), generator=generator, dtype=torch.float64, device=device)
        v = (1.0 + c_p * x) ** 3
        # log(v) of a non-positive v is NaN; the comparison is then False, i.e. rejected.
        log_v = torch.log(v.clamp_min(0.0))
        accepted = (v > 0) & (torch.log(u) < 0.5 * x**2 + d_p - d_p * v + d_p * log_v)
        result_flat[pending[accepted]] = (d_p * v)[accepted]
        pending = pending[~accepted]
    if bool(boosted.any()):
        u = torch.rand(shape.shape, generator=generator, dtype=torch.float64, device=device)
        result = torch.where(boosted, result * u ** (1.0 / shape), result)
    return result


@dataclass(frozen=True)
class PoissonCount:
    """Poisson(rate) counts."""

    rate: float

    @property
    def mean(self) -> float:
        return self.rate

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        rates = torch.full((n,), self.rate, dtype=torch.float64, device=generator.device)
        return torch.poisson(rates, generator=generator)

    def log_pmf(self, values: torch.Tensor) -> torch.Tensor:
        return values * math.log(self.rate) - self.rate - torch.lgamma(values + 1)


@dataclass(frozen=True)
class NegBinomialCount:
    """NegativeBinomial(r, p): pmf Gamma(x + r) / (x! Gamma(r)) p^x (1 - p)^r, mean r p/(1 - p)."""

    r: float
    p: float

    @property
    def mean(self) -> float:
        return self.r * self.p / (1 - self.p)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        # Poisson-Gamma mixture: lambda ~ Gamma(shape r, scale p / (1 - p)), x ~ Poisson(lambda).
        shapes = torch.full((n,), self.r, dtype=torch.float64, device=generator.device)
        rates = sample_gamma(shapes, generator) * (self.p / (1 - self.p))
        return torch.poisson(rates, generator=generator)

    def log_pmf(self, values: torch.Tensor) -> torch.Tensor:
        return (
            torch.lgamma(values + self.r)
            - torch.lgamma(values + 1)
            - math.lgamma(self.r)
            + values * math.log(self.p)
            + self.r * math.log1p(-self.p)
        )


@dataclass(frozen=True)
class ToyData:
    """Common protocol of the toy data sets: ``sample(n, generator, device)`` -> (n, dim)."""

    name: str
    dim: int
    kind: str  # "continuous" | "count"

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one data point, as the networks and the trainer see it."""
        return (self.dim,)

    def sample(
        self, n: int, generator: torch.Generator, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``n`` samples, shape (n, dim), float32, drawn on the generator's device, then moved."""
        samples = self._sample(int(n), generator).to(torch.float32)
        return samples if device is None else samples.to(device)

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class GaussianMixtureToy(ToyData):
    """Equal-weight mixture of isotropic 2-D Gaussians (grid of Table 1; ring of Figure 1)."""

    centre_coords: tuple[tuple[float, float], ...]
    std: float

    @property
    def centres(self) -> torch.Tensor:
        """(M, 2) float64 component centres."""
        return torch.tensor(self.centre_coords, dtype=torch.float64)

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        device = generator.device
        centres = self.centres.to(device)
        component = torch.randint(len(centres), (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64, device=device)
        return centres[component] + self.std * noise


@dataclass(frozen=True)
class RingNoiseToy(ToyData):
    """Figure 1's "ring + Gaussian noise": uniform angle on a circle plus isotropic noise."""

    radius: float
    noise: float

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        device = generator.device
        angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        on_circle = self.radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64, device=device)
        return on_circle + self.noise * noise


@dataclass(frozen=True)
class CountMixtureToy(ToyData):
    """1-D count data of Figure 1: a finite mixture of Poisson / negative-binomial components."""

    components: tuple[PoissonCount | NegBinomialCount, ...]
    weights: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(w * c.mean for w, c in zip(self.weights, self.components, strict=True))

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        device = generator.device
        weights = torch.tensor(self.weights, dtype=torch.float64, device=device)
        if len(self.components) == 1:
            return self.components[0].sample(n, generator).unsqueeze(1)
        component = torch.multinomial(weights, n, replacement=True, generator=generator)
        counts = torch.empty(n, dtype=torch.float64, device=device)
        # One vectorised draw per component (not per sample), scattered to its members.
        for index, distribution in enumerate(self.components):
            members = torch.nonzero(component == index).squeeze(1)
            counts[members] = distribution.sample(members.numel(), generator)
        return counts.unsqueeze(1)

    def pmf(self, values: torch.Tensor) -> torch.Tensor:
        """True probability mass (float64) at ``values``; 0 at negative or non-integer values."""
        values = torch.as_tensor(values, dtype=torch.float64)
        valid = (values >= 0) & (values == torch.round(values))
        safe = torch.where(valid, values, torch.zeros_like(values))
        mass = sum(
            w * torch.exp(c.log_pmf(safe))
            for w, c in zip(self.weights, self.components, strict=True)
        )
        return torch.where(valid, mass, torch.zeros_like(values))


def _grid_centres() -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4))


def _ring_centres(count: int, radius: float) -> tuple[tuple[float, float], ...]:
    angles = [2 * math.pi * k / count for k in range(count)]
    return tuple((radius * math.cos(a), radius * math.sin(a)) for a in angles)


def toy_data(name: str) -> ToyData:
    """The toy data set called ``name`` (one of ``TOY_DATA_NAMES``)."""
    if name == "gmm25":  # Table 1: centres {-4,-2,0,2,4}^2, std 0.05
        return GaussianMixtureToy("gmm25", 2, "continuous", _grid_centres(), 0.05)
    if name == "ring":  # Figure 1: 8 Gaussians on a circle of radius 2
        return GaussianMixtureToy("ring", 2, "continuous", _ring_centres(8, 2.0), 0.02)
    if name == "ring_noise":
        return RingNoiseToy("ring_noise", 2, "continuous", radius=2.0, noise=0.1)
    if name == "negbin":
        return CountMixtureToy("negbin", 1, "count", (NegBinomialCount(r=5, p=0.5),), (1.0,))
    if name == "poisson_negbin":
        components = (PoissonCount(rate=2.0), NegBinomialCount(r=10, p=0.6))
        return CountMixtureToy("poisson_negbin", 1, "count", components, (0.5, 0.5))
    raise ValueError(f"unknown toy data set {name!r}; allowed names: {', '.join(TOY_DATA_NAMES)}")
