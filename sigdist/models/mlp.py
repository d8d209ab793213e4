"""The toy networks of Section 5.2: every generator is an MLP with two hidden layers of 100 ReLU
units; the GAN discriminator has one hidden layer of 100."""

from __future__ import annotations

import torch
from torch import nn


class MLPGenerator(nn.Module):
    """eps (noise_dim) -> psi (out_dim): the implicit mixing distribution q_phi(psi) of SIG."""

    def __init__(self, noise_dim: int, out_dim: int, hidden: int = 100) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.net = nn.Sequential(
            nn.Linear(noise_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(noise)


class MLPDiscriminator(nn.Module):
    """x (in_dim) -> one logit (or critic score for WGAN-GP)."""

    def __init__(self, in_dim: int, hidden: int = 100) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
