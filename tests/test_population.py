"""Seed populations (run.seeds = P): member i of a P-member run is the single run of seed
seed + i, step for step; checkpoints hold every member and resume exactly; a member's
divergence names it; methods that cannot take P > 1 are refused."""

from __future__ import annotations

import math

import pytest
import torch

from sigdist.config import ConfigError, from_flat
from sigdist.metrics.members import seed_key, summarize_members
from sigdist.train import DivergenceError, Trainer

STEPS = 50


def config(method: str, data: str, *, seed: int = 3, seeds: int = 1, kernels: str = "loop",
           steps: int = STEPS, root: str = "data"):
    flat = {"method": method, "data.name": data, "seed": seed, "run.seeds": seeds,
            "run.member_kernels": kernels, "train.steps": steps, "run.eval_every": steps,
            "run.eval_samples": 2000, "run.device": "cpu"}
    if data == "mnist3":
        flat.update({"data.source": "mnist-5k", "data.root": root, "model.size": "S",
                     "train.batch_size": 16, "loss.k": 16})
    else:
        flat.update({"train.batch_size": 64, "loss.k": 64})
    return from_flat(flat)


def losses_per_step(trainer: Trainer, steps: int) -> list[dict[str, torch.Tensor]]:
    out = []
    for _ in range(steps):
        out.append({k: v.detach().clone() for k, v in trainer.train_step().items()})
        trainer.step += 1
    return out


CASES = [("sig", "gmm25"), ("gan_si", "mnist3"), ("wgan_gp_si", "mnist3")]


@pytest.mark.parametrize(("method", "data"), CASES)
def test_each_member_is_the_single_run_of_its_seed(method, data, mnist_root):
    torch.set_num_threads(1)
    population = Trainer(config(method, data, seeds=3, root=mnist_root))
    pop_losses = losses_per_step(population, STEPS)
    for member in range(3):
        single = Trainer(config(method, data, seed=3 + member, root=mnist_root))
        single_losses = losses_per_step(single, STEPS)
        for step, (pop, alone) in enumerate(zip(pop_losses, single_losses, strict=True)):
            for name, value in alone.items():  # the same kernels: the same bits
                assert torch.equal(pop[name][member], value), (member, step, name)
        state = population.generator.member_state_dict(member)
        for key, value in single.generator.state_dict().items():
            assert torch.equal(state[key], value), key
        if hasattr(single.method, "discriminator"):
            state = population.method.discriminator.member_state_dict(member)
            for key, value in single.method.discriminator.state_dict().items():
                assert torch.equal(state[key], value), key  # batch norm's running stats too
    # and the evaluation of a member is the single run's evaluation
    assert torch.equal(population.generate(300, member=2), single.generate(300))


@pytest.mark.parametrize(("method", "data"), CASES)
def test_batched_members_follow_the_single_runs_within_float_rounding(method, data,
                                                                      mnist_root):
    torch.set_num_threads(1)
    batched = Trainer(config(method, data, seeds=2, kernels="vmap", root=mnist_root))
    assert batched.generator.batched
    pop_losses = losses_per_step(batched, STEPS)
    for member in range(2):
        single = losses_per_step(Trainer(config(method, data, seed=3 + member,
                                                root=mnist_root)), STEPS)
        for step, (pop, alone) in enumerate(zip(pop_losses, single, strict=True)):
            for name, value in alone.items():
                # batched kernels sum in another order; Adam's first steps amplify that on
                # weights with near-zero gradients, so the losses are what is compared
                assert torch.allclose(pop[name][member], value, rtol=2e-2, atol=1e-4), (
                    member, step, name, float(pop[name][member]), float(value))


def test_a_population_resumes_exactly_and_sample_takes_a_member(tmp_path, mnist_root):
    cfg = config("gan_si", "mnist3", seeds=2, steps=12, root=mnist_root)
    whole = Trainer(cfg)
    whole.fit()
    half = Trainer(cfg.replace(**{"train.steps": 6, "run.eval_every": 6}))
    half.fit()
    half.save(str(tmp_path / "checkpoint.pt"))
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.pt"),
                                      overrides={"train.steps": 12, "run.eval_every": 12})
    assert resumed.step == 6 and len(resumed.seeds) == 2
    resumed.fit()
    for part in ("generator", "discriminator", "opt_g", "opt_d", "rng"):
        a, b = whole.state_dict()[part], resumed.state_dict()[part]
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), part
        elif part.startswith("opt"):
            for key, state in a["state"].items():
                for name, value in state.items():
                    assert torch.equal(value, b["state"][key][name]), (part, key, name)
        else:
            for key, value in a.items():
                assert torch.equal(value, b[key]), (part, key)
    assert not torch.equal(resumed.generate(8, member=0), resumed.generate(8, member=1))
    with pytest.raises(ValueError, match="members 0 to 1"):
        resumed.generate(8, member=2)


