"""A 32 x 32 x 3 DCGAN pair for CIFAR-10 (Table 3), in the standard DCGAN layout of Radford et al.
with its widths multiplied by ``model.width_g`` / ``model.width_d`` (1: DCGAN's own widths)."""

from __future__ import annotations

import torch
from torch import nn

from sigdist.models.dcgan28 import scaled_width


class DCGAN32Generator(nn.Module):
    def __init__(self, width: float = 1.0, noise_dim: int = 128, base: int = 64) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        w1, w2, w3 = (scaled_width(b, width) for b in (4 * base, 2 * base, base))
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
    def __init__(self, width: float = 1.0, base: int = 64) -> None:
        super().__init__()
        w1, w2, w3 = (scaled_width(b, width) for b in (base, 2 * base, 4 * base))
        self.net = nn.Sequential(
            nn.Conv2d(3, w1, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w1, w2, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w2, w3, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(w3 * 4 * 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
