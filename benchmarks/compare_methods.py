"""The paper's tables, measured: modes, high quality and KL (mean and standard error over
seeds) for each method with the same seeds, steps and networks. Table 1 on the 25-Gaussian grid
(default), Table 2 with ``--set data.name=mnist3 --set model.size=M``.

    python benchmarks/compare_methods.py [--methods sig gan gan_si] [--seeds 0 1 2 3 4]
        [--set KEY=VALUE ...] [--workers 2] [--threads 1] [--json OUT]

Runs are independent processes (``--workers`` at a time, ``--threads`` torch threads each).
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

PAPER = {  # the paper's means over 5 trials: modes, high quality, KL
    ("gmm25", "gan"): (4.0, 0.36, 2.87), ("gmm25", "sig"): (25.0, 0.91, 0.14),
    ("mnist3", "gan", "S"): (21.0, 0.63, 4.99), ("mnist3", "gan_si", "S"): (279.2, 0.60, 2.63),
    ("mnist3", "gan", "M"): (811.8, 0.70, 0.75), ("mnist3", "gan_si", "M"): (969.0, 0.72, 0.30),
    ("mnist3", "gan", "L"): (389.8, 0.67, 2.95), ("mnist3", "gan_si", "L"): (957.0, 0.73, 0.36),
}


def run_one(job: tuple[dict, int]) -> dict:
    import torch

    from sigdist.config import from_flat
    from sigdist.train import Trainer

    flat, threads = job
    torch.set_num_threads(threads)
    start = time.perf_counter()
    metrics = Trainer(from_flat(flat)).fit()
    return {**flat, **metrics, "wall_s": time.perf_counter() - start}


def mean_se(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values) / len(values) ** 0.5:.2g}"


def main() -> None:
    from sigdist.config import from_assignments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["gan", "gan_si", "sig"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    base = from_assignments(args.assignments + ["run.device=cpu"])
    jobs = [(base.replace(method=m, seed=s).to_flat(), args.threads)
            for m in args.methods for s in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_one, jobs))
    print(f"{len(args.seeds)} seeds, {base.train.steps} steps, {base.data.name} "
          f"(size {base.model.size}), {base.run.eval_samples} samples each")
    print(f"{'method':12s} {'modes':>14s} {'high quality':>16s} {'KL':>16s} {'s/run':>7s}"
          "   paper (modes / HQ / KL)")
    for method in args.methods:
        rows = [r for r in results if r["method"] == method]
        paper = PAPER.get((base.data.name, method)) or PAPER.get(
            (base.data.name, method, base.model.size))
        print(f"{method:12s} {mean_se([r['modes'] for r in rows]):>14s} "
              f"{mean_se([r['high_quality'] for r in rows]):>16s} "
              f"{mean_se([r['kl'] for r in rows]):>16s} "
              f"{statistics.mean(r['wall_s'] for r in rows):7.1f}   "
              + (" / ".join(f"{v:g}" for v in paper) if paper else "-"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
