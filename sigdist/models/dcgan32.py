"""The 32 x 32 x 3 DCGAN pair for CIFAR-10 (Table 3): the standard CIFAR DCGAN of Radford et
al. (as in the WGAN-GP paper's CIFAR-10 DCGAN setting), its widths multiplied by
``model.width_g`` / ``model.width_d`` (1: the standard widths).

Generator: z ~ N(0, I_128) -> FC 4*4*256w (batch norm, ReLU) -> TConv 128w (k4 s2: 8x8) ->
TConv 64w (k4 s2: 16x16) -> TConv 3 (k4 s2: 32x32) -> sigmoid, batch norm and ReLU after the
inner layers. Pixel intensities in [0, 1]: psi is the mean of the Gaussian likelihood of L_K.
Discriminator: Conv 64w (k4 s2: 16x16) -> Conv 128w (k4 s2: 8x8) -> Conv 256w (k4 s2: 4x4) ->
FC 1, leaky ReLU 0.2, batch norm after every convolution but the first (DCGAN's rule). The
WGAN-GP critic is the same network without batch norm: its gradient penalty is per sample,
which batch statistics would couple across the batch (Gulrajani et al., Section 4).
"""

from __future__ import annotations

import torch
from torch import nn

from sigdist.models.dcgan28 import scaled_width

# The standard CIFAR DCGAN's channel counts at width 1.
GENERATOR_BASE_WIDTHS = (256, 128, 64)
DISCRIMINATOR_BASE_WIDTHS = (64, 128, 256)


class DCGAN32Generator(nn.Module):
    def __init__(self, width: float = 1.0, noise_dim: int = 128) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        w1, w2, w3 = (scaled_width(b, width) for b in GENERATOR_BASE_WIDTHS)
        self.w1 = w1
        self.fc = nn.Sequential(nn.Linear(noise_dim, 4 * 4 * w1), nn.BatchNorm1d(4 * 4 * w1),
                                nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(w1, w2, 4, stride=2, padding=1), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.ConvTranspose2d(w2, w3, 4, stride=2, padding=1), nn.BatchNorm2d(w3), nn.ReLU(),
            nn.ConvTranspose2d(w3, 3, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(noise).view(-1, self.w1, 4, 4))


class DCGAN32Discriminator(nn.Module):
    def __init__(self, width: float = 1.0, *, batchnorm: bool = True) -> None:
        """``batchnorm=False`` for a WGAN-GP critic."""
        super().__init__()
        w1, w2, w3 = (scaled_width(b, width) for b in DISCRIMINATOR_BASE_WIDTHS)

        def norm(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()

        self.net = nn.Sequential(
            nn.Conv2d(3, w1, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w1, w2, 4, stride=2, padding=1), norm(w2), nn.LeakyReLU(0.2),
            nn.Conv2d(w2, w3, 4, stride=2, padding=1), norm(w3), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(w3 * 4 * 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
