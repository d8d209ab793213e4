"""The baselines of Table 1 (Section 5.2): VAE, VEEGAN and Unrolled GAN, each a method with the same
2 x 100 ReLU MLP generator as SIG and GAN.

Section 5.2 fixes the networks: the generator of every method is the two-hidden-layer MLP of
100 ReLU units; the VAE encoder and the VEEGAN reconstructor are two-hidden-layer MLPs of 100;
a discriminator has one hidden layer of 100. What the paper leaves open is documented where it
is chosen below. Every method shares the run's optimiser settings (Adam, ``train.lr`` for
the generator and the encoder / reconstructor, ``train.lr_d`` for a discriminator, the same
learning-rate schedule) and draws all its randomness from the run's generator ``rng``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sigdist import losses
from sigdist.methods.base import Method, TrainingContext, adam
from sigdist.methods.paper import GAN


def mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    """Two hidden layers of ``hidden`` ReLU units (Section 5.2's encoders)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, out_dim))


class Baseline(Method):
    """A baseline's own networks (and parameters) beyond the generator, trained by one more
    Adam at ``train.lr``, checkpointed together under ``baseline``."""

    def __init__(self, ctx: TrainingContext, parts: dict[str, nn.Module | nn.Parameter]) -> None:
        super().__init__(ctx)
        self.parts = parts
        self.networks.update({k: v for k, v in parts.items() if isinstance(v, nn.Module)})
        params = [p for part in parts.values()
                  for p in ([part] if isinstance(part, nn.Parameter) else part.parameters())]
        self.optimiser = adam(ctx, params, ctx.cfg.train.lr)

    def optimisers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        return [(self.optimiser, self.ctx.cfg.train.lr)]

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": {
            "networks": {name: (part.detach().clone() if isinstance(part, nn.Parameter)
                                else part.state_dict()) for name, part in self.parts.items()},
            "optimiser": self.optimiser.state_dict()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = state["baseline"]
        for name, part in self.parts.items():
            if isinstance(part, nn.Parameter):
                with torch.no_grad():
                    part.copy_(state["networks"][name])
            else:
                part.load_state_dict(state["networks"][name])
        self.optimiser.load_state_dict(state["optimiser"])


class VAE(Baseline):
    """Kingma & Welling's VAE: encoder q(z | x) = N(mu(x), diag exp(logvar(x))) (two hidden
    layers of 100), decoder p(x | z) = N(G(z), diag sigma_x^2) with G the shared generator.

    Choices the paper leaves open: the latent is the generator's noise (10-d, prior N(0, I));
    the decoder's per-coordinate log sigma_x is one learned parameter vector (started at 0);
    generated points are decoder means G(z), z ~ N(0, I), as SIG reports psi = T(eps).
    The loss is the negative ELBO per data point, in nats."""

    names = ("vae",)

    def __init__(self, ctx: TrainingContext) -> None:
        dim, hidden, device = ctx.data_shape[0], ctx.cfg.model.hidden, ctx.device
        super().__init__(ctx, {
            "encoder": mlp(dim, 2 * ctx.noise_dim, hidden).to(device),
            "log_sigma_x": nn.Parameter(torch.zeros(dim, device=device))})

    def step(self) -> dict[str, torch.Tensor]:
        t = self.ctx
        x = t.data_batch(t.cfg.train.batch_size)
        mu, logvar = self.parts["encoder"](x).chunk(2, dim=1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=t.rng,
                                                    device=t.device)
        log_sigma = self.parts["log_sigma_x"]
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

    names = ("veegan",)

    def __init__(self, ctx: TrainingContext) -> None:
        dim, hidden, device = ctx.data_shape[0], ctx.cfg.model.hidden, ctx.device
        self.pair_discriminator = mlp(ctx.noise_dim + dim, 1, hidden).to(device)
        self.reconstructor = mlp(dim, ctx.noise_dim, hidden).to(device)
        super().__init__(ctx, {"reconstructor": self.reconstructor})
        # saved with the baseline's parts, trained by an optimiser of its own
        self.parts["pair_discriminator"] = self.networks["pair_discriminator"] = \
            self.pair_discriminator
        self.optimiser_d = adam(ctx, self.pair_discriminator.parameters(), ctx.cfg.train.lr_d)

    def optimisers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        return [*super().optimisers(), (self.optimiser_d, self.ctx.cfg.train.lr_d)]

    def step(self) -> dict[str, torch.Tensor]:
        t, cfg = self.ctx, self.ctx.cfg
        pair_d = self.pair_discriminator
        x = t.data_batch(cfg.train.batch_size)
        z = t.noise(cfg.loss.k, t.rng)
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
        state = super().state_dict()
        state["baseline"]["optimiser_d"] = self.optimiser_d.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimiser_d.load_state_dict(state["baseline"]["optimiser_d"])


class UnrolledGAN(GAN):
    """Unrolled GAN (Metz et al. 2017): the discriminator takes its ordinary step, then the
    generator's loss is scored by a copy of it advanced ``train.unroll_steps`` further
    optimiser steps, the generator differentiating through those steps (the copy's parameters
    are a function of the generator's samples, via torch.func.functional_call and
    autograd's create_graph: no hand-written second derivatives).

    Choices: the unrolled steps are Adam steps continuing the discriminator's own Adam state
    (Metz et al. unroll the optimiser they train with); every unrolled step reuses the step's
    data batch and samples, so with 0 unrolled steps this is the plain GAN step exactly. The
    generator loss is the non-saturating one of the other GAN methods."""

    names = ("unrolled_gan",)

    def step(self) -> dict[str, torch.Tensor]:
        t, disc = self.ctx, self.discriminator
        x = t.data_batch(t.cfg.train.batch_size)
        fake = t.generator(t.noise(t.cfg.loss.k, t.rng))
        loss_d = losses.gan_discriminator_loss(disc(x), disc(fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        params = self.unrolled_parameters(x, fake, t.cfg.train.unroll_steps)
        adversarial = losses.gan_generator_loss(functional_call(disc, params, (fake,)))
        return {"loss_d": loss_d.detach(), **self.generator_update(x, fake, adversarial)}

    def unrolled_parameters(self, x: torch.Tensor, fake: torch.Tensor, steps: int
                            ) -> dict[str, torch.Tensor]:
        """The discriminator's parameters after ``steps`` more Adam steps on (x, fake), as
        differentiable functions of ``fake``."""
        disc, opt_d = self.discriminator, self.opt_d
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


__all__ = ["VAE", "VEEGAN", "Baseline", "UnrolledGAN", "mlp"]