def test_the_divergence_of_one_member_fails_the_run_naming_it():
    trainer = Trainer(config("sig", "gmm25", seeds=3, steps=40))
    for _ in range(5):  # a few healthy steps, then member 1's weights break
        trainer.train_step()
        trainer.step += 1
    with torch.no_grad():
        trainer.generator.net__4__bias[1].fill_(float("nan"))
    with pytest.raises(DivergenceError) as caught:
        trainer.fit()
    assert caught.value.member == (1, 4) and caught.value.step == 6
    assert "member 1 (seed 4)" in str(caught.value) and "loss_sig" in str(caught.value)


def test_an_evaluation_reports_mean_standard_error_worst_and_every_member():
    trainer = Trainer(config("sig", "gmm25", seeds=3, steps=20))
    metrics = trainer.fit()
    per_member = [Trainer(config("sig", "gmm25", seed=3 + m, steps=20)).fit()
                  for m in range(3)]
    kls = [m["kl"] for m in per_member]
    assert [metrics[seed_key(3 + m, "kl")] for m in range(3)] == pytest.approx(kls, abs=1e-12)
    assert metrics["kl"] == pytest.approx(sum(kls) / 3)
    assert metrics["kl_worst"] == max(kls)
    modes = [m["modes"] for m in per_member]
    assert metrics["modes_worst"] == min(modes)
    mean = sum(kls) / 3
    se = math.sqrt(sum((k - mean) ** 2 for k in kls) / 2 / 3)
    assert metrics["kl_se"] == pytest.approx(se)
    assert metrics["loss_sig"] == pytest.approx(
        sum(m["loss_sig"] for m in per_member) / 3, rel=1e-9)


def test_summarize_members_on_known_values():
    out = summarize_members([{"kl": 1.0, "modes": 20.0, "num_samples": 5.0, "loss_d": 1.0},
                             {"kl": 3.0, "modes": 25.0, "num_samples": 5.0, "loss_d": 2.0}],
                            (7, 8), spread=lambda name: name in ("kl", "modes"),
                            per_seed=lambda name: name != "num_samples")
    assert out["kl"] == 2.0 and out["kl_se"] == pytest.approx(1.0)
    assert out["kl_worst"] == 3.0 and out["modes_worst"] == 20.0
    assert out[seed_key(8, "modes")] == 25.0 and out["seed_7/loss_d"] == 1.0
    assert out["loss_d"] == 1.5 and "loss_d_se" not in out
    assert out["num_samples"] == 5.0 and set(out) == {
        "kl", "kl_se", "kl_worst", "modes", "modes_se", "modes_worst", "num_samples", "loss_d",
        "seed_7/kl", "seed_8/kl", "seed_7/modes", "seed_8/modes", "seed_7/loss_d",
        "seed_8/loss_d"}


@pytest.mark.parametrize(("updates", "message"), [
    ({"method": "vae"}, "allowed: 1 (seed populations train sig, gan"),
    ({"method": "veegan"}, "allowed: 1"),
    ({"data.name": "negbin", "loss.likelihood": "negbin"}, "Gaussian likelihood"),
    ({"seed": 2**32 - 2}, "seed .. seed + run.seeds - 1"),
    ({"train.batch_size": 4096, "loss.k": 8192}, "'run.seeds' x 'train.batch_size'"),
])
def test_what_a_population_cannot_train_is_refused(updates, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")
                       .replace("+", r"\+")):
        from_flat({"run.seeds": 3, **updates})


def test_one_member_is_todays_run():
    assert Trainer(config("sig", "gmm25")).seeds == (3,)
    assert not Trainer(config("sig", "gmm25")).population


def test_train_and_sample_a_member_from_the_command_line(tmp_path):
    import subprocess
    import sys

    import numpy as np

    def sigdist(*args):
        return subprocess.run([sys.executable, "-m", "sigdist", *args], capture_output=True,
                              text=True, timeout=300)

    out = tmp_path / "run"
    trained = sigdist("train", "--out", str(out), "--set", "run.seeds=2", "--set",
                      "train.steps=20", "--set", "run.eval_every=10", "--set",
                      "run.eval_samples=500")
    assert trained.returncode == 0, trained.stderr
    checkpoint = str(out / "checkpoint.pt")
    for member in (0, 1):
        done = sigdist("sample", "--checkpoint", checkpoint, "--n", "50", "--member",
                       str(member), "--out", str(tmp_path / f"m{member}.npy"))
        assert done.returncode == 0, done.stderr
    first, second = (np.load(tmp_path / f"m{m}.npy") for m in (0, 1))
    assert first.shape == second.shape == (50, 2) and not np.array_equal(first, second)
    refused = sigdist("sample", "--checkpoint", checkpoint, "--n", "50", "--member", "2",
                      "--out", str(tmp_path / "m2.npy"))
    assert refused.returncode == 2 and "allowed: 0 to 1" in refused.stderr
    assert not (tmp_path / "m2.npy").exists()
    bad = sigdist("train", "--out", str(tmp_path / "vae"), "--set", "method=vae", "--set",
                  "run.seeds=2")
    assert bad.returncode == 2 and "run.seeds" in bad.stderr
    assert not (tmp_path / "vae").exists()
