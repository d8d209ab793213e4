"""The paper's methods: SIG (Lemma 1), GAN and GAN-SI (Algorithm 1), WGAN-GP and WGAN-GP-SI.

An -SI method is its plain method with ``loss.lam`` > 0: the generator also descends
lam * L_K on the same K samples the adversarial loss scored (Algorithm 1, last line); the
config gives plain GAN and WGAN-GP lam 0."""

from __future__ import annotations

import functools
from typing import Any

import torch

from sigdist import losses
from sigdist.methods.base import Method, TrainingContext, adam
from sigdist.models import build_discriminator
from sigdist.schedules import sigma_at


class SIG(Method):
    """SIG: the generator alone descends L_K (Lemma 1) on N data points and K samples."""

    names = ("sig",)

    def step(self) -> dict[str, torch.Tensor]:
        ctx, cfg = self.ctx, self.ctx.cfg
        x = ctx.data_batch(cfg.train.batch_size)
        # sigma follows loss.sigma_start -> loss.sigma, a function of the step alone (resumable)
        sig_loss = functools.partial(losses.sig_loss, likelihood=cfg.loss.likelihood,
                                     sigma=sigma_at(cfg, ctx.step), per_dim=cfg.loss.per_dim)
        loss = ctx.per_member(sig_loss)(x, ctx.psi(ctx.noise(cfg.loss.k, ctx.rng)))
        ctx.opt_g.zero_grad(set_to_none=True)
        loss.sum().backward()  # a population's members: each gradient its own member's
        ctx.opt_g.step()
        return {"loss_sig": loss.detach()}


class Adversarial(Method):
    """A method with a discriminator (or critic) ``discriminator`` and its optimiser ``opt_d``,
    and the generator update every adversarial method shares."""

    def __init__(self, ctx: TrainingContext) -> None:
        super().__init__(ctx)
        layout = torch.channels_last if ctx.channels_last else torch.preserve_format
        self.discriminator = ctx.network(
            lambda: build_discriminator(ctx.cfg, ctx.data_shape)).to(memory_format=layout)
        self.opt_d = adam(ctx, self.discriminator.parameters(), ctx.cfg.train.lr_d)
        self.networks["discriminator"] = self.discriminator

    def d(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator in training (run.bf16: under autocast; its output in fp32)."""
        with self.ctx.autocast():
            return self.discriminator(x).float()

    def optimisers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        return [(self.opt_d, self.ctx.cfg.train.lr_d)]

    def generator_update(self, x: torch.Tensor, fake: torch.Tensor,
                         adversarial: torch.Tensor) -> dict[str, torch.Tensor]:
        """Algorithm 1, last line: G descends adversarial loss + lam * L_K on the same K
        samples (lam 0: the adversarial loss alone, nothing computed for L_K)."""
        ctx, cfg = self.ctx, self.ctx.cfg.loss
        lam, loss_g = cfg.lam, adversarial
        if lam > 0:
            loss_g = ctx.per_member(functools.partial(
                losses.semi_implicit_generator_loss, lam=lam, likelihood=cfg.likelihood,
                sigma=sigma_at(ctx.cfg, ctx.step), per_dim=cfg.per_dim))(adversarial, x, fake)
        ctx.opt_g.zero_grad(set_to_none=True)
        loss_g.sum().backward()
        ctx.opt_g.step()
        out = {"loss_g_adv": adversarial.detach(), "loss_g": loss_g.detach()}
        if lam > 0:  # the SIG term itself, for the curves
            out["loss_sig"] = (out["loss_g"] - out["loss_g_adv"]) / lam
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(),
                "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_d.load_state_dict(state["opt_d"])


class GAN(Adversarial):
    """GAN and GAN-SI (Algorithm 1): sample x_1..N and z_1..K, set psi_k = G(z_k), update D,
    then update G."""

    names = ("gan", "gan_si")

    def step(self) -> dict[str, torch.Tensor]:
        ctx, cfg = self.ctx, self.ctx.cfg
        x = ctx.data_batch(cfg.train.batch_size)
        fake = ctx.g(ctx.noise(cfg.loss.k, ctx.rng))
        loss_d = ctx.per_member(losses.gan_discriminator_loss)(self.d(x), self.d(fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.sum().backward()
        self.opt_d.step()
        adversarial = ctx.per_member(losses.gan_generator_loss)(self.d(fake))
        return {"loss_d": loss_d.detach(), **self.generator_update(x, fake, adversarial)}


class WGANGP(Adversarial):
    """WGAN-GP and WGAN-GP-SI (Gulrajani et al.): ``train.critic_steps`` critic updates with
    the gradient penalty, then one generator update."""

    names = ("wgan_gp", "wgan_gp_si")

    def step(self) -> dict[str, torch.Tensor]:
        ctx, cfg = self.ctx, self.ctx.cfg
        for _ in range(cfg.train.critic_steps):
            x = ctx.data_batch(cfg.train.batch_size)
            with torch.no_grad():
                fake = ctx.g(ctx.noise(cfg.loss.k, ctx.rng))
            # the penalty differentiates the critic itself: it takes the members as they are
            loss_d = losses.wgan_gp_critic_loss(self.d, x, fake, gp_weight=cfg.loss.gp_weight,
                                                generator=ctx.rng)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.sum().backward()
            self.opt_d.step()
        x = ctx.data_batch(cfg.train.batch_size)
        fake = ctx.g(ctx.noise(cfg.loss.k, ctx.rng))
        adversarial = ctx.per_member(losses.wgan_generator_loss)(self.d(fake))
        return {"loss_d": loss_d.detach(), **self.generator_update(x, fake, adversarial)}


__all__ = ["GAN", "SIG", "WGANGP", "Adversarial"]
