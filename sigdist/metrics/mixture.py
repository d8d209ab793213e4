"""Metrics for the toy experiments: Table 1 (Section 5.2) and Figure 1 (Section 5.1).

All functions are pure, accept torch tensors or numpy arrays, and compute in float64 on the CPU,
so the result depends only on the samples, never on how they were batched.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sigdist.data.toys import CountMixtureToy, GaussianMixtureToy, RingNoiseToy, ToyData


def _as_float64(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def mixture_metrics(
    samples: Any, centres: Any, std: float, *, min_count: float = 1000, chunk_size: int = 8192
) -> dict[str, Any]:
    """Mode coverage, sample quality and KL of Table 1 (Section 5.2) for an isotropic mixture.

    Following the paper (and its peers VEEGAN / Unrolled GAN), with ``samples`` (N, 2) and
    ``centres`` (M, 2) of an equal-weight Gaussian mixture with per-coordinate ``std``:

    - a sample is *high quality* if its Euclidean distance to some centre is at most 3 ``std``;
      it is assigned to its nearest centre (unique, as the centres are > 6 std apart);
    - ``modes``: the number of centres with MORE than ``min_count`` high-quality samples (the
      paper: > 1,000 of 50,000 generated points);
    - ``high_quality``: the share of high-quality samples;
    - ``kl``: KL(p_gen || p_true) over M + 1 bins (M modes plus one "low quality" bin; 26 for the
      25-Gaussian grid). p_gen is the histogram of the samples. p_true is the same binning of the
      true mixture in closed form: ||x - c||^2 / std^2 ~ chi2_2 within a component, so every mode
      bin holds (1/M) P(chi2_2 <= 9) = (1/M)(1 - exp(-4.5)) and the low-quality bin the rest
      (other components contribute nothing, as their 3-std discs are disjoint). 0 log 0 = 0.

    ``chunk_size`` only bounds memory (chunk_size x M distances at a time).
    """
    points = _as_float64(samples).reshape(len(samples), -1)
    centre_points = _as_float64(centres)
    if points.shape[1] != centre_points.shape[1]:
        raise ValueError(f"samples have dim {points.shape[1]}, centres {centre_points.shape[1]}")
    if len(points) == 0:
        raise ValueError("mixture_metrics needs at least one sample")
    num_modes = len(centre_points)
    gaps = np.linalg.norm(centre_points[:, None] - centre_points[None], axis=-1)
    min_gap = gaps[~np.eye(num_modes, dtype=bool)].min() if num_modes > 1 else math.inf
    if min_gap <= 6 * std:
        # Otherwise 3-std discs overlap and the closed-form p_true below is wrong.
        raise ValueError(f"centres {min_gap:.3g} apart, need > 6 std = {6 * std:.3g}")

    counts = np.zeros(num_modes + 1, dtype=np.int64)  # last bin: low quality
    for start in range(0, len(points), chunk_size):
        chunk = points[start : start + chunk_size]
        distance = np.linalg.norm(chunk[:, None, :] - centre_points[None], axis=-1)
        nearest = distance.argmin(axis=1)
        high_quality = distance[np.arange(len(chunk)), nearest] <= 3 * std
        counts += np.bincount(np.where(high_quality, nearest, num_modes), minlength=num_modes + 1)

    p_gen = counts / len(points)
    mass_within = -math.expm1(-4.5)  # P(chi2_2 <= 9) = 1 - exp(-9 / 2)
    p_true = np.append(np.full(num_modes, mass_within / num_modes), 1.0 - mass_within)
    present = p_gen > 0
    kl = float(np.sum(p_gen[present] * np.log(p_gen[present] / p_true[present])))
    return {
        "modes": int(np.sum(counts[:num_modes] > min_count)),
        "high_quality": float(counts[:num_modes].sum() / len(points)),
        "kl": kl,
    }


def _support_end(data: CountMixtureToy, tail_mass: float) -> int:
    """Smallest k with P(X <= k) >= 1 - tail_mass under the true pmf."""
    end = max(16, int(4 * data.mean))
    while True:
        cdf = torch.cumsum(data.pmf(torch.arange(end + 1, dtype=torch.float64)), 0)
        reached = torch.nonzero(cdf >= 1 - tail_mass)
        if reached.numel() > 0:
            return int(reached[0, 0])
        end *= 2


def count_metrics(samples: Any, data: CountMixtureToy, *, tail_mass: float = 1e-6) -> dict:
    """Fit of generated counts to a count toy of Figure 1 (Section 5.1).

    ``tv``: total-variation distance between the empirical pmf of the samples and ``data.pmf``
    over the support 0..max(largest sample, the (1 - tail_mass) quantile); the true mass beyond
    that support (at most ``tail_mass``) counts fully, as no sample lies there. Also the sample
    mean against the true mean. Samples must be non-negative integers (floats allowed).
    """
    values = _as_float64(samples).reshape(-1)
    if len(values) == 0:
        raise ValueError("count_metrics needs at least one sample")
    if np.any(values < 0) or np.any(values != np.round(values)):
        raise ValueError("count samples must be non-negative integers")
    end = max(int(values.max()), _support_end(data, tail_mass))
    empirical = np.bincount(values.astype(np.int64), minlength=end + 1) / len(values)
    true_pmf = data.pmf(torch.arange(end + 1, dtype=torch.float64)).numpy()
    tv = 0.5 * (np.abs(empirical - true_pmf).sum() + max(0.0, 1.0 - true_pmf.sum()))
    mean = float(values.mean())
    return {
        "tv": float(tv),
        "mean": mean,
        "true_mean": data.mean,
        "mean_error": abs(mean - data.mean),
    }


def ring_noise_metrics(samples: Any, radius: float = 2.0, noise: float = 0.1) -> dict:
    """Fit of 2-D samples to Figure 1's "ring + Gaussian noise" (Section 5.1).

    Mean and std of the sample radii and their deviation from the nominal radius and noise std,
    plus ``near_ring``: the share of samples within 3 noise std of the circle (about 0.997 for
    the true data, as the radial noise is nearly N(0, noise^2) when noise << radius).
    """
    points = _as_float64(samples).reshape(len(samples), -1)
    if len(points) == 0:
        raise ValueError("ring_noise_metrics needs at least one sample")
    radii = np.linalg.norm(points, axis=1)
    radius_mean, radius_std = float(radii.mean()), float(radii.std())
    return {
        "radius_mean": radius_mean,
        "radius_std": radius_std,
        "radius_mean_error": abs(radius_mean - radius),
        "radius_std_error": abs(radius_std - noise),
        "near_ring": float(np.mean(np.abs(radii - radius) <= 3 * noise)),
    }


def evaluate_toy(data: ToyData, samples: Any) -> dict:
    """The metrics that fit ``data`` (gmm25 / ring, ring_noise, negbin / poisson_negbin).

    For the mixtures ``min_count`` scales as 1000 * n / 50000, which is Table 1's rule at the
    paper's n = 50,000.
    """
    if isinstance(data, GaussianMixtureToy):
        min_count = 1000 * len(samples) / 50_000
        return mixture_metrics(samples, data.centres, data.std, min_count=min_count)
    if isinstance(data, RingNoiseToy):
        return ring_noise_metrics(samples, radius=data.radius, noise=data.noise)
    if isinstance(data, CountMixtureToy):
        return count_metrics(samples, data)
    raise ValueError(f"no metrics for toy data set {data.name!r}")
