"""Losses of the semi-implicit generative model (SIG) and of GAN-SI / WGAN-GP-SI.

Yin & Zhou, "Semi-Implicit Generative Model" (arXiv 1905.12659); formulas in
shared/paper/NOTES.md. ``sig_loss`` is the Monte Carlo estimate of L_K (Lemma 1); the GAN
losses and ``semi_implicit_generator_loss`` follow Section 3 / Algorithm 1.
"""

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from sigdist.config import LIKELIHOODS

# Largest N x k x D block the negative-binomial lgamma(x + r) term materialises at once.
_NEGBIN_BLOCK_ELEMENTS = 2**24


def data_dim(x: torch.Tensor) -> int:
    """Number of dimensions of one data point: prod(x.shape[1:])."""
    return math.prod(x.shape[1:])


def sig_loss(
    x: torch.Tensor,
    psi: torch.Tensor,
    *,
    likelihood: str = "gaussian",
    sigma: float = 1.0,
    per_dim: bool = False,
) -> torch.Tensor:
    """SIG loss L_K of Lemma 1: -(1/N) sum_i log((1/K) sum_k p(x_i | psi_k)), in nats.

    x: data batch (N, ...). psi: K generated parameters, (K, ...) like x for "gaussian" (the
    mean; p = N(x; psi, sigma^2 I)) and "poisson" (log rate), (K, ..., 2) for "negbin" (log r,
    logit p; pmf Gamma(x+r)/(x! Gamma(r)) p^x (1-p)^r). Total over the D data dimensions, or
    divided by D when ``per_dim``. Extra memory O(N*K) (negbin: N x k x D blocks), never N*K*D.
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    expected_psi_tail = x.shape[1:] + ((2,) if likelihood == "negbin" else ())
    if x.dim() < 1 or psi.shape[1:] != expected_psi_tail:
        raise ValueError(
            f"{likelihood} likelihood needs x of shape (N, ...) and psi of shape "
            f"(K, {', '.join(map(str, expected_psi_tail))}); got x {tuple(x.shape)} "
            f"and psi {tuple(psi.shape)}"
        )
    x_flat = x.reshape(x.shape[0], -1)
    if likelihood == "gaussian":
        log_p = _gaussian_log_likelihood(x_flat, psi.reshape(psi.shape[0], -1), sigma)
    elif likelihood == "poisson":
        log_p = _poisson_log_likelihood(x_flat, psi.reshape(psi.shape[0], -1))
    else:
        log_p = _negbin_log_likelihood(x_flat, psi.reshape(psi.shape[0], -1, 2))
    # Shift by the detached row max: at |log p| ~ 1e10 float32 logsumexp rounds log K away and
    # its backward weights exp(log_p - result) would sum to K, not 1. (inf rows: no shift.)
    row_max = log_p.detach().amax(dim=1, keepdim=True).nan_to_num(posinf=0.0, neginf=0.0)
    # Terms more than e^-80 below the row's largest change nothing in float32 but, left as they
    # are, send exp (forward and backward) down its slow denormal path: several times slower.
    shifted = (log_p - row_max).clamp_min(-80.0)
    log_mean_p = torch.logsumexp(shifted, dim=1) + row_max.squeeze(1)
    loss = -(log_mean_p - math.log(log_p.shape[1])).mean()
    return loss / data_dim(x) if per_dim else loss


def _gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, K) matrix of log N(x_i; mean_k, sigma^2 I) from flattened (N, D) and (K, D)."""
    # Distances are shift-invariant; centring on the data mean keeps the norms small, which
    # limits float32 cancellation in ||x||^2 + ||m||^2 - 2 x.m.
    centre = x.mean(dim=0, keepdim=True).detach()
    x_c, mean_c = x - centre, mean - centre
    # m * m, not m.square(): its backward is two plain products, ~10% faster than pow's here.
    norms = (x_c * x_c).sum(1, keepdim=True) + (mean_c * mean_c).sum(1)
    sq_dist = torch.addmm(norms, x_c, mean_c.T, alpha=-2.0).clamp_min(0.0)
    return -sq_dist / (2.0 * sigma**2) - 0.5 * x.shape[1] * math.log(2.0 * math.pi * sigma**2)


def _poisson_log_likelihood(x: torch.Tensor, log_rate: torch.Tensor) -> torch.Tensor:
    """(N, K) matrix of sum_d log Poisson(x_id; exp(log_rate_kd))."""
    return x @ log_rate.T - log_rate.exp().sum(1) - torch.lgamma(x + 1.0).sum(1, keepdim=True)


