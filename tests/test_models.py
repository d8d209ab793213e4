"""Networks built from the config alone have the paper's shapes."""

import pytest
import torch

from sigdist.config import Config
from sigdist.models import (
    DCGAN28Discriminator,
    DCGAN28Generator,
    DCGAN32Discriminator,
    DCGAN32Generator,
    build_discriminator,
    build_generator,
)


def _widths(module: torch.nn.Module, kind: type) -> list[int]:
    return [m.out_channels for m in module.modules() if isinstance(m, kind)]


def test_grid_mlps_follow_section_5_2():
    cfg = Config()
    gen, disc = build_generator(cfg, (2,)), build_discriminator(cfg, (2,))
    hidden_g = [m.out_features for m in gen.modules() if isinstance(m, torch.nn.Linear)]
    hidden_d = [m.out_features for m in disc.modules() if isinstance(m, torch.nn.Linear)]
    assert hidden_g == [100, 100, 2] and gen.noise_dim == 10
    assert hidden_d == [100, 1]
    assert disc(gen(torch.randn(7, 10))).shape == (7,)


def test_negbin_generator_emits_two_parameters_per_dimension():
    cfg = Config().replace(**{"data.name": "negbin", "loss.likelihood": "negbin"})
    assert build_generator(cfg, (1,))(torch.randn(5, 10)).shape == (5, 2)


@pytest.mark.parametrize(("width_g", "width_d", "g_widths", "d_widths"), [
    (1.0, 1.0, [64, 32, 3], [16, 32]),  # Appendix C's widths
    (4.0, 4.0, [256, 128, 3], [64, 128]),  # the textbook DCGAN
    (0.25, 0.5, [16, 8, 3], [8, 16]),
])
def test_stacked_mnist_pair_widths(width_g, width_d, g_widths, d_widths):
    gen, disc = DCGAN28Generator(width_g), DCGAN28Discriminator(width_d)
    images = gen(torch.randn(4, 256))
    assert images.shape == (4, 3, 28, 28)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert disc(images).shape == (4,)
    assert _widths(gen, torch.nn.ConvTranspose2d) == g_widths
    assert _widths(disc, torch.nn.Conv2d) == d_widths
    # no FC bottleneck in front of the generator; batch norm in the discriminator
    assert not any(isinstance(m, torch.nn.Linear) for m in gen.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules()) == 1


def test_config_widths_reach_the_networks():
    cfg = Config().replace(**{"model.width_g": 2.0, "model.width_d": 0.5})
    gen, disc = build_generator(cfg, (3, 28, 28)), build_discriminator(cfg, (3, 28, 28))
    assert _widths(gen, torch.nn.ConvTranspose2d) == [128, 64, 3]
    assert _widths(disc, torch.nn.Conv2d) == [8, 16]
    critic = build_discriminator(cfg.replace(method="wgan_gp"), (3, 28, 28))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())


def test_config_builds_image_networks():
    cfg = Config().replace(**{"model.size": "L"})
    assert build_generator(cfg, (3, 28, 28))(torch.randn(2, 256)).shape == (2, 3, 28, 28)
    assert build_generator(cfg, (3, 32, 32))(torch.randn(2, 128)).shape == (2, 3, 32, 32)
    assert build_discriminator(cfg, (3, 32, 32))(torch.rand(2, 3, 32, 32)).shape == (2,)


def test_cifar_pair_shapes():
    gen, disc = DCGAN32Generator(0.5), DCGAN32Discriminator(0.5)
    assert disc(gen(torch.randn(3, 128))).shape == (3,)
