"""Sweep DCGAN, DCGAN-SI, WGAN-GP and WGAN-GP-SI on CIFAR-10 (Table 3): Optuna over the method,
lam (0 for the plain arms), K and network width, through Ray Tune; inception score, FID and a
sample grid of every evaluation tracked in MLflow.

    ray up cluster.yaml      # or nothing, for this machine alone
    python studies/cifar10_sweep.py [--address auto] [--num-samples N] [--max-concurrent N]
        [--cpus-per-trial C] [--gpus-per-trial G] [--objective fid|pareto]
        [--tracking-uri URI] [--storage-path PATH] [--resume] [--seed S] [--smoke-test]

CIFAR-10 comes from data.root (downloaded there where data.download allows), the Inception
weights from torch-fidelity's cache or metrics.inception_weights; where either is missing the
study stops with a message that says where to put it, before Ray starts. The GPU profile (the
default where this machine has a GPU) is the paper's budget: 100,000 steps per trial, IS and
FID on 50,000 samples at the end (10,000 at the evaluations before). The CPU profile is a
small study of 2,000 steps: the Inception network alone scores a few dozen images a second on
two cores. --smoke-test runs offline in seconds: without CIFAR-10 under data.root it writes and
trains on a small stand-in in CIFAR-10's format, and it always scores with a small stand-in
feature extractor instead of Inception; it says both.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from sigdist.metrics.names import FIDELITY_OBJECTIVES
from sigdist.study.script import Profile, StudyScript, main
from sigdist.study.search import SearchSpace

METHODS = ("gan", "gan_si", "wgan_gp", "wgan_gp_si")


def cifar10_space(s: SearchSpace, *, k_choices: tuple[int, ...],
                  width_range: tuple[float, float]) -> None:
    """One of the four methods (the plain arms' SIG weight is 0), lam log-uniform in
    [0.01, 10] for the -SI arms, K, and the generator's width multiplier log-uniform in
    ``width_range`` with the discriminator's tied to it."""
    method = s.categorical("method", METHODS)
    if method.endswith("_si"):
        s.log_uniform("loss.lam", 1e-2, 1e1)
    s.categorical("loss.k", k_choices)
    s.tied_width(*width_range)


def prepare(base: dict[str, Any], args: argparse.Namespace,
            parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The data and the Inception weights, found (or downloaded) before Ray starts; a smoke
    test without them takes the stand-ins and says so."""
    from sigdist.config import ConfigError, from_flat
    from sigdist.data.cifar10 import cifar10_present, ensure_cifar10, write_stand_in
    from sigdist.metrics.fidelity import check_extractor

    root = base["data.root"]
    if args.smoke_test:
        updates: dict[str, Any] = {"metrics.extractor": "stand-in"}
        print("smoke test: IS and FID from a small stand-in feature extractor, not Inception "
              "(the numbers exercise the code, they are no inception scores)", flush=True)
        if base["data.stand_in"] or not cifar10_present(root):
            folder = write_stand_in(root)
            updates["data.stand_in"] = True
            print(f"smoke test: CIFAR-10 is not under {root}; training on a small stand-in "
                  f"written in CIFAR-10's format at {folder}", flush=True)
        return {**base, **updates}
    try:
        if not base["data.stand_in"]:
            ensure_cifar10(root, base["data.download"])
        check_extractor(from_flat(base))
    except ConfigError as err:
        parser.error(str(err))
    if base["metrics.extractor"] != "inception" or base["data.stand_in"]:
        print("note: this study scores with the stand-in extractor or trains on the stand-in "
              "data, as set; its IS and FID are not comparable with published ones", flush=True)
    return base


CIFAR10 = StudyScript(
    prefix="cifar10_sweep", description=__doc__.splitlines()[0], data_name="cifar10",
    smoke=Profile(base={"train.steps": 8, "run.eval_every": 4, "run.eval_samples": 200,
                        "run.eval_samples_intermediate": 100, "train.batch_size": 16,
                        "train.critic_steps": 2},
                  num_samples=4, max_concurrent=2,
                  space=functools.partial(cifar10_space, k_choices=(16,),
                                          width_range=(0.125, 0.25)), seeds_per_trial=2),
    # two evaluations of 1,000 and 2,000 samples: Inception costs about as much as training here
    cpu=Profile(base={"train.steps": 2000, "run.eval_every": 1000, "run.eval_samples": 2000,
                      "run.eval_samples_intermediate": 1000},
                num_samples=8, max_concurrent=2,
                space=functools.partial(cifar10_space, k_choices=(32, 64),
                                        width_range=(0.25, 1.0))),
    # the paper's budget: 100,000 steps, 50,000 samples at the end, 10,000 before
    gpu=Profile(base={}, num_samples=24, max_concurrent=8,
                space=functools.partial(cifar10_space, k_choices=(64, 128, 256),
                                        width_range=(0.5, 2.0))),
    objectives=FIDELITY_OBJECTIVES, prepare=prepare,
)

if __name__ == "__main__":
    sys.exit(main(CIFAR10))
