"""Reproduce the paper's Table 1 (the 25-Gaussian grid: GAN, GAN-SI, SIG, VAE, VEEGAN, Unrolled
GAN, 5 seeds each) or Figure 1 (SIG on four toys) through the study system, then write the
report from what MLflow holds.

    python studies/reproduce.py table1|figure1 [--out docs/results] [--smoke-test]
        [--max-concurrent N] [--cpus-per-trial C] [--set KEY=VALUE ...]
        [--tracking-uri URI] [--storage-path PATH] [--name NAME]

Every method (or data set) x seed is one run of a grid study under Ray Tune, a child of one
MLflow parent run per table. The report (``OUT/table1.md`` or ``OUT/figure1.md`` and their
PNGs) reads each run's final metrics and final checkpoint back from MLflow and is also logged
on the parent run. ``--smoke-test``: 2 seeds, 30 steps, the same report shape, seconds.
"""

from __future__ import annotations

import sys

from sigdist.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
