"""Metrics of generated Stacked-MNIST (MNIST-3) samples: Table 2 of the paper (Section 5.3).

A digit classifier (:mod:`sigdist.metrics.classifier`) is applied to each of the three channels;
everything here is computed from its per-channel softmax, in float64 on the CPU, so the result
depends only on the samples and the classifier, never on how they were batched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sigdist.metrics.classifier import CLASSIFY_BATCH, classify_channels

NUM_TRIPLES = 1000  # Stacked-MNIST modes: digit triples 000..999
PEER_SAMPLE_COUNT = 26_000  # samples the paper's peers (VEEGAN, PacGAN) score per model
HIGH_QUALITY_THRESHOLD = 0.7  # Section 5.3: "classified ... with a probability larger than 0.7"
_MARGINAL_CHUNK = 4096  # samples per chunk of the triple marginal; only bounds memory
_CHANNEL_PLACE_VALUES = np.array([100, 10, 1])  # triple = 100 * d_R + 10 * d_G + d_B


def _entropy(probs: np.ndarray, axis: int = -1) -> np.ndarray:
    """Entropy in nats along ``axis``, with 0 log 0 = 0."""
    safe = np.where(probs > 0, probs, 1.0)
    return -(probs * np.log(safe)).sum(axis=axis)


def stacked_mnist_metrics(probs: Any) -> dict[str, float]:
    """Table 2's metrics from per-channel digit probabilities ``probs`` (n, 3, 10) (Section 5.3).

    With p_c(d | x) the classifier's softmax on channel c (R, G, B) of sample x, and a sample's
    predicted triple t(x) = 100 a + 10 b + c for the per-channel argmax digits a, b, c:

    - ``modes``: the number of distinct predicted triples t(x) with at least one sample (0..1000);
    - ``kl``: KL(p_gen || uniform over 1,000) = sum_t p_gen(t) log(1000 p_gen(t)) in nats, where
      p_gen is the histogram of the predicted triples, with 0 log 0 = 0. Even perfectly uniform
      real data does not reach 0: for n samples the multinomial sampling floor is
      E[KL] ≈ (1000 - 1) / (2 n) (second-order expansion of the log), which is 999 / 52,000 ≈
      0.0192 for n = 26,000 (a real-data run also pays for the classifier's mistakes);
    - ``high_quality``: the share of samples whose three channel max-probabilities are all > 0.7;
    - ``h_y_given_x``: the mean over samples of the entropy of p(y | x) over the 1,000 triples,
      p(y = (a, b, c) | x) = p_R(a | x) p_G(b | x) p_B(c | x), so that entropy is the sum of the
      three channel entropies; in nats;
    - ``h_y``: the entropy of the marginal p(y) = mean_x p(y | x) over the 1,000 triples (the
      (10, 10, 10) mean of outer products, built in chunks); in nats;
    - ``inception_score``: exp(E_x KL(p(y | x) || p(y))) = exp(h_y - h_y_given_x), the inception
      score over the 1,000 Stacked-MNIST classes (triples), so it ranges from 1 to 1000;
    - ``inception_score_digit``: the mean over the three channels of the 10-class inception score
      exp(H(mean_x p_c) - mean_x H(p_c(. | x))) of that channel's digits; ranges from 1 to 10;
    - ``h_y_bits``, ``h_y_given_x_bits``: the two entropies in bits (divided by log 2).

    Units and comparability with the paper's Table 2 (columns IS, High quality, H(y|x), H(y),
    Mode, KL): its H(y) reaches 9.75 > log 1000 = 6.91 nats, so its entropies are over triples
    in bits (log2 1000 = 9.97). Its KL is in nats: DCGAN(S) averages 21 modes and KL 4.99, while
    any histogram on m triples has KL >= log(1000 / m), and by Jensen the 5-run mean is then
    >= log2(1000 / 21) = 5.57 in bits but only >= 3.86 in nats. Its IS (2.9 - 6.05) is not the
    1,000-class score of its own entropy columns (DCGAN-SI(M): 2^(9.75 - 1.65) ≈ 274); it fits
    the per-digit score, which is at most about 10 * 2^(-H(y|x) / 3) (H(y|x) in bits, split
    evenly over the channels): 6.36 - 6.88 for its rows, above every reported IS. So compare
    Table 2's IS with ``inception_score_digit`` and its entropies with ``h_y_bits`` and
    ``h_y_given_x_bits``. (The paper does not say; log(``inception_score``), the mutual
    information in nats, 2.2 - 5.6 for its rows, is of the same size but not a score.)
    """
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[1:] != (3, 10):
        raise ValueError(f"probs: want (n, 3, 10), got {probs.shape}")
    num_samples = len(probs)
    if num_samples == 0:
        raise ValueError("stacked_mnist_metrics needs at least one sample")

    triples = probs.argmax(axis=2) @ _CHANNEL_PLACE_VALUES
    counts = np.bincount(triples, minlength=NUM_TRIPLES)
    p_gen = counts[counts > 0] / num_samples
    kl = float(np.sum(p_gen * np.log(NUM_TRIPLES * p_gen)))
    high_quality = float(np.mean(np.all(probs.max(axis=2) > HIGH_QUALITY_THRESHOLD, axis=1)))

    channel_entropies = _entropy(probs)  # (n, 3): H(p_c(. | x)) per sample and channel
    h_y_given_x = float(channel_entropies.sum(axis=1).mean())
    # Chunked sum of outer products p_R x p_G x p_B: a (chunk, 10, 10, 10) slab at a time, in a
    # fixed chunking that does not depend on how the caller batched anything.
    marginal = np.zeros((10, 10, 10))
    for start in range(0, num_samples, _MARGINAL_CHUNK):
        chunk = probs[start : start + _MARGINAL_CHUNK]
        marginal += np.einsum("na,nb,nc->abc", chunk[:, 0], chunk[:, 1], chunk[:, 2])
    h_y = float(_entropy(marginal.reshape(-1) / num_samples))

    digit_marginals = probs.mean(axis=0)  # (3, 10): p_c(d) per channel
    digit_scores = np.exp(_entropy(digit_marginals) - channel_entropies.mean(axis=0))
    return {
        "modes": int(np.count_nonzero(counts)),
        "kl": kl,
        "high_quality": high_quality,
        "h_y_given_x": h_y_given_x,
        "h_y": h_y,
        "inception_score": float(math.exp(h_y - h_y_given_x)),
        "inception_score_digit": float(digit_scores.mean()),
        "h_y_given_x_bits": h_y_given_x / math.log(2),
        "h_y_bits": h_y / math.log(2),
        "num_samples": int(num_samples),
    }


def ensemble_metrics(probs: Sequence[Any]) -> dict[str, float]:
    """Coverage metrics that no single digit classifier decides, from the per-channel
    probabilities ``probs[c]`` (n, 3, 10) that classifier c of an ensemble gives the same n
    samples (docs/classifiers.md). With p̄ the mean of the ensemble's probabilities:

    - ``ensemble_modes``, ``ensemble_kl``, ``ensemble_high_quality``: ``modes``, ``kl`` and
      ``high_quality`` of :func:`stacked_mnist_metrics` on p̄ (each sample's triple is the
      argmax of p̄ per channel; high quality: p̄ > 0.7 on all three channels);
    - ``confident_modes``: the triples with at least one confident sample, one on which every
      classifier names the same three digits and p̄ of each is above 0.7: a coverage count over
      digits any of the classifiers would read alike;
    - ``confident_share``: the share of confident samples;
    - ``classifier_spread_modes``, ``classifier_spread_kl``: max - min over the classifiers of
      each one's own ``modes`` and ``kl``: how much the choice of one classifier could move them.

    All are fixed by the samples and the classifiers, whatever the batching.
    """
    stack = np.stack([p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else
                      np.asarray(p, dtype=np.float64) for p in probs]).astype(np.float64)
    if stack.ndim != 4 or stack.shape[2:] != (3, 10) or len(stack) < 1:
        raise ValueError(f"probs: want C >= 1 arrays (n, 3, 10), got {stack.shape}")
    mean = stack.mean(axis=0)
    pooled = stacked_mnist_metrics(mean)
    labels = stack.argmax(axis=3)  # (C, n, 3)
    unanimous = np.all(labels == labels[:1], axis=(0, 2))
    confident = unanimous & np.all(mean.max(axis=2) > HIGH_QUALITY_THRESHOLD, axis=1)
    triples = labels[0] @ _CHANNEL_PLACE_VALUES
    singles = [stacked_mnist_metrics(p) for p in stack]
    return {
        "ensemble_modes": pooled["modes"],
        "ensemble_kl": pooled["kl"],
        "ensemble_high_quality": pooled["high_quality"],
        "confident_modes": int(np.unique(triples[confident]).size),
        "confident_share": float(confident.mean()),
        "classifier_spread_modes": float(max(m["modes"] for m in singles)
                                         - min(m["modes"] for m in singles)),
        "classifier_spread_kl": max(m["kl"] for m in singles) - min(m["kl"] for m in singles),
    }


def _checked_images(images: Any) -> torch.Tensor:
    """``images`` as a float tensor (n, 3, 28, 28) with values in [0, 1], or ValueError."""
    if not isinstance(images, torch.Tensor):
        images = torch.from_numpy(np.asarray(images, dtype=np.float32))
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, 28, 28):
        raise ValueError(f"samples: want (n, 3, 28, 28), got {tuple(images.shape)}")
    if len(images) and not bool(torch.isfinite(images).all()):
        raise ValueError("samples contain NaN or infinite values")
    # The classifier saw [0, 1] digits; tanh-style [-1, 1] samples would be scored as garbage.
    if len(images) and (float(images.min()) < -1e-6 or float(images.max()) > 1 + 1e-6):
        raise ValueError(
            f"samples must lie in [0, 1], got [{float(images.min()):.3g}, "
            f"{float(images.max()):.3g}]; map [-1, 1] outputs with (x + 1) / 2"
        )
    return images


def evaluate_stacked_mnist(
    samples: Callable[[int, torch.Generator], torch.Tensor] | torch.Tensor | np.ndarray,
    classifier: nn.Module,
    *,
    n: int | None = None,
    batch_size: int = CLASSIFY_BATCH,
    seed: int = 0,
    generate_batch_size: int = 1000,
    generator_device: torch.device | str = "cpu",
    classifier_accuracy: float | None = None,
    ensemble: Sequence[nn.Module] = (),
) -> dict[str, float]:
    """Table 2's metrics (Section 5.3) of Stacked-MNIST samples, via :func:`stacked_mnist_metrics`.

    ``samples`` is either float (n, 3, 28, 28) images in [0, 1] (tensor or numpy array; all are
    scored, and ``n``, if given, must equal their count) or a sampler ``generate(count,
    generator)`` returning such images; it is called under no_grad in chunks of
    ``generate_batch_size`` with one ``torch.Generator`` on ``generator_device`` seeded by
    ``seed``, until ``n`` (default 26,000, as the paper's peers) samples are drawn. The result
    is fixed by the seed and the sampler, whatever ``batch_size`` (stacked images per classifier
    pass; bounds memory only). ``classifier_accuracy``, if given, is copied into the result.

    ``classifier`` gives the single-classifier metrics of :func:`stacked_mnist_metrics`; an
    ``ensemble`` of classifiers (which may hold ``classifier`` itself, then run once) adds
    :func:`ensemble_metrics` on the same samples.
    """
    if batch_size < 1 or generate_batch_size < 1:
        raise ValueError("batch_size and generate_batch_size must be positive")
    classifiers = [classifier, *(c for c in ensemble if c is not classifier)]
    if callable(samples):
        target = PEER_SAMPLE_COUNT if n is None else int(n)
        generator = torch.Generator(device=generator_device).manual_seed(seed)
        chunks = []
        for start in range(0, target, generate_batch_size):
            count = min(generate_batch_size, target - start)
            with torch.no_grad():
                images = _checked_images(samples(count, generator))
            if len(images) != count:
                raise ValueError(f"generate({count}, ...) returned {len(images)} samples")
            chunks.append([classify_channels(c, images, batch_size=batch_size)
                           for c in classifiers])
        probs = [torch.cat(column) for column in zip(*chunks, strict=True)] if chunks else [
            torch.zeros(0, 3, 10, dtype=torch.float64) for _ in classifiers]
    else:
        images = _checked_images(samples)
        if n is not None and int(n) != len(images):
            raise ValueError(f"n = {n} but {len(images)} samples were given")
        probs = [classify_channels(c, images, batch_size=batch_size) for c in classifiers]
    metrics: dict[str, float] = stacked_mnist_metrics(probs[0])
    if ensemble:
        metrics.update(ensemble_metrics([probs[classifiers.index(c)] for c in ensemble]))
    if classifier_accuracy is not None:
        metrics["classifier_accuracy"] = float(classifier_accuracy)
    return metrics


__all__ = [
    "HIGH_QUALITY_THRESHOLD",
    "ensemble_metrics",
    "NUM_TRIPLES",
    "PEER_SAMPLE_COUNT",
    "evaluate_stacked_mnist",
    "stacked_mnist_metrics",
]
