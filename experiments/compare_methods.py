"""The paper's tables, measured: modes, high quality and KL (mean and standard error over
seeds) for each method with the same seeds, steps and networks. Table 1 on the 25-Gaussian grid
(default), Table 2 with ``--set data.name=mnist3 --sizes S M L``.

    python experiments/compare_methods.py [--methods sig gan gan_si] [--seeds 0 1 2 3 4]
        [--sizes S M L] [--set KEY=VALUE ...] [--workers 2] [--threads 1] [--device cpu]
        [--json OUT]

Runs are independent processes (``--workers`` at a time, ``--threads`` torch threads each;
with ``--device cuda`` they share the GPU). Without Ray or MLflow: where those cannot be
installed (studies/mnist3_table2.py is the same grid through the study system). The JSON keeps
every evaluation of every run (its learning curve) and its training time per step.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

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

    flat, threads, progress = job
    flat = dict(flat)
    variant = flat.pop("variant")
    torch.set_num_threads(threads)
    history: list[dict] = []
    evaluating = {"s": 0.0}

    def report(trainer, metrics: dict) -> None:
        history.append(dict(metrics))
        if progress:  # one line per evaluation, so a run cut short still leaves its curve
            with open(progress, "a") as fh:
                fh.write(json.dumps({k: flat[k] for k in ("method", "model.width_g", "seed")}
                                    | {"variant": variant} | metrics) + "\n")

    trainer = Trainer(from_flat(flat))
    evaluate = trainer.evaluate  # evaluations are timed apart from training

    def timed_evaluate() -> dict:
        begin = time.perf_counter()
        try:
            return evaluate()
        finally:
            evaluating["s"] += time.perf_counter() - begin

    trainer.evaluate = timed_evaluate
    start = time.perf_counter()
    metrics = trainer.fit(report=report)
    wall = time.perf_counter() - start
    train_s = wall - evaluating["s"]
    return {**flat, "variant": variant, **metrics, "wall_s": wall,
            "ms_per_step": 1000 * train_s / max(1, trainer.step), "history": history}


def mean_se(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values) / len(values) ** 0.5:.2g}"


def main() -> None:
    from sigdist.config import from_assignments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["gan", "gan_si", "sig"])
    parser.add_argument("--sizes", nargs="+", default=None,
                        help="model.size presets (image data), each a row per method")
    parser.add_argument("--widths", nargs="+", type=float, default=None,
                        help="or widths (model.width_g = model.width_d), a row each")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument("--progress", default=None,
                        help="append every evaluation to this JSON-lines file as it happens")
    args = parser.parse_args()
    base = from_assignments(args.assignments + [f"run.device={args.device}"])
    # each variant: a label and the keys it sets (a preset, a width, or the base's own)
    if args.widths:
        variants = {f"{w:g}": {"model.width_g": w, "model.width_d": w} for w in args.widths}
    elif args.sizes:
        variants = {size: {"model.size": size} for size in args.sizes}
    else:
        variants = {base.model.size: {}}
    jobs = [({**base.replace(**{"method": m, "seed": s, **keys}).to_flat(), "variant": label},
             args.threads, args.progress)
            for label, keys in variants.items() for m in args.methods for s in args.seeds]
    # spawn: a forked child cannot use CUDA that its parent initialised
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")
                             ) as pool:
        results = list(pool.map(run_one, jobs))
    print(f"{len(args.seeds)} seeds, {base.train.steps} steps, {base.data.name}, "
          f"{base.run.eval_samples} samples each, {args.device}")
    print(f"{'method':12s} {'variant':>7s} {'modes':>14s} {'high quality':>16s} {'KL':>16s} "
          f"{'ms/step':>8s}   paper (modes / HQ / KL)")
    for size in variants:
        for method in args.methods:
            rows = [r for r in results if r["method"] == method and r["variant"] == size]
            paper = PAPER.get((base.data.name, method)) or PAPER.get(
                (base.data.name, method, size))
            print(f"{method:12s} {size:>7s} {mean_se([r['modes'] for r in rows]):>14s} "
                  f"{mean_se([r['high_quality'] for r in rows]):>16s} "
                  f"{mean_se([r['kl'] for r in rows]):>16s} "
                  f"{statistics.mean(r['ms_per_step'] for r in rows):8.1f}   "
                  + (" / ".join(f"{v:g}" for v in paper) if paper else "-"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
