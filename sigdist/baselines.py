"""The baselines of Table 1 (Section 5.2): VAE, VEEGAN and Unrolled GAN, each one training step
of the :class:`sigdist.train.Trainer` with the same 2 x 100 ReLU MLP generator as SIG and GAN.

Section 5.2 fixes the networks: the generator of every method is the two-hidden-layer MLP of
100 ReLU units; the VAE encoder and the VEEGAN reconstructor are two-hidden-layer MLPs of 100;
a discriminator has one hidden layer of 100. What the paper leaves open is documented where it
is chosen below. Every method shares the trainer's optimiser settings (Adam, ``train.lr`` for
the generator and the encoder / reconstructor, ``train.lr_d`` for a discriminator, the same
learning-rate schedule) and draws all its randomness from the trainer's generator ``rng``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sigdist import losses
from sigdist.schedules import lr_factor

if TYPE_CHECKING:
    from sigdist.train import Trainer

BASELINE_METHODS = ("vae", "veegan", "unrolled_gan")  # their data: config.METHOD_DATASETS


def mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    """Two hidden layers of ``hidden`` ReLU units (Section 5.2's encoders)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, out_dim))


class Baseline:
    """A method's own networks and optimiser beyond the trainer's generator (and, for Unrolled
    GAN, its discriminator); ``step`` is one training step of the method."""

    def __init__(self, trainer: Trainer, networks: dict[str, nn.Module | nn.Parameter]) -> None:
        self.trainer = trainer
        self.networks = networks
        params = [p for net in networks.values()
                  for p in ([net] if isinstance(net, nn.Parameter) else net.parameters())]
        adam = dict(betas=(trainer.cfg.train.beta1, trainer.cfg.train.beta2))
        self.optimiser = torch.optim.Adam(params, lr=trainer.cfg.train.lr, **adam) if params \
            else None

    def step(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _set_lr(self) -> None:
        if self.optimiser is not None:  # the trainer's schedule, for the extra optimiser too
            for group in self.optimiser.param_groups:
                group["lr"] = self.trainer.cfg.train.lr * lr_factor(self.trainer.cfg,
                                                                    self.trainer.step)

    def state_dict(self) -> dict[str, Any]:
        return {"networks": {name: (net.detach().clone() if isinstance(net, nn.Parameter)
                                    else net.state_dict()) for name, net in self.networks.items()},
                "optimiser": self.optimiser.state_dict() if self.optimiser else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.networks.items():
            if isinstance(net, nn.Parameter):
                with torch.no_grad():
                    net.copy_(state["networks"][name])
            else:
                net.load_state_dict(state["networks"][name])
        if self.optimiser is not None:
            self.optimiser.load_state_dict(state["optimiser"])


class VAE(Baseline):
    """Kingma & Welling's VAE: encoder q(z | x) = N(mu(x), diag exp(logvar(x))) (two hidden
    layers of 100), decoder p(x | z) = N(G(z), diag sigma_x^2) with G the shared generator.

    Choices the paper leaves open: the latent is the generator's noise (10-d, prior N(0, I));
    the decoder's per-coordinate log sigma_x is one learned parameter vector (started at 0);
    generated points are decoder means G(z), z ~ N(0, I), as SIG reports psi = T(eps).
    The loss is the negative ELBO per data point, in nats."""

    def __init__(self, trainer: Trainer) -> None:
        dim, hidden = trainer.data_shape[0], trainer.cfg.model.hidden
        device = trainer.device
        super().__init__(trainer, {
            "encoder": mlp(dim, 2 * trainer.noise_dim, hidden).to(device),
            "log_sigma_x": nn.Parameter(torch.zeros(dim, device=device))})

    def step(self) -> dict[str, torch.Tensor]:
        t = self.trainer
        self._set_lr()
        x = t._data_batch(t.cfg.train.batch_size)
        mu, logvar = self.networks["encoder"](x).chunk(2, dim=1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=t.rng,
                                                    device=t.device)
        log_sigma = self.networks["log_sigma_x"]
        reconstruction = (0.5 * ((x - t.generator(z)) / log_sigma.exp()) ** 2 + log_sigma
                          + 0.5 * math.log(2 * math.pi)).sum(1)
        kl = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(1)
        loss = (reconstruction + kl).mean()
        t.opt_g.zero_grad(set_to_none=True)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        t.opt_g.step()
        self.optimiser.step()
        return {"loss_elbo": loss.detach(), "loss_kl_z": kl.mean().detach()}


class VEEGAN(Baseline):
    """VEEGAN (Srivastava et al. 2017, Algorithm 1): a reconstructor F maps data to noise
    (two hidden layers of 100), a discriminator D(z, x) on concatenated pairs tells generator
    pairs (z, G(z)) from reconstructor pairs (z ~ F(x), x); G and F descend
    mean D(z, G(z)) + mean d(z, F(G(z))) (D's logit estimates the log density ratio).

    Choice: D has two hidden layers of 100, like the encoders (Section 5.2 sizes only the
    GAN's discriminator on x): with one, on the 12-d pairs, it never told the modes apart and
    the samples stayed spread over the plane (docs/results/gmm25.md, the baselines).

    Choice: F(x) is N(f(x), I), so that Algorithm 1's d = squared l2 is its negative
    log-likelihood, (1/2) ||z - f(x)||^2 up to a constant, and its draw z ~ F(x) for the data
    pairs spans the noise space. A deterministic F (z = f(x)) cannot work here: f of 2-d points
    lies on a 2-d sheet of the 10-d noise space, which D tells from N(0, I) at once (measured:
    D's loss 0.08, 0 of 25 modes)."""

    def __init__(self, trainer: Trainer) -> None:
        dim, hidden = trainer.data_shape[0], trainer.cfg.model.hidden
        device = trainer.device
        self.pair_discriminator = mlp(trainer.noise_dim + dim, 1, hidden).to(device)
        self.reconstructor = mlp(dim, trainer.noise_dim, hidden).to(device)
        super().__init__(trainer, {"reconstructor": self.reconstructor})
        self.networks["pair_discriminator"] = self.pair_discriminator  # saved, own optimiser
        adam = dict(betas=(trainer.cfg.train.beta1, trainer.cfg.train.beta2))
        self.optimiser_d = torch.optim.Adam(self.pair_discriminator.parameters(),
                                            lr=trainer.cfg.train.lr_d, **adam)

    def step(self) -> dict[str, torch.Tensor]:
        t, cfg = self.trainer, self.trainer.cfg
        self._set_lr()
        for group in self.optimiser_d.param_groups:
            group["lr"] = cfg.train.lr_d * lr_factor(cfg, t.step)
        pair_d = self.pair_discriminator
        x = t._data_batch(cfg.train.batch_size)
        z = t._noise(cfg.loss.k, t.rng)
        fake = t.generator(z)
        with torch.no_grad():
            z_data = self.reconstructor(x)
            z_data = z_data + torch.randn(z_data.shape, generator=t.rng, device=t.device)
        generated_pairs = pair_d(torch.cat([z, fake.detach()], 1)).squeeze(1)
        data_pairs = pair_d(torch.cat([z_data, x], 1)).squeeze(1)
        # D: log sigma(D(z, G(z))) + log(1 - sigma(D(F(x), x))), maximised
        loss_d = F.softplus(-generated_pairs).mean() + F.softplus(data_pairs).mean()
        self.optimiser_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.optimiser_d.step()
        adversarial = pair_d(torch.cat([z, fake], 1)).squeeze(1).mean()
        reconstruction = 0.5 * ((z - self.reconstructor(fake)) ** 2).sum(1).mean()
        loss = adversarial + reconstruction
        t.opt_g.zero_grad(set_to_none=True)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        t.opt_g.step()
        self.optimiser.step()
        return {"loss_d": loss_d.detach(), "loss_g_adv": adversarial.detach(),
                "loss_reconstruction": reconstruction.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "optimiser_d": self.optimiser_d.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimiser_d.load_state_dict(state["optimiser_d"])


class UnrolledGAN(Baseline):
    """Unrolled GAN (Metz et al. 2017): the discriminator takes its ordinary step, then the
    generator's loss is scored by a copy of it advanced ``train.unroll_steps`` further
    optimiser steps, the generator differentiating through those steps (the copy's parameters
    are a function of the generator's samples, via torch.func.functional_call and
    autograd's create_graph: no hand-written second derivatives).

    Choices: the unrolled steps are Adam steps continuing the discriminator's own Adam state
    (Metz et al. unroll the optimiser they train with); every unrolled step reuses the step's
    data batch and samples, so with 0 unrolled steps this is the plain GAN step exactly. The
    generator loss is the non-saturating one of the other GAN methods."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__(trainer, {})

    def step(self) -> dict[str, torch.Tensor]:
        t = self.trainer
        disc = t.discriminator
        x = t._data_batch(t.cfg.train.batch_size)
        fake = t.generator(t._noise(t.cfg.loss.k, t.rng))
        loss_d = losses.gan_discriminator_loss(disc(x), disc(fake.detach()))
        t.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        t.opt_d.step()
        params = self.unrolled_parameters(x, fake, t.cfg.train.unroll_steps)
        adversarial = losses.gan_generator_loss(functional_call(disc, params, (fake,)))
        return {"loss_d": loss_d.detach(), **t._generator_update(x, fake, adversarial)}

    def unrolled_parameters(self, x: torch.Tensor, fake: torch.Tensor, steps: int
                            ) -> dict[str, torch.Tensor]:
        """The discriminator's parameters after ``steps`` more Adam steps on (x, fake), as
        differentiable functions of ``fake``."""
        disc, opt_d = self.trainer.discriminator, self.trainer.opt_d
        params = {name: p.detach().requires_grad_() for name, p in disc.named_parameters()}
        if steps == 0:
            return params
        group = opt_d.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        states = [opt_d.state[p] for p in disc.parameters()]
        first = [s["exp_avg"] for s in states]
        second = [s["exp_avg_sq"] for s in states]
        count = float(states[0]["step"])
        for _ in range(steps):
            loss = losses.gan_discriminator_loss(functional_call(disc, params, (x,)),
                                                 functional_call(disc, params, (fake,)))
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            count += 1
            first = [beta1 * m + (1 - beta1) * g for m, g in zip(first, grads, strict=True)]
            second = [beta2 * v + (1 - beta2) * g * g for v, g in zip(second, grads, strict=True)]
            params = {
                name: p - lr * (m / (1 - beta1**count))
                # clamped below at eps^2: sqrt'(0) is infinite, and a dead ReLU unit's zero
                # gradient would turn the generator's gradient into NaN
                / ((v / (1 - beta2**count)).clamp_min(eps * eps).sqrt() + eps)
                for (name, p), m, v in zip(params.items(), first, second, strict=True)}
        return params


def build_baseline(trainer: Trainer) -> Baseline | None:
    """The method's :class:`Baseline`, or None for SIG and the GAN family."""
    method = trainer.cfg.method
    if method not in BASELINE_METHODS:
        return None
    return {"vae": VAE, "veegan": VEEGAN, "unrolled_gan": UnrolledGAN}[method](trainer)
