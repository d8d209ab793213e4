"""Push SIG and GAN-SI on the 25-Gaussian grid (Table 1) towards high quality >= 0.95 and
KL <= 0.03: Optuna over the method, sigma, its annealing (start, length), lambda, K and the
learning rate, through Ray Tune with ASHA, every trial tracked in MLflow.

    python studies/gmm25_push.py [--num-samples N] [--max-concurrent N] [--set KEY=VALUE ...]
        [--tracking-uri URI] [--storage-path PATH] [--name NAME] [--seed S] [--smoke-test]

The same trainable, tracking callback and MLflow layout as the other studies; only the search
space is this study's own. The best trials' settings are then checked over 5 seeds with
``studies/reproduce.py table1 --set ...`` or ``experiments/compare_methods.py``.
"""

from __future__ import annotations

import sys

from sigdist.study.script import Profile, StudyScript, main
from sigdist.study.search import SearchSpace


def push_space(s: SearchSpace) -> None:
    """SIG or GAN-SI (lambda log-uniform in [0.3, 10]); sigma (a final kernel wider than the
    modes' std 0.05 still has point masses at the centres as its optimum, and reaches the
    generated mass left between modes), the annealing's start and length (a fraction of the
    run), K and the learning rate (both networks)."""
    if s.categorical("method", ["sig", "gan_si"]) == "gan_si":
        s.log_uniform("loss.lam", 0.3, 10.0)
    s.log_uniform("loss.sigma", 0.05, 0.3)
    s.log_uniform("loss.sigma_start", 0.5, 4.0)
    s.log_uniform("loss.sigma_anneal", 1 / 6, 3 / 4)
    s.categorical("loss.k", [256, 1024])
    s.set("train.lr_d", s.log_uniform("train.lr", 1.5e-3, 6e-3))


SMOKE = {"train.steps": 20, "run.eval_every": 10, "run.eval_samples": 2000,
         "train.batch_size": 64}
PUSH = StudyScript(
    prefix="gmm25_push", description=__doc__.splitlines()[0], data_name="gmm25",
    smoke=Profile(base=SMOKE, num_samples=2, max_concurrent=2, space=push_space, seeds_per_trial=2),
    cpu=Profile(base={"train.steps": 16000, "run.eval_every": 4000}, num_samples=12,
                max_concurrent=2, space=push_space),
    gpu=Profile(base={"train.steps": 16000, "run.eval_every": 4000}, num_samples=32,
                max_concurrent=16, space=push_space),
)

if __name__ == "__main__":
    sys.exit(main(PUSH))
