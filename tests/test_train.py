"""The training loop: seeded, resumable to the same continuation, divergence stops with the step."""

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sigdist.config import Config, from_flat
from sigdist.train import DivergenceError, Trainer, load_checkpoint

SMALL = {"train.steps": 12, "train.batch_size": 32, "loss.k": 32, "run.eval_every": 6,
         "run.eval_samples": 2000, "run.device": "cpu"}


def _cfg(**updates) -> Config:
    return Config().replace(**{**SMALL, **updates})


def _params(trainer: Trainer) -> torch.Tensor:
    nets = [trainer.generator, *trainer.method.networks.values()]
    return torch.cat([p.detach().flatten() for net in nets for p in net.parameters()])


@pytest.mark.parametrize("method", ["sig", "gan", "gan_si", "wgan_gp", "wgan_gp_si"])
def test_resume_gives_the_same_continuation(tmp_path, method):
    cfg = _cfg(method=method, **{"train.critic_steps": 2})
    straight = Trainer(cfg)
    straight.fit()

    class Killed(Exception):
        pass

    path = str(tmp_path / "checkpoint.pt")

    def save_then_die(trainer, _metrics):  # the run is killed right after its first checkpoint
        trainer.save(path)
        raise Killed

    with pytest.raises(Killed):
        Trainer(cfg).fit(report=save_then_die)
    resumed = Trainer.from_checkpoint(path)
    assert resumed.step == 6
    resumed.fit()

    assert resumed.step == straight.step == 12
    assert torch.equal(_params(resumed), _params(straight))
    assert torch.equal(resumed.generate(100), straight.generate(100))


def test_same_seed_same_run_other_seed_other_run():
    a, b, c = Trainer(_cfg()), Trainer(_cfg()), Trainer(_cfg(seed=1))
    for t in (a, b, c):
        t.fit()
    assert torch.equal(_params(a), _params(b))
    assert not torch.equal(_params(a), _params(c))


def test_evaluating_does_not_change_training():
    often, rarely = Trainer(_cfg(**{"run.eval_every": 1})), Trainer(_cfg(**{"run.eval_every": 12}))
    often.fit()
    rarely.fit()
    assert torch.equal(_params(often), _params(rarely))


def test_reports_every_evaluation_with_metrics_and_losses():
    seen = []
    Trainer(_cfg(method="gan_si")).fit(report=lambda t, m: seen.append(dict(m)))
    assert [m["step"] for m in seen] == [6, 12]
    for m in seen:
        expected = {"modes", "high_quality", "kl", "loss_d", "loss_g", "loss_g_adv", "loss_sig"}
        assert expected <= set(m)
        assert 0 <= m["modes"] <= 25 and 0.0 <= m["high_quality"] <= 1.0 and m["kl"] >= 0.0


def test_gan_si_differs_from_gan_only_in_the_generator_loss():
    """Algorithm 1: same data, same z, same D update; G also descends lam * L_K."""
    gan = Trainer(_cfg(method="gan", **{"loss.lam": 2.0}))
    gan_si = Trainer(_cfg(method="gan_si", **{"loss.lam": 2.0}))
    gan_si_zero = Trainer(_cfg(method="gan_si", **{"loss.lam": 0.0}))
    assert gan.cfg.loss.lam == 0.0 and gan_si.cfg.loss.lam == 2.0
    plain, regularised = gan.train_step(), gan_si.train_step()
    gan_si_zero.train_step()
    assert "loss_sig" not in plain and regularised["loss_sig"] > 0
    assert torch.equal(plain["loss_d"], regularised["loss_d"])
    assert torch.equal(plain["loss_g_adv"], regularised["loss_g_adv"])
    assert torch.allclose(regularised["loss_g"],
                          regularised["loss_g_adv"] + 2.0 * regularised["loss_sig"])
    d_params = [p.detach().flatten() for p in gan.method.discriminator.parameters()]
    d_params_si = [p.detach().flatten() for p in gan_si.method.discriminator.parameters()]
    assert torch.equal(torch.cat(d_params), torch.cat(d_params_si))
    assert not torch.equal(_params(gan), _params(gan_si))  # generators took different steps
    assert torch.equal(_params(gan), _params(gan_si_zero))  # lam = 0 is exactly the plain GAN


def test_divergence_stops_with_the_step_named():
    trainer = Trainer(_cfg(method="gan_si"))

    def poison(t, _losses):
        if t.step == 5:  # the generator's weights blow up after step 5
            with torch.no_grad():
                next(t.generator.parameters()).fill_(float("inf"))

    with pytest.raises(DivergenceError, match="diverged at step 6") as err:
        trainer.fit(on_step=poison)
    assert err.value.step == 6 and err.value.name.startswith("loss")
    copy = pickle.loads(pickle.dumps(err.value))  # Ray pickles a trial's error to the driver
    assert (copy.step, copy.name, str(copy)) == (6, err.value.name, str(err.value))


