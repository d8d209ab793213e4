"""Step time of every Table 1 method on the 25-Gaussian grid, as ratios to plain GAN measured in
one run: GAN, GAN-SI, SIG, VAE, VEEGAN and Unrolled GAN (train.unroll_steps, default 5).

    python benchmarks/bench_method_steps.py [--rounds 7] [--steps 50] [--threads 1]
        [--device cpu] [--set KEY=VALUE ...] [--json OUT]

Each round times ``--steps`` training steps of every method in turn (the order rotating from
round to round), so that a load change on the machine touches all methods alike; the table
gives each method's median over rounds and its ratio to GAN's median, and the same for the
fastest round of each (on a shared machine the least disturbed one). Defaults of the grid
(batch 256, K 256, the Section 5.2 networks); evaluation is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from sigdist.config import from_assignments
from sigdist.train import Trainer

METHODS = ("gan", "gan_si", "sig", "vae", "veegan", "unrolled_gan")


def timed_steps(trainer: Trainer, steps: int) -> float:
    """Seconds per step over ``steps`` steps (synchronised on a GPU)."""
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
        trainer.step += 1
    sync()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = from_assignments(args.assignments + [f"run.device={args.device}"])
    trainers = {m: Trainer(base.replace(method=m)) for m in METHODS}
    for trainer in trainers.values():
        timed_steps(trainer, args.warmup)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for round_ in range(args.rounds):
        order = METHODS[round_ % len(METHODS):] + METHODS[:round_ % len(METHODS)]
        for method in order:
            times[method].append(timed_steps(trainers[method], args.steps))
    median = {m: statistics.median(v) for m, v in times.items()}
    fastest = {m: min(v) for m, v in times.items()}
    rows = [{"method": m, "ms_per_step": 1000 * median[m], "vs_gan": median[m] / median["gan"],
             "ms_fastest": 1000 * fastest[m], "vs_gan_fastest": fastest[m] / fastest["gan"],
             "rounds_ms": [1000 * t for t in times[m]]} for m in METHODS]
    print(f"{args.device}, {args.threads} thread(s), batch {base.train.batch_size}, K "
          f"{base.loss.k}, unroll {base.train.unroll_steps}; median of {args.rounds} rounds of "
          f"{args.steps} steps; load average {os.getloadavg()[0]:.2f}")
    print("| method | ms / step (median) | / GAN | ms / step (fastest round) | / GAN |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['method']} | {row['ms_per_step']:.2f} | {row['vs_gan']:.2f} | "
              f"{row['ms_fastest']:.2f} | {row['vs_gan_fastest']:.2f} |")
    unrolled_vs_gan_si = median["unrolled_gan"] / median["gan_si"]
    print(f"Unrolled GAN / GAN-SI: {unrolled_vs_gan_si:.2f} (median), "
          f"{fastest['unrolled_gan'] / fastest['gan_si']:.2f} (fastest round)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": args.device, "threads": args.threads,
                       "load_avg": os.getloadavg()[0], "config": base.to_flat(), "rows": rows,
                       "unrolled_vs_gan_si": unrolled_vs_gan_si}, fh, indent=2)
            fh.write("\n")


if __name__ == "__main__":
    main()
