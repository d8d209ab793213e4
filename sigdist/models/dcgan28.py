"""The Stacked-MNIST (MNIST-3) DCGAN pair (Section 5.3, Appendix C), widths set by the config.

Generator: z ~ N(0, I_256) -> TConv 64*wg (k7: 1x1 -> 7x7) -> TConv 32*wg (k4 s2: 14x14) ->
TConv 3 (k4 s2: 28x28) -> sigmoid, batch norm and ReLU after the inner layers.
Discriminator: Conv 16*wd (k4 s2: 14x14) -> Conv 32*wd (k4 s2: 7x7, batch norm) -> FC 1,
leaky ReLU 0.2. ``wg`` and ``wd`` are ``model.width_g`` and ``model.width_d``; at 4 and 4 the
pair is the textbook DCGAN (generator 256 -> 128, discriminator 64 -> 128).

Appendix C's widths (64, 32, 8 times Kg; 8, 16, 32 times Kd, k4 kernels) name the family; its
shape, as printed, does not reach 28 x 28 and, completed the obvious way (an FC 4x4x64 layer,
a stride-1 k4 layer at each end, no batch norm in the discriminator), collapses to a single
image at every width tried. docs/stacked_mnist.md walks from that pair to this one a
difference at a time: the FC 4x4x64 bottleneck and the missing batch norm in the
discriminator decide it; this pair removes both and drops the two extra stride-1 layers.
"""

from __future__ import annotations

import torch
from torch import nn

# Appendix C's widths that the pair keeps: the generator's first two, the discriminator's last two.
GENERATOR_BASE_WIDTHS = (64, 32)
DISCRIMINATOR_BASE_WIDTHS = (16, 32)


def scaled_width(base: int, multiplier: float) -> int:
    """``base * multiplier`` channels, rounded, at least 1."""
    return max(1, int(round(base * multiplier)))


class DCGAN28Generator(nn.Module):
    def __init__(self, width: float = 1.0, noise_dim: int = 256, channels: int = 3) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        w1, w2 = (scaled_width(b, width) for b in GENERATOR_BASE_WIDTHS)
        self.net = nn.Sequential(
            # z is projected straight to 7 x 7 x w1: a narrow FC 4x4x64 bottleneck in front
            # of it collapsed the samples to one image (docs/stacked_mnist.md).
            nn.ConvTranspose2d(noise_dim, w1, 7, stride=1, padding=0), nn.BatchNorm2d(w1),
            nn.ReLU(),
            nn.ConvTranspose2d(w1, w2, 4, stride=2, padding=1), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.ConvTranspose2d(w2, channels, 4, stride=2, padding=1),
            # Pixel intensities in [0, 1]: psi is the mean of the Gaussian likelihood.
            nn.Sigmoid(),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(noise.view(noise.shape[0], -1, 1, 1))


class DCGAN28Discriminator(nn.Module):
    def __init__(self, width: float = 1.0, channels: int = 3, *, batchnorm: bool = True) -> None:
        """``batchnorm=False`` for a WGAN-GP critic, whose gradient penalty is per sample."""
        super().__init__()
        w1, w2 = (scaled_width(b, width) for b in DISCRIMINATOR_BASE_WIDTHS)
        self.net = nn.Sequential(
            nn.Conv2d(channels, w1, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            # batch norm here: without it the pair collapsed (docs/stacked_mnist.md)
            nn.Conv2d(w1, w2, 4, stride=2, padding=1),
            nn.BatchNorm2d(w2) if batchnorm else nn.Identity(), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(w2 * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