def _negbin_log_likelihood(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """(N, K) matrix of sum_d log NB(x_id; r_kd, p_kd); params[..., :] = (log r, logit p)."""
    log_r, logit_p = params.unbind(-1)
    r = log_r.exp()
    # log p = logsigmoid(logit), log(1 - p) = logsigmoid(-logit): stable for any logit.
    factorised = (
        x @ F.logsigmoid(logit_p).T
        + (r * F.logsigmoid(-logit_p) - torch.lgamma(r)).sum(1)
        - torch.lgamma(x + 1.0).sum(1, keepdim=True)
    )
    return factorised + _PairwiseLgammaSum.apply(x, r)


class _PairwiseLgammaSum(torch.autograd.Function):
    """out[i, k] = sum_d lgamma(x[i, d] + r[k, d]) over blocks of k rows of r; the hand-written
    (digamma) backward saves only x and r, where autograd would keep all N x K x D values."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, r)
        out = x.new_empty(x.shape[0], r.shape[0])
        for ks in _k_blocks(x, r):
            out[:, ks] = torch.lgamma(x[:, None, :] + r[None, ks, :]).sum(-1)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, r = ctx.saved_tensors
        grad_x, grad_r = torch.zeros_like(x), torch.zeros_like(r)
        for ks in _k_blocks(x, r):
            weighted = grad_out[:, ks, None] * torch.digamma(x[:, None, :] + r[None, ks, :])
            grad_r[ks] = weighted.sum(0)
            if ctx.needs_input_grad[0]:  # data counts rarely need a gradient
                grad_x += weighted.sum(1)
        return grad_x, grad_r


def _k_blocks(x: torch.Tensor, r: torch.Tensor) -> list[slice]:
    block = max(1, _NEGBIN_BLOCK_ELEMENTS // max(1, x.numel()))
    return [slice(start, start + block) for start in range(0, r.shape[0], block)]


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """GAN discriminator loss on logits (Algorithm 1): -mean log D(x) - mean log(1 - D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def gan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN generator loss on logits (Algorithm 1): -mean log D(G(z))."""
    return F.softplus(-fake_logits).mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """WGAN-GP gradient penalty mean((||grad critic(x_hat)||_2 - 1)^2).

    x_hat = eps real + (1 - eps) fake, eps ~ U(0, 1) per sample from ``generator``; the graph
    is kept (create_graph) so the penalty trains the critic. Algorithm 1 draws N data and K
    generated samples: when N != K the first min(N, K) rows of each are paired, which are as
    independent as any other pairing because every row is an independent draw.

    A seed population's critic: ``real`` (P, N, ...), ``fake`` (P, K, ...) and one generator
    per member; member i's eps come from generator i, and the result is the P penalties.
    """
    members = isinstance(generator, list | tuple)
    sample_dim = 1 if members else 0
    if real.shape[sample_dim + 1:] != fake.shape[sample_dim + 1:]:
        shapes = f"{tuple(real.shape[1:])} and {tuple(fake.shape[1:])}"
        raise ValueError(f"real and fake samples must have the same shape, got {shapes}")
    pairs = min(real.shape[sample_dim], fake.shape[sample_dim])
    real, fake = real.narrow(sample_dim, 0, pairs), fake.narrow(sample_dim, 0, pairs)
    eps_shape = (pairs,) + (1,) * (real.dim() - 1 - sample_dim)

    def uniform(stream: torch.Generator | None) -> torch.Tensor:
        return torch.rand(eps_shape, generator=stream, dtype=real.dtype, device=real.device)

    eps = torch.stack([uniform(stream) for stream in generator]) if members else uniform(
        generator)
    interpolated = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(interpolated).sum(), interpolated, create_graph=True)
    penalties = (grad.reshape(*grad.shape[:sample_dim + 1], -1).norm(dim=-1) - 1.0).square()
    return penalties.mean(dim=-1) if members else penalties.mean()


def wgan_gp_critic_loss(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    gp_weight: float = 10.0,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """WGAN-GP critic loss mean critic(fake) - mean critic(real) + gp_weight * penalty.

    ``fake`` is detached: this loss trains the critic only. With one generator per member (a
    seed population, see :func:`gradient_penalty`), the P members' losses.
    """
    fake = fake.detach()
    penalty = gradient_penalty(critic, real, fake, generator)
    if isinstance(generator, list | tuple):
        return critic(fake).mean(-1) - critic(real).mean(-1) + gp_weight * penalty
    return critic(fake).mean() - critic(real).mean() + gp_weight * penalty


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss: -mean critic(G(z))."""
    return -fake_scores.mean()


def semi_implicit_generator_loss(
    adversarial_loss: torch.Tensor,
    x: torch.Tensor,
    fake: torch.Tensor,
    *,
    lam: float,
    likelihood: str = "gaussian",
    sigma: float = 1.0,
    per_dim: bool = False,
) -> torch.Tensor:
    """GAN-SI / WGAN-GP-SI generator loss (Section 3, Algorithm 1): adversarial + lam * L_K.

    L_K is ``sig_loss(x, fake)`` on the same K generated samples that the adversarial loss
    scored. (Plain GAN and WGAN-GP do not call this: their ``loss.lam`` is 0.)
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")
    sig = sig_loss(x, fake, likelihood=likelihood, sigma=sigma, per_dim=per_dim)
    return adversarial_loss + lam * sig
