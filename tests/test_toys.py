"""Toy data sets of Figure 1 / Table 1: shapes, determinism and the moments they must have."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sigdist.data import TOY_DATA_NAMES, sample_gamma, toy_data
from sigdist.metrics import count_metrics


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", TOY_DATA_NAMES)
def test_shape_dtype_and_determinism(name: str) -> None:
    data = toy_data(name)
    first = data.sample(1000, _generator(3))
    assert first.shape == (1000, data.dim)
    assert first.dtype == torch.float32
    assert torch.equal(first, data.sample(1000, _generator(3), device="cpu"))
    assert not torch.equal(first, data.sample(1000, _generator(4)))
    assert data.kind == ("count" if name in ("negbin", "poisson_negbin") else "continuous")


def test_unknown_name_lists_allowed_names() -> None:
    with pytest.raises(ValueError, match="gmm25.*ring.*ring_noise.*negbin.*poisson_negbin"):
        toy_data("swiss_roll")


def test_gmm25_modes_equally_weighted_with_std_005() -> None:
    data = toy_data("gmm25")
    grid = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    expected_centres = torch.cartesian_prod(grid, grid)
    assert torch.equal(data.centres, expected_centres)
    assert data.std == 0.05

    n = 100_000
    samples = data.sample(n, _generator(0)).double()
    nearest = torch.cdist(samples, data.centres).argmin(dim=1)
    shares = torch.bincount(nearest, minlength=25).double() / n
    # Binomial standard error of a 1/25 share at n = 1e5 is 6e-4.
    assert torch.allclose(shares, torch.full((25,), 1 / 25, dtype=torch.float64), atol=0.003)
    offsets = samples - data.centres[nearest]
    assert offsets.mean(dim=0).abs().max() < 0.001
    assert torch.allclose(
        offsets.std(dim=0), torch.tensor([0.05, 0.05], dtype=torch.float64), atol=0.001
    )
    for mode in (0, 12, 24):  # per-mode spread, not only the pooled one
        assert abs(offsets[nearest == mode].std().item() - 0.05) < 0.003


def test_ring_is_eight_gaussians_on_radius_two() -> None:
    data = toy_data("ring")
    assert data.centres.shape == (8, 2)
    assert torch.allclose(data.centres.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    assert data.std == 0.02
    samples = data.sample(40_000, _generator(1)).double()
    nearest = torch.cdist(samples, data.centres).argmin(dim=1)
    shares = torch.bincount(nearest, minlength=8).double() / 40_000
    assert torch.allclose(shares, torch.full((8,), 1 / 8, dtype=torch.float64), atol=0.01)
    offsets = samples - data.centres[nearest]
    assert abs(offsets.std().item() - 0.02) < 0.0005


def test_ring_noise_radius_and_uniform_angle() -> None:
    samples = toy_data("ring_noise").sample(100_000, _generator(2)).double()
    radii = samples.norm(dim=1)
    # E|x| = 2 + noise^2 / (2 * 2) to first order; radial std ~ the noise std 0.1.
    assert abs(radii.mean().item() - (2.0 + 0.01 / 4)) < 0.002
    assert abs(radii.std().item() - 0.1) < 0.002
    angles = torch.atan2(samples[:, 1], samples[:, 0])
    octant_shares = torch.histc(angles, bins=8, min=-math.pi, max=math.pi) / 100_000
    assert torch.allclose(octant_shares, torch.full((8,), 1 / 8, dtype=torch.float64), atol=0.01)


@pytest.mark.parametrize("shape", [0.5, 2.5, 5.0])
def test_gamma_sampler_moments(shape: float) -> None:
    draws = sample_gamma(torch.full((200_000,), shape), _generator(5))
    assert draws.dtype == torch.float64 and bool((draws > 0).all())
    assert abs(draws.mean().item() - shape) < 0.02 * shape + 0.01
    assert abs(draws.var().item() - shape) < 0.05 * shape
    again = sample_gamma(torch.full((200_000,), shape), _generator(5))
    assert torch.equal(draws, again)


def test_negbin_mean_variance_and_pmf() -> None:
    data = toy_data("negbin")
    samples = data.sample(200_000, _generator(6)).double().squeeze(1)
    assert bool((samples == samples.round()).all()) and bool((samples >= 0).all())
    assert data.mean == 5.0
    assert abs(samples.mean().item() - 5.0) < 0.05  # standard error 0.007
    assert abs(samples.var().item() - 10.0) < 0.3  # r p / (1 - p)^2 = 10
    support = torch.arange(200, dtype=torch.float64)
    # scipy's nbinom(n, q) has pmf C(k + n - 1, k) q^n (1 - q)^k, so q = 1 - p.
    expected = stats.nbinom.pmf(support.numpy(), 5, 0.5)
    np.testing.assert_allclose(data.pmf(support).numpy(), expected, rtol=1e-10, atol=1e-300)
    assert abs(data.pmf(support).sum().item() - 1.0) < 1e-12
    off_support = data.pmf(torch.tensor([-1.0, 2.5]))
    assert torch.equal(off_support, torch.zeros(2, dtype=torch.float64))
    assert count_metrics(samples, data)["tv"] < 0.012


def test_poisson_negbin_mixture_mean_and_pmf() -> None:
    data = toy_data("poisson_negbin")
    samples = data.sample(200_000, _generator(7)).double().squeeze(1)
    assert data.mean == pytest.approx(8.5)
    assert abs(samples.mean().item() - 8.5) < 0.08  # standard error 0.018
    # Mixture variance: 0.5 (2 + 4) + 0.5 (37.5 + 225) - 8.5^2 = 62.
    assert abs(samples.var().item() - 62.0) < 1.5
    support = torch.arange(300, dtype=torch.float64)
    expected = 0.5 * stats.poisson.pmf(support.numpy(), 2.0) + 0.5 * stats.nbinom.pmf(
        support.numpy(), 10, 0.4
    )
    np.testing.assert_allclose(data.pmf(support).numpy(), expected, rtol=1e-10, atol=1e-300)
    assert count_metrics(samples, data)["tv"] < 0.015
