"""Table 2 of the paper: DCGAN and DCGAN-SI at the width presets S, M and L on Stacked MNIST,
the same seeds and budget for both, every run tracked in MLflow; the report gives modes, KL
and high quality per method and size at every evaluation (so each run is also a learning curve).

    python studies/mnist3_table2.py [--address auto] [--max-concurrent N]
        [--cpus-per-trial C] [--gpus-per-trial G] [--set KEY=VALUE ...]
        [--tracking-uri URI] [--storage-path PATH] [--resume] [--smoke-test]

A key given with --set leaves the grid: `--set model.size=M --set train.steps=30000` gives the
learning curves of DCGAN and DCGAN-SI at M. Each trial is one cell trained on 5 seeds at once
(`--seeds-per-trial`; the report gives each cell's mean ± standard error and every seed). CPU
profile: 6 trials of 5 seeds, 3,000 steps. GPU profile (--gpus-per-trial > 0): 6 trials of 5
seeds, 50,000 steps. Wall times: docs/results/stacked_mnist_table2.md.
"""

from __future__ import annotations

import sys

from sigdist.metrics.names import STACKED_OBJECTIVES
from sigdist.study.script import Profile, StudyScript, main

GRID = {"method": ("gan", "gan_si"), "model.size": ("S", "M", "L")}
SEEDS = 5  # the paper's tables are means over 5 runs: each trial trains 5 seeds at once

TABLE2 = StudyScript(
    prefix="mnist3_table2", description=__doc__.splitlines()[0], data_name="mnist3",
    objectives=STACKED_OBJECTIVES,
    smoke=Profile(base={"train.steps": 8, "run.eval_every": 4, "run.eval_samples": 500,
                        "train.batch_size": 16, "data.source": "mnist-5k"},
                  num_samples=1, max_concurrent=2,
                  grid={"method": ("gan", "gan_si"), "model.size": ("S", "M")},
                  seeds_per_trial=2),
    cpu=Profile(base={"train.steps": 3000, "run.eval_every": 1000}, num_samples=1,
                max_concurrent=2, grid=GRID, seeds_per_trial=SEEDS),
    gpu=Profile(base={"train.steps": 50000, "run.eval_every": 5000}, num_samples=1,
                max_concurrent=6, grid=GRID, seeds_per_trial=SEEDS),
)

if __name__ == "__main__":
    sys.exit(main(TABLE2))
