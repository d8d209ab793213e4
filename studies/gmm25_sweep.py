"""Sweep GAN-SI on the 25-Gaussian grid (Table 1): Optuna over lam (with the plain GAN as a
baseline arm) and K, through Ray Tune, every trial tracked in MLflow.

    python studies/gmm25_sweep.py [--address auto] [--num-samples N] [--max-concurrent N]
        [--cpus-per-trial C] [--gpus-per-trial G] [--objective kl|pareto]
        [--tracking-uri URI] [--storage-path PATH] [--resume] [--seed S] [--smoke-test]
"""

from __future__ import annotations

import functools
import sys

from sigdist.study.script import Profile, StudyScript, main
from sigdist.study.search import SearchSpace


def gmm25_space(s: SearchSpace, *, k_choices: tuple[int, ...]) -> None:
    """Plain GAN (the baseline arm; its SIG weight is 0) or GAN-SI with lam log-uniform in
    [0.01, 10] and the kernel width sigma of L_K in [0.03, 0.3]; K, generated samples per step.
    (The grid's MLPs have no width to search.)"""
    if s.categorical("method", ["gan", "gan_si"]) == "gan_si":
        s.log_uniform("loss.lam", 1e-2, 1e1)
        s.log_uniform("loss.sigma", 0.03, 0.3)
    s.categorical("loss.k", k_choices)


GMM25 = StudyScript(
    prefix="gmm25_sweep", description=__doc__.splitlines()[0], data_name="gmm25",
    smoke=Profile(base={"train.steps": 20, "run.eval_every": 10, "run.eval_samples": 2000,
                        "train.batch_size": 64},
                  num_samples=4, max_concurrent=2,
                  space=functools.partial(gmm25_space, k_choices=(16, 32)), seeds_per_trial=2),
    cpu=Profile(base={"train.steps": 8000, "run.eval_every": 1000},
                num_samples=12, max_concurrent=2,
                space=functools.partial(gmm25_space, k_choices=(64, 256, 1024))),
    gpu=Profile(base={"train.steps": 20000, "run.eval_every": 2000},
                num_samples=32, max_concurrent=16,
                space=functools.partial(gmm25_space, k_choices=(64, 256, 1024))),
)

if __name__ == "__main__":
    sys.exit(main(GMM25))
