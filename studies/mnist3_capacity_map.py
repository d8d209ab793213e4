"""The capacity x budget map of Stacked MNIST: DCGAN and DCGAN-SI over a grid of network widths
(from Appendix C's scale to the textbook DCGAN's), two seeds a cell, every run tracked in MLflow;
each evaluation of a run is its result at that step budget.

    python studies/mnist3_capacity_map.py [--address auto] [--max-concurrent N]
        [--cpus-per-trial C] [--gpus-per-trial G] [--set KEY=VALUE ...]
        [--tracking-uri URI] [--storage-path PATH] [--resume] [--smoke-test]

Writes grid.md (modes, KL and high quality per method, width and budget, mean ± standard
error over seeds) and capacity_map.png into the study's directory and onto its MLflow parent
run. CPU profile: 20 runs of 3,000 steps (its wall time: docs/stacked_mnist.md).
"""

from __future__ import annotations

import sys

from sigdist.metrics.names import STACKED_OBJECTIVES
from sigdist.study.script import Profile, StudyScript, main

# model.width_g multiplies the generator widths (64, 32), model.width_d (tied to it) the
# discriminator widths (16, 32): 1 is Appendix C's scale, 4 the textbook DCGAN's.
WIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
COMMON = {"model.size": "custom", "model.width_g": 1.0, "model.width_d": 1.0}

CAPACITY_MAP = StudyScript(
    prefix="mnist3_capacity_map", description=__doc__.splitlines()[0], data_name="mnist3",
    objectives=STACKED_OBJECTIVES,
    smoke=Profile(base={**COMMON, "train.steps": 8, "run.eval_every": 4,
                        "run.eval_samples": 500, "train.batch_size": 16,
                        "data.source": "mnist-5k"},
                  num_samples=1, max_concurrent=2,
                  grid={"method": ("gan", "gan_si"), "model.width_g": (0.25, 0.5)},
                  tied={"model.width_d": "model.width_g"}, seeds_per_trial=2),
    cpu=Profile(base={**COMMON, "train.steps": 3000, "run.eval_every": 1000},
                num_samples=1, max_concurrent=2,
                grid={"method": ("gan", "gan_si"), "model.width_g": WIDTHS},
                tied={"model.width_d": "model.width_g"}, seeds_per_trial=2),
    gpu=Profile(base={**COMMON, "train.steps": 20000, "run.eval_every": 5000},
                num_samples=1, max_concurrent=16,
                grid={"method": ("gan", "gan_si"), "model.width_g": (0.125, *WIDTHS, 8.0)},
                tied={"model.width_d": "model.width_g"}, seeds_per_trial=3),
)

if __name__ == "__main__":
    sys.exit(main(CAPACITY_MAP))
