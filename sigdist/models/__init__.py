"""Networks, built from the config alone (plus the shape of one data point)."""

from __future__ import annotations

import math

from torch import nn

from sigdist.config import Config
from sigdist.models.dcgan28 import DCGAN28Discriminator, DCGAN28Generator
from sigdist.models.dcgan32 import DCGAN32Discriminator, DCGAN32Generator
from sigdist.models.mlp import MLPDiscriminator, MLPGenerator

__all__ = [
    "DCGAN28Discriminator", "DCGAN28Generator", "DCGAN32Discriminator", "DCGAN32Generator",
    "MLPDiscriminator", "MLPGenerator", "build_discriminator", "build_generator",
    "default_noise_dim", "likelihood_params",
]

# Parameters of p(x | psi) per data dimension: psi = mean (gaussian), log rate (poisson),
# (log r, logit p) (negbin).
_PARAMS_PER_DIM = {"gaussian": 1, "poisson": 1, "negbin": 2}


def likelihood_params(likelihood: str) -> int:
    return _PARAMS_PER_DIM[likelihood]


def default_noise_dim(data_shape: tuple[int, ...]) -> int:
    """10-d noise for the toys (Section 5.1), 256 for Stacked MNIST (Appendix C), 128 for 32x32."""
    if len(data_shape) == 1:
        return 10
    return 256 if data_shape[-1] == 28 else 128


def _noise_dim(cfg: Config, data_shape: tuple[int, ...]) -> int:
    return cfg.model.noise_dim or default_noise_dim(data_shape)


def build_generator(cfg: Config, data_shape: tuple[int, ...]) -> nn.Module:
    noise_dim = _noise_dim(cfg, data_shape)
    if len(data_shape) == 1:
        out_dim = math.prod(data_shape) * likelihood_params(cfg.loss.likelihood)
        return MLPGenerator(noise_dim, out_dim, hidden=cfg.model.hidden)
    if tuple(data_shape[-2:]) == (28, 28):
        return DCGAN28Generator(cfg.model.width_g, noise_dim, channels=data_shape[0])
    if tuple(data_shape) == (3, 32, 32):
        return DCGAN32Generator(cfg.model.width_g, noise_dim)
    raise ValueError(f"no generator for data of shape {data_shape}")


def build_discriminator(cfg: Config, data_shape: tuple[int, ...]) -> nn.Module:
    if len(data_shape) == 1:
        return MLPDiscriminator(math.prod(data_shape), hidden=cfg.model.hidden)
    if tuple(data_shape[-2:]) == (28, 28):
        return DCGAN28Discriminator(cfg.model.width_d, channels=data_shape[0],
                                    batchnorm=not cfg.method.startswith("wgan"))
    if tuple(data_shape) == (3, 32, 32):
        return DCGAN32Discriminator(cfg.model.width_d,
                                    batchnorm=not cfg.method.startswith("wgan"))
    raise ValueError(f"no discriminator for data of shape {data_shape}")
