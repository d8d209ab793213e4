"""GAN-SI step time over GAN step time: what the SIG regulariser costs in training (Algorithm 1).

Both steps use the Stacked-MNIST networks at ``model.size`` (default M, Appendix C), batch N = 64
data images and K = 64 generated images of 3 x 28 x 28, Adam, on the CPU, through the real
``Trainer.train_step``. The only difference between the two runs is ``method`` (gan vs gan_si,
lam = 1): GAN-SI adds one ``sig_loss`` on the same K generated images and its backward.

The data are random images in [0, 1] of the Stacked-MNIST shape: the step's cost does not depend
on pixel values, and this keeps the benchmark free of data files. The two methods are timed
interleaved (ABAB...) so that changes in machine load hit both alike; the ratio of medians is
the figure to read (goal <= 1.10).

    python benchmarks/bench_gan_si_step.py [--size M --steps 60 --threads 2 --json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from sigdist.config import Config  # noqa: E402
from sigdist.train import Trainer  # noqa: E402


@dataclass(frozen=True)
class RandomStackedImages:
    """Uniform noise images with the Stacked-MNIST shape; the trainer's data protocol."""

    name: str = "random-3x28x28"
    kind: str = "continuous"
    shape: tuple[int, ...] = (3, 28, 28)

    def sample(self, n: int, generator: torch.Generator, device=None) -> torch.Tensor:
        return torch.rand(n, *self.shape, generator=generator, device=device)


def make_trainer(method: str, size: str) -> Trainer:
    cfg = Config().replace(**{"method": method, "model.size": size, "loss.lam": 1.0,
                              "loss.k": 64, "train.batch_size": 64, "train.lr": 2e-4,
                              "train.lr_d": 2e-4, "run.device": "cpu"})
    return Trainer(cfg, data=RandomStackedImages())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="M", choices=("S", "M", "L"))
    parser.add_argument("--steps", type=int, default=60, help="timed steps per method")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    trainers = {method: make_trainer(method, args.size) for method in ("gan", "gan_si")}
    times: dict[str, list[float]] = {method: [] for method in trainers}
    for _ in range(5):  # warm-up: allocator, autograd graph caches
        for trainer in trainers.values():
            trainer.train_step()
    for _ in range(args.steps):
        for method, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_step()
            times[method].append(time.perf_counter() - start)

    medians = {method: statistics.median(ts) for method, ts in times.items()}
    ratio = medians["gan_si"] / medians["gan"]
    load = os.getloadavg()[0]
    print(f"Stacked-MNIST {args.size} networks, N = K = 64, CPU, torch {torch.__version__}, "
          f"{args.threads} threads, load avg {load:.2f}")
    for method, median in medians.items():
        print(f"  {method:7s} step median {median * 1e3:8.2f} ms   (over {args.steps} steps)")
    print(f"  gan_si / gan step time: {ratio:.3f}  (goal <= 1.10)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"size": args.size, "threads": args.threads, "load_avg": load,
                       "median_s": medians, "ratio": ratio}, fh, indent=2)


if __name__ == "__main__":
    main()
