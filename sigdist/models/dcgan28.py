"""The Stacked-MNIST (MNIST-3) DCGAN pair of the paper's Appendix C, sizes S / M / L.

Generator: z ~ N(0, I_256) -> FC 4*4*64 -> TConv 64*Kg (k4) -> TConv 32*Kg (k4) -> TConv 8*Kg (k4)
-> Conv 3 (k4). Discriminator: Conv 8*Kd -> 16*Kd -> 32*Kd (k4) -> FC 1.
(Kg, Kd) = S (1, 0.5), M (1, 1), L (2, 1).

The printed strides and paddings do not reach 28 x 28; the widths and kernels are the paper's and
the geometry is 4 -> 7 (k4 s1 p0) -> 14 (k4 s2 p1) -> 28 (k4 s2 p1) -> 28 (k4 s1 'same'); the
discriminator mirrors it 28 -> 14 -> 7 -> 7.
"""

from __future__ import annotations

import torch
from torch import nn

# (Kg, Kd) per size, Appendix C.
SIZE_MULTIPLIERS = {"S": (1.0, 0.5), "M": (1.0, 1.0), "L": (2.0, 1.0)}


def _same_padding_k4() -> nn.ZeroPad2d:
    """'same' padding for an even (4) kernel at stride 1: one pixel before, two after."""
    return nn.ZeroPad2d((1, 2, 1, 2))


def _width(base: int, multiplier: float) -> int:
    return max(1, int(round(base * multiplier)))


class DCGAN28Generator(nn.Module):
    def __init__(self, size: str = "M", noise_dim: int = 256, channels: int = 3) -> None:
        super().__init__()
        kg, _ = SIZE_MULTIPLIERS[size]
        self.noise_dim = noise_dim
        w1, w2, w3 = _width(64, kg), _width(32, kg), _width(8, kg)
        self.fc = nn.Sequential(nn.Linear(noise_dim, 4 * 4 * 64), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(64, w1, 4, stride=1, padding=0), nn.BatchNorm2d(w1), nn.ReLU(),
            nn.ConvTranspose2d(w1, w2, 4, stride=2, padding=1), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.ConvTranspose2d(w2, w3, 4, stride=2, padding=1), nn.BatchNorm2d(w3), nn.ReLU(),
            _same_padding_k4(), nn.Conv2d(w3, channels, 4, stride=1),
            # Pixel intensities in [0, 1]: psi is the mean of the Gaussian likelihood.
            nn.Sigmoid(),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(noise).view(-1, 64, 4, 4))


class DCGAN28Discriminator(nn.Module):
    def __init__(self, size: str = "M", channels: int = 3) -> None:
        super().__init__()
        _, kd = SIZE_MULTIPLIERS[size]
        w1, w2, w3 = _width(8, kd), _width(16, kd), _width(32, kd)
        self.net = nn.Sequential(
            nn.Conv2d(channels, w1, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w1, w2, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            _same_padding_k4(), nn.Conv2d(w2, w3, 4, stride=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(w3 * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
