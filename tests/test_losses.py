"""Numerical tests of sigdist.losses: the SIG loss L_K (Lemma 1) and the GAN-SI losses."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import NegativeBinomial, Normal, Poisson

from sigdist import losses
from sigdist.losses import (
    gan_discriminator_loss,
    gan_generator_loss,
    gradient_penalty,
    semi_implicit_generator_loss,
    sig_loss,
    wgan_generator_loss,
    wgan_gp_critic_loss,
)

LIKELIHOODS = ["gaussian", "poisson", "negbin"]


def brute_force_sig_loss(
    x: torch.Tensor, psi: torch.Tensor, likelihood: str, sigma: float = 1.0
) -> torch.Tensor:
    """L_K in float64 from an explicit N x K x D tensor of torch.distributions log-probs."""
    n, k = x.shape[0], psi.shape[0]
    x64 = x.double().reshape(n, 1, -1)
    psi64 = psi.double()
    if likelihood == "gaussian":
        dist = Normal(psi64.reshape(1, k, -1), sigma)
    elif likelihood == "poisson":
        dist = Poisson(psi64.reshape(1, k, -1).exp(), validate_args=False)
    else:
        # torch's NB(total_count=r, logits=l) has pmf Gamma(x+r)/(x! Gamma(r)) p^x (1-p)^r with
        # p = sigmoid(l) and mean r p / (1 - p): the same convention as sig_loss.
        params = psi64.reshape(1, k, -1, 2)
        dist = NegativeBinomial(params[..., 0].exp(), logits=params[..., 1], validate_args=False)
    log_p = dist.log_prob(x64).sum(-1)
    return -(torch.logsumexp(log_p, dim=1) - math.log(k)).mean()


def make_batch(
    likelihood: str, n: int, k: int, shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Data in [0, 1] (image-like) or small counts, and K plausible parameter sets."""
    gen = torch.Generator().manual_seed(seed)
    image_like = len(shape) == 3
    if likelihood == "gaussian" or image_like:
        x = torch.rand((n, *shape), generator=gen, dtype=dtype)
    else:
        x = torch.randint(0, 8, (n, *shape), generator=gen).to(dtype)
    if likelihood == "gaussian":
        psi = torch.rand((k, *shape), generator=gen, dtype=dtype)
    elif likelihood == "poisson":
        psi = 0.5 * torch.randn((k, *shape), generator=gen, dtype=dtype) + 0.5
    else:
        psi = 0.5 * torch.randn((k, *shape, 2), generator=gen, dtype=dtype)
    return x, psi


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, k, shape", [(7, 5, (3,)), (6, 4, (3, 28, 28))])
def test_sig_loss_matches_brute_force(likelihood, dtype, n, k, shape):
    x, psi = make_batch(likelihood, n, k, shape, dtype)
    psi.requires_grad_(True)
    sigma = 0.3
    loss = sig_loss(x, psi, likelihood=likelihood, sigma=sigma)
    (grad,) = torch.autograd.grad(loss, psi)
    psi64 = psi.detach().double().requires_grad_(True)
    reference = brute_force_sig_loss(x, psi64, likelihood, sigma)
    (reference_grad,) = torch.autograd.grad(reference, psi64)

    assert loss.dtype == dtype and loss.shape == ()
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(loss.double(), reference, rtol=rtol, atol=0.0)
    grad_atol = 1e-4 * reference_grad.abs().max().item() if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(grad.double(), reference_grad, rtol=1e-3, atol=grad_atol)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_per_dim_divides_by_data_dimension(likelihood):
    x, psi = make_batch(likelihood, 5, 3, (3, 4), torch.float64)
    total = sig_loss(x, psi, likelihood=likelihood)
    per_dim = sig_loss(x, psi, likelihood=likelihood, per_dim=True)
    assert losses.data_dim(x) == 12
    torch.testing.assert_close(per_dim, total / 12)


def test_k_equal_one_is_point_estimate_negative_log_likelihood():
    x, psi = make_batch("gaussian", 9, 1, (4,), torch.float64)
    expected = -Normal(psi, 0.5).log_prob(x).sum(1).mean()
    torch.testing.assert_close(sig_loss(x, psi, sigma=0.5), expected)


