"""Figure 1 of the paper: SIG on four toys (negative binomial, Poisson + NB counts, ring with
noise, 8 Gaussians on a ring), 3 seeds each, as one grid study; then its report (each toy's
metrics, data against samples, the learned mixing distribution against the true one) from
what MLflow holds.

    python studies/figure1.py [--out docs/results] [--smoke-test] [--max-concurrent N]
        [--set KEY=VALUE ...] [--tracking-uri URI] [--storage-path PATH] [--name NAME]
        [--resume] [--report-only STUDY ...]

Each toy's runs take its own likelihood and sigma (``sigdist.reports.figure1.PANELS``); a key
given with --set applies to every toy. MLflow experiment ``reproduce_figure1``.
"""

from __future__ import annotations

import sys

from sigdist.reports.figure1 import PANELS, figure1_report
from sigdist.study.script import Profile, StudyScript, main

SMOKE_RUN = {"method": "sig", "train.steps": 30, "run.eval_every": 15,
             "run.eval_samples": 2000, "train.batch_size": 64, "loss.k": 64,
             "loss.sigma_anneal": 0.67}
FULL_RUN = {"method": "sig", "run.eval_every": 2000, "train.steps": 8000, "loss.k": 256,
            "loss.sigma_anneal": 0.75}
GRID = {"data.name": tuple(PANELS), "seed": (0, 1, 2)}


def only_its_panels(base: dict, args, parser) -> dict:
    """A pinned data set must be one of the figure's panels: another trained what its data
    defaults chose (gan_si on Stacked MNIST) and reported an empty figure."""
    if base["data.name"] not in PANELS:
        parser.error(f"--set data.name: got {base['data.name']!r}; allowed for Figure 1: "
                     + ", ".join(PANELS))
    return base


FIGURE1 = StudyScript(
    prefix="reproduce_figure1", description=__doc__.splitlines()[0], data_name="ring",
    smoke=Profile(base=SMOKE_RUN, num_samples=1, max_concurrent=2,
                  grid={"data.name": tuple(PANELS), "seed": (0, 1)}),
    cpu=Profile(base=FULL_RUN, num_samples=1, max_concurrent=2, grid=GRID),
    gpu=Profile(base=FULL_RUN, num_samples=1, max_concurrent=8, grid=GRID),
    per_value={"data.name": PANELS}, prepare=only_its_panels,
    report=figure1_report,
)

if __name__ == "__main__":
    sys.exit(main(FIGURE1))