def test_a_divergence_found_at_a_later_check_names_the_step_it_began():
    """Losses stay on the device between checks: with lr 1e30 the run diverges within its
    first steps; checked every step or every 8, the error names the same step, loss and value,
    and no evaluation is reported after it."""
    errors, reports = [], []
    for every in (1, 8):
        trainer = Trainer(_cfg(method="gan_si", **{"train.lr": 1e30, "train.lr_d": 1e30,
                                                   "run.check_every": every,
                                                   "run.eval_every": 8}))
        with pytest.raises(DivergenceError) as err:
            trainer.fit(report=lambda t, metrics: reports.append(metrics))
        errors.append((err.value.step, err.value.name, str(err.value)))
        assert trainer.step == (err.value.step if every == 1 else 8)
    assert errors[0] == errors[1] and errors[0][0] < 8 and not reports


def test_checkpoint_holds_models_optimisers_step_config(tmp_path):
    trainer = Trainer(_cfg(method="wgan_gp_si", **{"train.critic_steps": 1}))
    trainer.fit()
    path = str(tmp_path / "c.pt")
    trainer.save(path)
    state = load_checkpoint(path)  # weights_only=True inside
    assert state["step"] == 12 and state["config"] == trainer.cfg.to_flat()
    assert {"generator", "discriminator", "opt_g", "opt_d", "rng"} <= set(state)


@pytest.mark.parametrize("method", ["gan_si", "veegan"])
def test_a_checkpoint_written_before_methods_were_classes_resumes_exactly(method):
    """tests/data holds step-6 checkpoints of 12-step runs, written by the trainer whose methods
    were branches and plug-ins (the VEEGAN one nests its networks under ``baseline``), on one
    thread: so are these runs, for the same float sums."""
    path = str(Path(__file__).parent / "data" / f"checkpoint_v1_{method}.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = Trainer.from_checkpoint(path)
        assert resumed.step == 6 and resumed.cfg.method == method
        resumed.fit()
        straight = Trainer(from_flat(load_checkpoint(path)["config"]))
        straight.fit()
    finally:
        torch.set_num_threads(threads)
    # the first six steps ran on the CPU that wrote the file: another CPU's kernels may round
    # differently, so equal to float precision (a wrongly loaded network is off by far more)
    torch.testing.assert_close(_params(resumed), _params(straight), rtol=1e-4, atol=1e-5)


def test_every_method_is_one_registered_class():
    from sigdist.config import METHODS
    from sigdist.methods import METHOD_CLASSES

    assert sorted(METHOD_CLASSES) == sorted(METHODS)
    for method in METHODS:
        trainer = Trainer(_cfg(method=method, **{"train.steps": 1}))
        assert type(trainer.method) is METHOD_CLASSES[method]
        assert method in type(trainer.method).names


def test_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"hello": 1}, path)
    with pytest.raises(ValueError, match="not a sigdist checkpoint"):
        load_checkpoint(str(path))


def test_count_data_sig_run_draws_counts():
    cfg = _cfg(**{"data.name": "negbin", "loss.likelihood": "negbin"})
    trainer = Trainer(cfg)
    metrics = trainer.fit()
    samples = trainer.generate(500)
    assert torch.equal(samples, samples.round()) and samples.min() >= 0
    assert 0.0 <= metrics["tv"] <= 1.0


def test_training_loop_imports_neither_ray_nor_mlflow():
    code = ("import sys, sigdist.train, sigdist.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_schedules_are_functions_of_the_step():
    from sigdist.schedules import lr_factor, sigma_at

    cfg = Config().replace(**{"loss.sigma_start": 2.0, "loss.sigma": 0.1,
                              "loss.sigma_anneal": 0.5, "train.steps": 200,
                              "train.lr_schedule": "cosine", "train.lr_final_ratio": 0.01})
    assert sigma_at(cfg, 0) == pytest.approx(2.0)
    assert sigma_at(cfg, 50) == pytest.approx((2.0 * 0.1) ** 0.5)  # geometric midpoint
    assert sigma_at(cfg, 100) == sigma_at(cfg, 10_000) == 0.1
    # a fraction of the run: a run of 20 steps anneals over its first 10, then trains at sigma
    short = cfg.replace(**{"train.steps": 20})
    assert sigma_at(short, 5) == pytest.approx((2.0 * 0.1) ** 0.5) and sigma_at(short, 10) == 0.1
    assert lr_factor(cfg, 0) == pytest.approx(1.0)
    assert lr_factor(cfg, 100) == pytest.approx(0.505)
    assert lr_factor(cfg, 200) == pytest.approx(0.01)
    constant = cfg.replace(**{"train.lr_schedule": "constant"})
    assert lr_factor(constant, 150) == 1.0


@pytest.mark.slow
def test_seeded_sig_run_captures_the_grid():
    """Section 5.2 / Table 1: SIG resists mode collapse. Table 1's budget (8,000 steps, K 256,
    sigma 2 -> 0.1; a minute, where the defaults take three), seed 0, CPU."""
    trainer = Trainer(Config().replace(**{"method": "sig", "seed": 0, "run.device": "cpu",
                                          "train.steps": 8000, "loss.k": 256,
                                          "loss.sigma": 0.1, "loss.sigma_anneal": 0.75}))
    metrics = trainer.fit()
    assert metrics["modes"] >= 20
    assert metrics["high_quality"] > 0.7 and metrics["kl"] < 0.5
