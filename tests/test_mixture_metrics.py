"""Table 1 metrics (modes, high quality, KL) and the Figure 1 toy metrics on known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sigdist.data import toy_data
from sigdist.metrics import count_metrics, evaluate_toy, mixture_metrics, ring_noise_metrics

MASS_WITHIN = 1 - math.exp(-4.5)  # P(chi2_2 <= 9): a true sample lies within 3 std of its centre


def _gmm25_samples(n: int, seed: int) -> torch.Tensor:
    return toy_data("gmm25").sample(n, torch.Generator().manual_seed(seed))


def test_true_mixture_gets_full_marks() -> None:
    data = toy_data("gmm25")
    result = mixture_metrics(_gmm25_samples(50_000, 0), data.centres, data.std)
    assert set(result) == {"modes", "high_quality", "kl"}
    assert result["modes"] == 25
    assert abs(result["high_quality"] - MASS_WITHIN) < 0.003  # 0.9889
    assert 0 <= result["kl"] < 0.005


def test_collapse_onto_one_centre_has_exact_kl() -> None:
    data = toy_data("gmm25")
    generator = torch.Generator().manual_seed(1)
    collapsed = data.centres[7] + 0.01 * torch.randn(
        50_000, 2, generator=generator, dtype=torch.float64
    )
    result = mixture_metrics(collapsed, data.centres, data.std)
    assert result["modes"] == 1
    assert result["high_quality"] == 1.0
    # p_gen puts all mass on one mode bin, so KL = log(1 / p_true(mode)).
    assert result["kl"] == pytest.approx(math.log(25 / MASS_WITHIN), rel=1e-12)


def test_uniform_noise_is_low_quality_with_large_kl() -> None:
    data = toy_data("gmm25")
    generator = torch.Generator().manual_seed(2)
    uniform = 10 * torch.rand(50_000, 2, generator=generator, dtype=torch.float64) - 5
    result = mixture_metrics(uniform, data.centres, data.std)
    disc_share = math.pi * (3 * 0.05) ** 2 / 100  # one 3-std disc's share of [-5, 5]^2
    assert abs(result["high_quality"] - 25 * disc_share) < 0.003  # 0.0177
    assert result["modes"] == 0  # ~35 high-quality samples per mode, far below 1,000
    expected_kl = 25 * disc_share * math.log(disc_share / (MASS_WITHIN / 25)) + (
        1 - 25 * disc_share
    ) * math.log((1 - 25 * disc_share) / math.exp(-4.5))
    assert result["kl"] == pytest.approx(expected_kl, abs=0.02)  # ~4.33
    assert result["kl"] > 4


def test_far_away_samples() -> None:
    data = toy_data("gmm25")
    far = torch.full((1000, 2), 100.0)
    result = mixture_metrics(far, data.centres, data.std)
    assert result["modes"] == 0
    assert result["high_quality"] == 0.0
    assert result["kl"] == pytest.approx(4.5, rel=1e-12)  # log(1 / exp(-4.5))


def test_mode_needs_more_than_min_count_samples() -> None:
    data = toy_data("gmm25")
    exactly = data.centres[[0] * 10 + [3] * 11]
    result = mixture_metrics(exactly, data.centres, data.std, min_count=10)
    assert result["modes"] == 1  # 10 is not more than 10; 11 is


def test_boundary_of_three_std() -> None:
    data = toy_data("gmm25")
    inside = data.centres[0] + torch.tensor([[0.149, 0.0]], dtype=torch.float64)
    outside = data.centres[0] + torch.tensor([[0.151, 0.0]], dtype=torch.float64)
    assert mixture_metrics(inside, data.centres, data.std)["high_quality"] == 1.0
    assert mixture_metrics(outside, data.centres, data.std)["high_quality"] == 0.0


def test_numpy_equals_torch_and_chunking_and_determinism() -> None:
    data = toy_data("gmm25")
    samples = _gmm25_samples(20_000, 3)
    reference = mixture_metrics(samples, data.centres, data.std, min_count=400)
    as_numpy = mixture_metrics(samples.numpy(), data.centres.numpy(), data.std, min_count=400)
    assert as_numpy == reference
    for chunk_size in (997, 20_000, 100_000):
        chunked = mixture_metrics(
            samples, data.centres, data.std, min_count=400, chunk_size=chunk_size
        )
        assert chunked == reference
    head = samples[:500]
    assert mixture_metrics(head, data.centres, data.std, chunk_size=1) == mixture_metrics(
        head, data.centres, data.std
    )
    again = mixture_metrics(_gmm25_samples(20_000, 3), data.centres, data.std, min_count=400)
    assert again == reference


def test_overlapping_centres_rejected() -> None:
    centres = torch.tensor([[0.0, 0.0], [0.2, 0.0]])
    with pytest.raises(ValueError, match="6 std"):
        mixture_metrics(torch.zeros(10, 2), centres, 0.05)


def test_evaluate_toy_scales_min_count_with_n() -> None:
    data = toy_data("gmm25")
    samples = _gmm25_samples(5000, 4)
    assert evaluate_toy(data, samples) == mixture_metrics(
        samples, data.centres, data.std, min_count=100
    )
    assert evaluate_toy(data, samples)["modes"] == 25  # ~200 per mode > 100
    ring = toy_data("ring")
    ring_result = evaluate_toy(ring, ring.sample(8000, torch.Generator().manual_seed(5)))
    assert ring_result["modes"] == 8 and ring_result["kl"] < 0.01


def test_ring_noise_metrics_known_answers() -> None:
    angles = torch.linspace(0, 2 * math.pi, 1001)[:-1]
    on_circle = 2 * torch.stack([angles.cos(), angles.sin()], dim=1)
    exact = ring_noise_metrics(on_circle)
    assert exact["radius_mean"] == pytest.approx(2.0, abs=1e-6)
    assert exact["radius_std"] == pytest.approx(0.0, abs=1e-6)
    assert exact["radius_std_error"] == pytest.approx(0.1, abs=1e-6)
    assert exact["near_ring"] == 1.0
    assert ring_noise_metrics(1.5 * on_circle)["near_ring"] == 0.0

    data = toy_data("ring_noise")
    true = evaluate_toy(data, data.sample(50_000, torch.Generator().manual_seed(6)))
    assert true["radius_mean_error"] < 0.006 and true["radius_std_error"] < 0.003
    assert abs(true["near_ring"] - 0.9973) < 0.002  # P(|N(0, 1)| <= 3)


def test_count_metrics_known_answers() -> None:
    data = toy_data("negbin")
    zeros = np.zeros(1000)
    result = count_metrics(zeros, data)
    # All mass at 0: TV = 1 - pmf(0) = 1 - 0.5^5.
    assert result["tv"] == pytest.approx(1 - 0.5**5, abs=1e-9)
    assert result["mean"] == 0.0 and result["mean_error"] == 5.0
    assert count_metrics(torch.zeros(1000, 1), data) == result
    with pytest.raises(ValueError, match="non-negative integers"):
        count_metrics(np.array([1.0, -1.0]), data)
    with pytest.raises(ValueError, match="non-negative integers"):
        count_metrics(np.array([1.5]), data)

    mixture = toy_data("poisson_negbin")
    true = evaluate_toy(mixture, mixture.sample(100_000, torch.Generator().manual_seed(7)))
    assert true["tv"] < 0.02 and true["mean_error"] < 0.1
    assert true["true_mean"] == pytest.approx(8.5)
