"""Sweep DCGAN-SI on Stacked MNIST (Table 2): Optuna over lam (with plain DCGAN, lam = 0, as a
baseline arm), K and network width, through Ray Tune; every trial tracked in MLflow.

    ray up cluster.yaml      # or nothing, for this machine alone
    python studies/mnist3_sweep.py [--address auto] [--num-samples N] [--max-concurrent N]
        [--cpus-per-trial C] [--gpus-per-trial G] [--objective kl|pareto]
        [--tracking-uri URI] [--storage-path PATH] [--resume] [--seed S] [--smoke-test]

On a CPU machine the default study runs 20 trials of 3,000 steps, 2 at a time, ASHA stopping
the worst early, over widths 0.125 to 1 (where the capacity map shows plain DCGAN going from
collapsed to covering; its wall time is in docs/studies.md); with GPUs (--gpus-per-trial > 0,
the default where this machine has one) it runs 48 trials of 20,000 steps, four to a GPU.
"""

from __future__ import annotations

import functools
import sys

from sigdist.metrics.names import STACKED_OBJECTIVES
from sigdist.study.script import Profile, StudyScript, main
from sigdist.study.search import SearchSpace


def mnist3_space(s: SearchSpace, *, k_choices: tuple[int, ...],
                 width_range: tuple[float, float]) -> None:
    """Plain DCGAN (the baseline arm; its SIG weight is 0) or DCGAN-SI with lam log-uniform in
    [0.01, 10]; K; the generator's width multiplier log-uniform in ``width_range``, the
    discriminator's tied to it (the capacity map, docs/stacked_mnist.md, shows where it
    matters)."""
    if s.categorical("method", ["gan", "gan_si"]) == "gan_si":
        s.log_uniform("loss.lam", 1e-2, 1e1)
    s.categorical("loss.k", k_choices)
    s.tied_width(*width_range)


MNIST3 = StudyScript(
    prefix="mnist3_sweep", description=__doc__.splitlines()[0], data_name="mnist3",
    objectives=STACKED_OBJECTIVES,
    smoke=Profile(base={"train.steps": 8, "run.eval_every": 4, "run.eval_samples": 500,
                        "train.batch_size": 16, "data.source": "mnist-5k"},
                  num_samples=3, max_concurrent=2,
                  space=functools.partial(mnist3_space, k_choices=(8, 16),
                                          width_range=(0.125, 0.25)), seeds_per_trial=2),
    # minutes on 2 cores (docs/studies.md); widths where the capacity map shows the choice
    # matters
    cpu=Profile(base={"train.steps": 3000, "run.eval_every": 750, "run.eval_samples": 10000},
                num_samples=20, max_concurrent=2,
                space=functools.partial(mnist3_space, k_choices=(16, 32, 64),
                                        width_range=(0.125, 1.0))),
    gpu=Profile(base={"train.steps": 20000, "run.eval_every": 2000},
                num_samples=48, max_concurrent=16,
                space=functools.partial(mnist3_space, k_choices=(16, 64, 256, 1024),
                                        width_range=(0.125, 4.0))),
)

if __name__ == "__main__":
    sys.exit(main(MNIST3))