def test_negbin_blocks_over_k_match_single_block(monkeypatch):
    x, psi = make_batch("negbin", 6, 7, (5,), torch.float64)
    psi.requires_grad_(True)
    one_block = sig_loss(x, psi, likelihood="negbin")
    (one_block_grad,) = torch.autograd.grad(one_block, psi)
    # Blocks of two rows of K (the last one shorter) instead of all seven at once.
    monkeypatch.setattr(losses, "_NEGBIN_BLOCK_ELEMENTS", 2 * x.numel())
    assert len(losses._k_blocks(x.reshape(6, -1), psi[..., 0].reshape(7, -1))) == 4
    blocked = sig_loss(x, psi, likelihood="negbin")
    (blocked_grad,) = torch.autograd.grad(blocked, psi)
    torch.testing.assert_close(blocked, one_block)
    torch.testing.assert_close(blocked_grad, one_block_grad)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_gradcheck_in_float64(likelihood):
    x, psi = make_batch(likelihood, 4, 3, (2,), torch.float64)
    x = x + 0.25  # also differentiate w.r.t. x (non-integer counts are fine for lgamma)
    x.requires_grad_(True)
    psi.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda data, params: sig_loss(data, params, likelihood=likelihood, sigma=0.7), (x, psi)
    )


def test_expected_loss_decreases_in_k_and_bounds_cross_entropy():
    # x ~ N(0, s^2), psi ~ N(0, t^2), p(x | psi) = N(psi, sigma^2): p_phi = N(0, t^2 + sigma^2).
    s, t, sigma = 1.0, 1.0, 1.0
    variance = t**2 + sigma**2
    cross_entropy = 0.5 * math.log(2 * math.pi * variance) + s**2 / (2 * variance)
    ks, repeats, n = [1, 4, 16, 64], 1500, 256
    gen = torch.Generator().manual_seed(1)
    loss_by_k = torch.empty(repeats, len(ks), dtype=torch.float64)
    empirical_cross_entropy = torch.empty(repeats, dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny calls: thread start-up would dominate
    try:
        for repeat in range(repeats):
            x = s * torch.randn(n, 1, generator=gen, dtype=torch.float64)
            psi = t * torch.randn(max(ks), 1, generator=gen, dtype=torch.float64)
            # On a fixed batch E_psi[L_K] >= -mean_i log p_phi(x_i) exactly (Jensen, per x_i).
            empirical_cross_entropy[repeat] = -Normal(0.0, math.sqrt(variance)).log_prob(x).mean()
            for column, k in enumerate(ks):
                loss_by_k[repeat, column] = sig_loss(x, psi[:k], sigma=sigma)
    finally:
        torch.set_num_threads(threads)

    def mean_and_standard_error(samples: torch.Tensor) -> tuple[float, float]:
        return samples.mean().item(), samples.std().item() / math.sqrt(samples.numel())

    for column in range(len(ks) - 1):
        drop, drop_se = mean_and_standard_error(loss_by_k[:, column] - loss_by_k[:, column + 1])
        assert drop > 3 * drop_se, (ks[column], drop, drop_se)
    for column in range(len(ks)):
        gap, gap_se = mean_and_standard_error(loss_by_k[:, column] - empirical_cross_entropy)
        assert gap > 3 * gap_se, (ks[column], gap, gap_se)
    assert abs(empirical_cross_entropy.mean().item() - cross_entropy) < 5e-3
    largest_k_loss = loss_by_k[:, -1].mean().item()
    assert cross_entropy < largest_k_loss < 1.02 * cross_entropy
    assert loss_by_k[:, 0].mean().item() > 1.2 * cross_entropy  # K = 1 is far from the bound


def test_far_apart_points_give_finite_loss_and_gradients():
    x = torch.full((4, 3), 1e3)
    psi = torch.full((5, 3), -1e3, requires_grad=True)
    sigma = 0.01
    loss = sig_loss(x, psi, sigma=sigma)
    loss.backward()
    squared_distance = 3 * (2e3) ** 2
    expected = squared_distance / (2 * sigma**2) + 1.5 * math.log(2 * math.pi * sigma**2)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert torch.isfinite(psi.grad).all()
    # d/dpsi_k = (psi_k - x) / (K sigma^2): every one of the K samples shares the pull.
    torch.testing.assert_close(psi.grad, torch.full((5, 3), -2e3 / (5 * sigma**2)))


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_gradients_reach_generator_and_sgd_step_lowers_loss(likelihood):
    torch.manual_seed(0)
    data_shape = (6, 2) if likelihood == "negbin" else (6,)
    generator = nn.Linear(4, math.prod(data_shape))
    z = torch.randn(8, 4)
    x, _ = make_batch(likelihood, 16, 1, (6,), torch.float32)

    def loss_of_generator() -> torch.Tensor:
        psi = generator(z).reshape(8, *data_shape)
        return sig_loss(x, psi, likelihood=likelihood, sigma=0.5)

    loss = loss_of_generator()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    torch.optim.SGD(generator.parameters(), lr=1e-3).step()
    assert loss_of_generator().item() < loss.item()


def test_gan_losses_known_values():
    zeros = torch.zeros(5)
    assert gan_discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert gan_generator_loss(zeros).item() == pytest.approx(math.log(2))
    real = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    fake = torch.tensor([0.3, -2.0], dtype=torch.float64)
    expected_d = -real.sigmoid().log().mean() - (1 - fake.sigmoid()).log().mean()
    torch.testing.assert_close(gan_discriminator_loss(real, fake), expected_d)
    torch.testing.assert_close(gan_generator_loss(fake), -fake.sigmoid().log().mean())
    # Saturated logits stay finite (softplus, not log(sigmoid)).
    assert gan_discriminator_loss(torch.tensor([-200.0]), torch.tensor([200.0])).item() == 400.0
    assert wgan_generator_loss(torch.tensor([1.0, 2.0, 6.0])).item() == -3.0


def linear_critic(shape: tuple[int, ...], weight_norm: float) -> nn.Module:
    """critic(x) = w . x + b with ||w||_2 = weight_norm: its input gradient has that norm."""
    linear = nn.Linear(math.prod(shape), 1)
    with torch.no_grad():
        direction = torch.randn_like(linear.weight)
        linear.weight.copy_(weight_norm * direction / direction.norm())
    return nn.Sequential(nn.Flatten(), linear)


@pytest.mark.parametrize("weight_norm", [1.0, 0.5, 3.0])
def test_gradient_penalty_of_linear_critic(weight_norm):
    torch.manual_seed(0)
    critic = linear_critic((3, 4, 4), weight_norm)
    real, fake = torch.rand(6, 3, 4, 4), torch.rand(6, 3, 4, 4)
    penalty = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx((weight_norm - 1.0) ** 2, abs=1e-6)
    loss = wgan_gp_critic_loss(critic, real, fake, gp_weight=10.0)
    expected = critic(fake).mean() - critic(real).mean() + 10.0 * (weight_norm - 1.0) ** 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_gradient_penalty_trains_critic_only_and_is_reproducible():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fake = torch.randn(5, 3), torch.randn(5, 3, requires_grad=True)
    first = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    again = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    assert first.item() == again.item()
    wgan_gp_critic_loss(critic, real, fake).backward()
    # The output bias cancels in the Wasserstein term and is absent from the input gradient, so
    # only weights are checked; their penalty gradient exists only thanks to create_graph=True.
    weights = [critic[0].weight, critic[0].bias, critic[2].weight]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
    critic.zero_grad()
    gradient_penalty(critic, real, fake).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
    assert fake.grad is None
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        gradient_penalty(critic, real, fake[:, :2])


@pytest.mark.parametrize("n_real, n_fake", [(6, 4), (4, 6)])
def test_gradient_penalty_pairs_the_first_rows_when_batch_and_k_differ(n_real, n_fake):
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fake = torch.randn(n_real, 3), torch.randn(n_fake, 3)
    pairs = min(n_real, n_fake)
    unequal = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    paired = gradient_penalty(critic, real[:pairs], fake[:pairs],
                              generator=torch.Generator().manual_seed(1))
    assert unequal.item() == paired.item() > 0
    # the Wasserstein term still averages every sample of each side
    loss = wgan_gp_critic_loss(critic, real, fake, gp_weight=0.0)
    assert loss.item() == pytest.approx((critic(fake).mean() - critic(real).mean()).item())


def test_semi_implicit_generator_loss():
    x, fake = make_batch("gaussian", 8, 6, (5,), torch.float64)
    adversarial = gan_generator_loss(torch.randn(6, dtype=torch.float64))
    combined = semi_implicit_generator_loss(adversarial, x, fake, lam=0.5, sigma=0.2, per_dim=True)
    expected = adversarial + 0.5 * sig_loss(x, fake, sigma=0.2, per_dim=True)
    torch.testing.assert_close(combined, expected)
    counts, rates = make_batch("poisson", 8, 6, (5,), torch.float64)
    torch.testing.assert_close(
        semi_implicit_generator_loss(adversarial, counts, rates, lam=2.0, likelihood="poisson"),
        adversarial + 2.0 * sig_loss(counts, rates, likelihood="poisson"),
    )
    with pytest.raises(ValueError, match="-1"):
        semi_implicit_generator_loss(adversarial, x, fake, lam=-1.0)


def test_validation_errors_name_the_bad_value():
    x, psi = torch.zeros(4, 3), torch.zeros(5, 3)
    with pytest.raises(ValueError, match="'bernoulli'") as error:
        sig_loss(x, psi, likelihood="bernoulli")
    assert all(name in str(error.value) for name in LIKELIHOODS)
    for bad_sigma in (0.0, -1.5, float("nan")):
        with pytest.raises(ValueError, match=f"sigma.*{bad_sigma}"):
            sig_loss(x, psi, sigma=bad_sigma)
    with pytest.raises(ValueError, match=r"x \(4, 3\).*psi \(5, 2\)"):
        sig_loss(x, torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"\(K, 3, 2\).*psi \(5, 3\)"):
        sig_loss(x, psi, likelihood="negbin")
