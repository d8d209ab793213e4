"""Inception score and FID of generated CIFAR-10 samples (Table 3), through torch-fidelity.

The network is torch-fidelity's ``inception-v3-compat`` (the TensorFlow ``pt_inception-2015-12-05``
graph ported to PyTorch, with TensorFlow's resize to 299 x 299): its unbiased logits give the
inception score (Salimans et al. 2016), its 2,048 pool features the FID (Heusel et al. 2017).
These are the PyTorch Inception's numbers; the paper's are TensorFlow's. torch-fidelity
reproduces those to a few decimals (real CIFAR-10: about 11.24 on both).

What is computed here rather than by ``torch_fidelity.calculate_metrics`` is only the streaming:
the library collects every sample's features before computing anything (50,000 x 2,048 float32,
then a float64 copy for ``np.cov``, and 50,000 x 1,008 logits in float64 three times over for
the score). Here each batch of samples goes through the extractor and into running sums:

* FID: the count, the sum and the sum of outer products of the features (float64, shifted by the
  first batch's mean against cancellation), giving the same mean and covariance as the
  library's ``fid_features_to_statistics``; the distance itself is the library's
  ``fid_statistics_to_metric``.
* IS: torch-fidelity's ten splits (its seeded shuffle, rng_seed 2020) assigned to sample indices
  up front, and per split the sum of p(y|x) and of sum_y p log p, so that
  IS_split = exp(mean_x sum_y p log p - sum_y q log q), q the split's mean of p(y|x): the library's
  ``isc_features_to_metric`` exactly (the tests compare them).

Memory is O(batch + features^2), whatever the number of samples; the result does not depend on
how the samples were batched.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterable
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    FeatureExtractorInceptionV3,
)
from torch_fidelity.metric_fid import fid_statistics_to_metric

from sigdist.config import Config, ConfigError

INCEPTION_NAME = "inception-v3-compat"  # torch-fidelity's name of the network
INCEPTION_FILE = os.path.basename(URL_INCEPTION_V3)
IS_SPLITS = 10  # torch-fidelity's (and Salimans et al.'s) default
IS_SHUFFLE_SEED = 2020  # torch-fidelity's default rng_seed for the splits' shuffle
DOWNLOAD_SOCKET_TIMEOUT_S = 20.0


class InceptionWeightsUnavailable(ConfigError):
    """The Inception weights are neither at the given path nor in the cache, nor downloadable."""


def inception_cache_path() -> str:
    """Where torch-fidelity keeps the weights it downloads (torch.hub's checkpoints folder)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)


def _how_to_provide() -> str:
    return (f"Download {URL_INCEPTION_V3} (torch-fidelity's pt_inception-2015-12-05 weights) on "
            f"a machine with internet and put it at {inception_cache_path()} (torch-fidelity's "
            "cache; TORCH_HOME moves it), or pass its path with "
            "--set metrics.inception_weights=PATH")


def _checked_weights(path: str, key: str) -> str:
    """``path`` if it holds Inception weights (read with weights_only=True: plain tensors only;
    torch-fidelity then loads the same file), else :class:`InceptionWeightsUnavailable`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        ok = isinstance(state, dict) and tuple(state["fc.weight"].shape) == (1008, 2048)
    except Exception as error:  # unreadable, not a state dict, unsafe pickle
        ok, reason = False, f"{type(error).__name__}: {error}"
    else:
        reason = "not the Inception weights (no 1008 x 2048 fc.weight)"
    if not ok:
        raise InceptionWeightsUnavailable(f"{key} {path!r}: cannot be used ({reason[:300]}). "
                                          f"{_how_to_provide()}.")
    return path


def resolve_inception_weights(path: str = "", *, download: bool = True) -> str:
    """The Inception weights file: ``path`` (``metrics.inception_weights``) if given, else
    torch-fidelity's cache, downloaded there where missing and ``download``; else
    :class:`InceptionWeightsUnavailable`, which says how to provide them."""
    if path:
        if not os.path.isfile(path):
            raise InceptionWeightsUnavailable(f"metrics.inception_weights: no file at {path!r}. "
                                              f"{_how_to_provide()}.")
        return _checked_weights(path, "metrics.inception_weights")
    cached = inception_cache_path()
    if not os.path.isfile(cached):
        if not download:
            raise InceptionWeightsUnavailable(
                f"the Inception weights are not in torch-fidelity's cache ({cached}) and "
                f"data.download is false. {_how_to_provide()}.")
        from sigdist.data.mnist import _short_reason, _socket_timeout

        folder = os.path.dirname(cached)
        folder_existed = os.path.isdir(folder)
        try:
            os.makedirs(folder, exist_ok=True)
            with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):  # writes a temp file, then renames
                torch.hub.download_url_to_file(URL_INCEPTION_V3, cached, progress=False)
        except Exception as error:
            if not folder_existed and os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)  # leave nothing behind
            raise InceptionWeightsUnavailable(
                f"the Inception weights are not in torch-fidelity's cache ({cached}) and could "
                f"not be downloaded ({_short_reason(error)}). {_how_to_provide()}.") from None
    return _checked_weights(cached, "the cached Inception weights")


class StandInExtractor(nn.Module):
    """A small fixed network in Inception's place, for smoke tests only: uint8 (n, 3, H, W)
    -> (64 pool features, 10 logits), random weights from a fixed seed. Its "inception score"
    and "FID" exercise the code path; they measure nothing comparable to published numbers."""

    name = "stand-in"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(64, 10)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images.float() / 127.5 - 1.0)
        # logits from the features' pattern, not their common level (all ReLU outputs are >= 0)
        return features, self.fc(features - features.mean(dim=1, keepdim=True)) * 30.0


def check_extractor(cfg: Config) -> None:
    """Raise :class:`InceptionWeightsUnavailable` now, before training, where the extractor of
    ``cfg`` could not be built at the first evaluation (downloading the weights if allowed)."""
    if cfg.metrics.extractor == "inception":
        resolve_inception_weights(cfg.metrics.inception_weights, download=cfg.data.download)


def build_extractor(cfg: Config, device: torch.device | str = "cpu") -> tuple[nn.Module, str]:
    """The feature extractor of ``metrics.extractor`` on ``device`` and an id naming it (for
    cached statistics): a callable from uint8 images to (pool features, logits)."""
    if cfg.metrics.extractor == "stand-in":
        return StandInExtractor().to(device), "stand-in-64"
    weights = resolve_inception_weights(cfg.metrics.inception_weights,
                                         download=cfg.data.download)
    extractor = FeatureExtractorInceptionV3(INCEPTION_NAME, ["2048", "logits_unbiased"],
                                            feature_extractor_weights_path=weights)
    tag = os.path.splitext(os.path.basename(weights))[0]
    return extractor.to(device), f"{INCEPTION_NAME}-2048-{tag}"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (float) as the uint8 the extractors take; uint8 passes unchanged."""
    if images.dtype == torch.uint8:
        return images
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class FeatureMoments:
    """Running mean and covariance (ddof 1, as ``np.cov``) of feature rows, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.shift = self.total = self.outer = None

    def update(self, features: torch.Tensor) -> None:
        rows = features.detach().double()
        if self.shift is None:
            self.shift = rows.mean(dim=0)
            self.total = torch.zeros_like(self.shift)
            self.outer = torch.zeros(len(self.shift), len(self.shift), dtype=torch.float64,
                                     device=rows.device)
        centred = rows - self.shift
        self.total += centred.sum(dim=0)
        self.outer.addmm_(centred.T, centred)
        self.count += len(rows)

    def statistics(self) -> dict[str, np.ndarray]:
        if self.count < 2:
            raise ValueError(f"FID needs at least 2 samples, got {self.count}")
        mean_centred = self.total / self.count
        covariance = (self.outer - self.count * torch.outer(mean_centred, mean_centred)) / (
            self.count - 1)
        return {"mu": (self.shift + mean_centred).cpu().numpy(),
                "sigma": covariance.cpu().numpy()}


class SplitInceptionScore:
    """torch-fidelity's split inception score, accumulated batch by batch (module docstring)."""

    def __init__(self, count: int, splits: int = IS_SPLITS, seed: int = IS_SHUFFLE_SEED) -> None:
        if count < 1:
            raise ValueError("the inception score needs at least one sample")
        self.splits = min(splits, count)
        permutation = np.random.RandomState(seed).permutation(count)
        bounds = [(i * count) // self.splits for i in range(self.splits + 1)]
        split_of_position = np.searchsorted(bounds, np.arange(count), side="right") - 1
        split_of = np.empty(count, dtype=np.int64)
        split_of[permutation] = split_of_position  # sample permutation[j] sits at position j
        self.split_of = torch.from_numpy(split_of)
        self.count, self.seen = count, 0
        self.sums = None

    def update(self, logits: torch.Tensor) -> None:
        logits = logits.detach().double()
        if self.seen + len(logits) > self.count:
            raise ValueError(f"more than the {self.count} samples announced")
        if self.sums is None:
            zeros = dict(dtype=torch.float64, device=logits.device)
            self.sums = (torch.zeros(self.splits, **zeros),
                         torch.zeros(self.splits, logits.shape[1], **zeros),
                         torch.zeros(self.splits, **zeros))
        split = self.split_of[self.seen:self.seen + len(logits)].to(logits.device)
        log_p = logits.log_softmax(dim=1)
        p = log_p.exp()
        counts, p_sums, neg_entropy_sums = self.sums
        counts.index_add_(0, split, torch.ones_like(split, dtype=torch.float64))
        p_sums.index_add_(0, split, p)
        neg_entropy_sums.index_add_(0, split, (p * log_p).sum(dim=1))
        self.seen += len(logits)

    def result(self) -> tuple[float, float]:
        if self.seen != self.count:
            raise ValueError(f"got {self.seen} samples of the {self.count} announced")
        counts, p_sums, neg_entropy_sums = self.sums
        marginal = p_sums / counts[:, None]
        scores = (neg_entropy_sums / counts - torch.special.xlogy(marginal, marginal).sum(1)).exp()
        scores = scores.cpu().numpy()
        return float(np.mean(scores)), float(np.std(scores))


@torch.no_grad()
def extract_streaming(chunks: Iterable[torch.Tensor], extractor: nn.Module, *,
                      count: int | None, batch_size: int, device: torch.device | str,
                      splits: int = IS_SPLITS) -> tuple[FeatureMoments, SplitInceptionScore | None]:
    """Pass images (chunks of float [0, 1] or uint8 (n, 3, H, W)) through ``extractor`` in
    batches of ``batch_size`` on ``device``, into the running FID moments and, where ``count``
    (the number of images to come) is given, the split inception score."""
    moments = FeatureMoments()
    score = SplitInceptionScore(count, splits) if count is not None else None
    for chunk in chunks:
        for start in range(0, len(chunk), batch_size):
            images = to_uint8(chunk[start:start + batch_size].to(device))
            features, logits = extractor(images)
            moments.update(features)
            if score is not None:
                score.update(logits)
    return moments, score


def frechet_distance(stats_1: dict[str, np.ndarray], stats_2: dict[str, np.ndarray]) -> float:
    """torch-fidelity's FID between two (mu, sigma) pairs, both taken in float64."""
    stats_1, stats_2 = ({key: np.asarray(stats[key], dtype=np.float64) for key in ("mu", "sigma")}
                        for stats in (stats_1, stats_2))
    return float(next(iter(fid_statistics_to_metric(stats_1, stats_2, False).values())))


@contextmanager
def _exclusive(path: str):
    """Block until this process holds the lock file ``path``: one writer of a cache at a time."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reference_statistics(images: torch.Tensor, extractor: nn.Module, cache_path: str, *,
                         batch_size: int, device: torch.device | str) -> dict[str, np.ndarray]:
    """FID statistics of the reference ``images`` (uint8 (n, 3, 32, 32)), computed once and kept
    at ``cache_path`` (.npz, written atomically; concurrent runs wait for the first)."""
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    with _exclusive(cache_path + ".lock"):
        if os.path.isfile(cache_path):
            with np.load(cache_path, allow_pickle=False) as stored:
                if int(stored["count"]) == len(images):
                    return {"mu": stored["mu"], "sigma": stored["sigma"]}
        moments, _ = extract_streaming([images], extractor, count=None, batch_size=batch_size,
                                       device=device)
        stats = moments.statistics()
        temporary = f"{cache_path}.{os.getpid()}.tmp.npz"
        np.savez(temporary, count=len(images), **stats)
        os.replace(temporary, cache_path)
    return stats


class FidelityScorer:
    """Inception score and FID of generated images against reference statistics."""

    def __init__(self, extractor: nn.Module, reference: dict[str, np.ndarray], *,
                 device: torch.device | str, batch_size: int = 64) -> None:
        self.extractor, self.reference = extractor, reference
        self.device, self.batch_size = torch.device(device), batch_size

    def score_chunks(self, chunks: Iterable[torch.Tensor], count: int) -> dict[str, float]:
        """The metrics of ``count`` images that arrive in ``chunks`` (a generator's stream)."""
        moments, score = extract_streaming(chunks, self.extractor, count=count,
                                           batch_size=self.batch_size, device=self.device)
        is_mean, is_std = score.result()
        return {"inception_score": is_mean, "inception_score_std": is_std,
                "fid": frechet_distance(moments.statistics(), self.reference),
                "num_samples": float(count)}

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        return self.score_chunks([samples], len(samples))


def cifar10_scorer(cfg: Config, data, device: torch.device | str) -> FidelityScorer:
    """Table 3's metrics against the FID statistics of ``data``'s training images, cached under
    ``data.root/fidelity/``."""
    extractor, extractor_id = build_extractor(cfg, device)
    source = "cifar-10-stand-in" if cfg.data.stand_in else "cifar-10"
    digest = hashlib.sha1(data.images[:: max(1, len(data.images) // 64)].cpu().numpy()
                          .tobytes()).hexdigest()[:8]  # a cheap guard against changed data
    cache = os.path.join(cfg.data.root, "fidelity",
                         f"{source}-train-{len(data.images)}-{digest}-{extractor_id}.npz")
    batch_size = 128 if torch.device(device).type == "cuda" else 64
    reference = reference_statistics(data.images, extractor, cache, batch_size=batch_size,
                                     device=device)
    return FidelityScorer(extractor, reference, device=device, batch_size=batch_size)


__all__ = ["FeatureMoments", "FidelityScorer", "INCEPTION_NAME", "InceptionWeightsUnavailable",
           "SplitInceptionScore", "StandInExtractor", "build_extractor", "check_extractor",
           "cifar10_scorer", "extract_streaming", "frechet_distance", "inception_cache_path",
           "reference_statistics", "resolve_inception_weights", "to_uint8"]
