"""Table 1 of the paper on the 25-Gaussian grid: modes, high quality and KL, mean and standard
error over seeds, for each method, with the same seeds, steps and networks.

    python benchmarks/grid_table1.py [--methods sig gan gan_si] [--seeds 0 1 2 3 4]
        [--set KEY=VALUE ...] [--workers 2] [--json OUT]

Runs are independent processes (``--workers`` at a time, one torch thread each).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

PAPER = {  # Table 1 of the paper: modes, high quality, KL (means over 5 trials)
    "gan": (4.0, 0.36, 2.87), "sig": (25.0, 0.91, 0.14),
    "vae": (25.0, 0.83, 0.32), "veegan": (23.2, 0.82, 0.38), "unrolled_gan": (6.2, 0.42, 1.97),
}


def run_one(flat: dict) -> dict:
    import torch

    from sigdist.config import from_flat
    from sigdist.train import Trainer

    torch.set_num_threads(1)
    start = time.perf_counter()
    metrics = Trainer(from_flat(flat)).fit()
    return {**flat, **metrics, "wall_s": time.perf_counter() - start}


def mean_se(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values) / len(values) ** 0.5:.2g}"


def main() -> None:
    from sigdist.config import Config, from_assignments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["gan", "gan_si", "sig"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    base = from_assignments(args.assignments, Config().replace(**{"run.device": "cpu"}))
    jobs = [base.replace(method=m, seed=s).to_flat() for m in args.methods for s in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_one, jobs))
    print(f"{len(args.seeds)} seeds, {base.train.steps} steps, gmm25, 50,000 samples each")
    print(f"{'method':12s} {'modes':>14s} {'high quality':>16s} {'KL':>16s} {'s/run':>7s}"
          "   paper (modes / HQ / KL)")
    for method in args.methods:
        rows = [r for r in results if r["method"] == method]
        paper = PAPER.get(method)
        print(f"{method:12s} {mean_se([r['modes'] for r in rows]):>14s} "
              f"{mean_se([r['high_quality'] for r in rows]):>16s} "
              f"{mean_se([r['kl'] for r in rows]):>16s} "
              f"{statistics.mean(r['wall_s'] for r in rows):7.1f}   "
              + (" / ".join(f"{v:g}" for v in paper) if paper else "-"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
