"""Share of a Stacked-MNIST training step spent building its batches (goal: under 5 %), and the
wall time per 1,000 steps.

One DCGAN-SI step (Algorithm 1) draws one data batch of N = 64 stacked digits; the sampler
gathers three uint8 digits per image on the training device. This times that draw alone and
whole steps, interleaved, on the real mnist-5k (or mnist-60k) digits, and reports
median(draw) / median(step).

    python benchmarks/bench_batch_share.py [--size M --steps 100 --threads 2 --root data]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sigdist.config import from_flat  # noqa: E402
from sigdist.train import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="M", choices=("S", "M", "L", "XL"))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--root", default="data")
    parser.add_argument("--source", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trainer = Trainer(from_flat({"data.name": "mnist3", "model.size": args.size,
                                 "data.root": args.root, "data.source": args.source,
                                 "run.device": "cpu"}))
    batch = trainer.cfg.train.batch_size
    for _ in range(5):
        trainer.train_step()
    draws, steps = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        trainer.data.sample(batch, trainer.rng, device=trainer.device)
        draws.append(time.perf_counter() - start)
        start = time.perf_counter()
        trainer.train_step()
        steps.append(time.perf_counter() - start)
    draw, step = statistics.median(draws), statistics.median(steps)
    print(f"mnist3 ({trainer.cfg.data.source}), size {args.size}, batch {batch}, "
          f"{args.threads} threads, method {trainer.cfg.method}")
    print(f"  batch draw median {draw * 1e6:9.1f} us")
    print(f"  train step median {step * 1e3:9.2f} ms   ({step * 1000:.1f} s per 1,000 steps)")
    print(f"  share of the step building its batch: {draw / step:.2%}  (goal < 5 %)")


if __name__ == "__main__":
    main()
