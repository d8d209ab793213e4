"""Step time of DCGAN, DCGAN-SI, WGAN-GP and WGAN-GP-SI on the CIFAR-10 networks (Table 3), in
one run: what the SIG term costs each adversarial method.

All four through the real ``Trainer.train_step`` on the standard CIFAR DCGAN pair (``--width``,
1 = its own widths; the WGAN-GP critic without batch norm), N = K = 64 images of 3 x 32 x 32,
Adam, the CIFAR-10 defaults (lam = 0.1, sigma = 0.05) otherwise. The data are random uint8
images held by the real CIFAR-10 sampler (``sigdist.data.cifar10.Cifar10``): a step's cost does
not depend on the pixels, and no data files are needed. A WGAN-GP step is ``train.critic_steps``
(5) critic updates and one generator update, so compare each -SI method with its own plain
method. The methods are timed interleaved (ABCD ABCD ...) so that load changes hit all alike;
read the ratios of medians: DCGAN-SI / DCGAN and WGAN-GP-SI / WGAN-GP (goal <= 1.10 each).

    python benchmarks/bench_cifar10_step.py [--width 1] [--steps 30] [--threads 1]
        [--device cpu|cuda] [--bf16] [--channels-last] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

import torch
from bench_gan_si_step import timed_step  # noqa: E402

from sigdist.config import from_flat  # noqa: E402
from sigdist.data.cifar10 import Cifar10  # noqa: E402
from sigdist.train import Trainer  # noqa: E402

METHODS = ("gan", "gan_si", "wgan_gp", "wgan_gp_si")
PAIRS = (("gan_si", "gan"), ("wgan_gp_si", "wgan_gp"))


def make_trainer(method: str, args: argparse.Namespace) -> Trainer:
    cfg = from_flat({"data.name": "cifar10", "method": method, "model.width_g": args.width,
                     "model.width_d": args.width, "run.device": args.device,
                     "run.bf16": args.bf16, "run.channels_last": args.channels_last,
                     "metrics.extractor": "stand-in"})
    images = torch.randint(0, 256, (5000, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    data = Cifar10.from_arrays(images, torch.zeros(5000, dtype=torch.int64), args.device)
    return Trainer(cfg, data=data)


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Median seconds per step of each method."""
    trainers = {method: make_trainer(method, args) for method in METHODS}
    for _ in range(3):  # warm-up: allocator, autograd graph caches, cuDNN autotuning
        for trainer in trainers.values():
            timed_step(trainer)
    times: dict[str, list[float]] = {method: [] for method in METHODS}
    for _ in range(args.steps):
        for method, trainer in trainers.items():
            times[method].append(timed_step(trainer))
    return {method: statistics.median(ts) for method, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per method")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--bf16", action="store_true", help="run.bf16 (autocast)")
    parser.add_argument("--channels-last", action="store_true", help="run.channels_last")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    medians = measure(args)
    load = os.getloadavg()[0]
    print(f"CIFAR-10 networks at width {args.width:g}, N = K = 64, {args.device}, bf16 "
          f"{args.bf16}, channels_last {args.channels_last}, torch {torch.__version__}, "
          f"{args.threads} threads, load avg {load:.2f}, {args.steps} steps each")
    for method in METHODS:
        print(f"{method:>11s} {medians[method] * 1e3:9.1f} ms/step")
    ratios = {f"{si}/{plain}": medians[si] / medians[plain] for si, plain in PAIRS}
    for name, ratio in ratios.items():
        print(f"{name:>19s} {ratio:6.3f}   (goal <= 1.10)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"width": args.width, "device": args.device, "threads": args.threads,
                       "bf16": args.bf16, "channels_last": args.channels_last,
                       "load_avg": load, "ms_per_step": {k: v * 1e3 for k, v in medians.items()},
                       "ratios": ratios}, fh, indent=2)


if __name__ == "__main__":
    main()
