"""The Table 1 baselines (VAE, VEEGAN, Unrolled GAN) as methods of the same Trainer: they learn
the grid, Unrolled GAN without unrolling is plain GAN, the unrolling reaches the generator, and
a baseline run resumes to the same continuation."""

import pytest
import torch

from sigdist.config import Config, ConfigError
from sigdist.metrics import mixture_metrics
from sigdist.train import Trainer

SMALL = {"train.steps": 6, "train.batch_size": 32, "loss.k": 32, "run.eval_every": 3,
         "run.eval_samples": 2000, "run.device": "cpu"}


def _cfg(**updates) -> Config:
    return Config().replace(**{**SMALL, **updates})


def _generator_params(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trainer.generator.parameters()])


def _discriminator_params(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trainer.method.discriminator.parameters()])


def _collapsed_metrics(trainer: Trainer) -> dict:
    """Every sample on one centre: 1 mode, KL log(25 / 0.989) = 3.23."""
    centre = trainer.data.centres[12]
    return mixture_metrics(centre.expand(10_000, 2), trainer.data.centres, trainer.data.std,
                           min_count=200)


# Short seeded runs that already resolve modes (10 to 15 s each on one core).
SHORT = {"vae": {"train.steps": 6000},
         "veegan": {"train.steps": 8000, "loss.k": 256},
         "unrolled_gan": {"train.steps": 1500, "train.unroll_steps": 2, "train.lr": 0.01,
                          "train.lr_d": 0.01, "train.lr_schedule": "constant", "loss.k": 256}}


@pytest.mark.slow  # thousands of steps each
@pytest.mark.parametrize("method", sorted(SHORT))
def test_each_baseline_learns_the_grid_better_than_a_collapsed_sampler(method):
    cfg = Config().replace(**{"method": method, "run.device": "cpu", "run.eval_samples": 10_000,
                              **SHORT[method], "run.eval_every": SHORT[method]["train.steps"]})
    trainer = Trainer(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: more threads only contend
    try:
        learned = trainer.fit()
    finally:
        torch.set_num_threads(threads)
    collapsed = _collapsed_metrics(trainer)
    assert collapsed["modes"] == 1 and collapsed["kl"] == pytest.approx(3.23, abs=0.01)
    assert learned["modes"] > collapsed["modes"]
    assert learned["kl"] < collapsed["kl"]


def test_unrolled_gan_without_unrolling_is_plain_gan_step_for_step():
    gan = Trainer(_cfg(method="gan"))
    unrolled = Trainer(_cfg(method="unrolled_gan", **{"train.unroll_steps": 0}))
    for _ in range(5):
        losses_gan, losses_unrolled = gan.train_step(), unrolled.train_step()
        gan.step += 1
        unrolled.step += 1
        assert torch.equal(_generator_params(gan), _generator_params(unrolled))
        assert torch.equal(_discriminator_params(gan), _discriminator_params(unrolled))
        assert torch.equal(losses_gan["loss_g"], losses_unrolled["loss_g"])


def test_unrolling_changes_the_generator_update_but_not_the_discriminator_step():
    """The discriminator takes the same real step; only the generator sees the unrolled one,
    and its gradient reaches it through the unrolled steps (not through a detached copy)."""
    gan = Trainer(_cfg(method="gan"))
    unrolled = Trainer(_cfg(method="unrolled_gan", **{"train.unroll_steps": 2}))
    for trainer in (gan, unrolled):
        trainer.train_step()
    assert torch.equal(_discriminator_params(gan), _discriminator_params(unrolled))
    assert not torch.allclose(_generator_params(gan), _generator_params(unrolled))
    # The unrolled parameters depend on the samples: d(params) / d(fake) is not zero.
    x = unrolled.data_batch(32)
    fake = unrolled.generator(unrolled.noise(32, unrolled.rng))
    params = unrolled.method.unrolled_parameters(x, fake, 2)
    (grad,) = torch.autograd.grad(sum(p.sum() for p in params.values()), fake)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()


@pytest.mark.parametrize("method", ["vae", "veegan", "unrolled_gan"])
def test_baseline_resumes_to_the_same_continuation(tmp_path, method):
    cfg = _cfg(method=method, **{"train.unroll_steps": 2})
    straight = Trainer(cfg)
    straight.fit()
    path = str(tmp_path / "checkpoint.pt")

    class Killed(Exception):
        pass

    def save_then_die(trainer, _metrics):
        trainer.save(path)
        raise Killed

    with pytest.raises(Killed):
        Trainer(cfg).fit(report=save_then_die)
    resumed = Trainer.from_checkpoint(path)
    resumed.fit()
    assert torch.equal(_generator_params(resumed), _generator_params(straight))
    assert torch.equal(resumed.generate(100), straight.generate(100))


@pytest.mark.parametrize("data", ["negbin", "mnist3", "cifar10"])
def test_baselines_refuse_data_they_have_no_networks_for(data):
    """In config validation, so a study refuses it before Ray starts."""
    with pytest.raises(ConfigError, match=f"method.*'vae'.*{data}.*allowed data.*gmm25"):
        Config().replace(**{"method": "vae", "data.name": data, "run.device": "cpu"})


def test_unroll_steps_is_validated():
    with pytest.raises(ConfigError, match="train.unroll_steps.*-1"):
        Config().replace(**{"train.unroll_steps": -1})
