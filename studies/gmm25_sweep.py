"""Sweep GAN-SI on the 25-Gaussian grid (Table 1): Optuna over lam (with the plain GAN as a
baseline arm) and K, through Ray Tune, every trial tracked in MLflow.

    python studies/gmm25_sweep.py [--address auto] [--num-samples N] [--max-concurrent N]
        [--cpus-per-trial C] [--gpus-per-trial G] [--objective kl|pareto]
        [--tracking-uri URI] [--storage-path PATH] [--resume] [--seed S] [--smoke-test]
"""

from __future__ import annotations

import sys

from sigdist.study.script import Profile, StudyScript, main

GMM25 = StudyScript(
    prefix="gmm25_sweep", description=__doc__.splitlines()[0], data_name="gmm25",
    smoke=Profile(base={"method": "gan_si", "train.steps": 20, "run.eval_every": 10,
                        "run.eval_samples": 2000, "train.batch_size": 64},
                  num_samples=4, max_concurrent=2,
                  space={"k_choices": (16, 32), "sizes": ("M",)}),
    cpu=Profile(base={"method": "gan_si", "train.steps": 8000, "run.eval_every": 1000},
                num_samples=12, max_concurrent=2,
                space={"k_choices": (64, 256, 1024), "sizes": ("M",)}),
    gpu=Profile(base={"method": "gan_si", "train.steps": 20000, "run.eval_every": 2000},
                num_samples=32, max_concurrent=16,
                space={"k_choices": (64, 256, 1024), "sizes": ("S", "M", "L")}),
)

if __name__ == "__main__":
    sys.exit(main(GMM25))
