"""GAN-SI step time over GAN step time: what the SIG regulariser costs in training (Algorithm 1).

Both steps use the Stacked-MNIST networks at each width of ``--widths`` (model.width_g =
model.width_d; default 0.25 to 4, Appendix C's scale is 1, the textbook DCGAN's 4), batch N = 64
data images and K = 64 generated images of 3 x 28 x 28, Adam, on the CPU, through the real
``Trainer.train_step``. The only difference between the two runs is ``method`` (gan vs gan_si,
lam = 1): GAN-SI adds one ``sig_loss`` on the same K generated images and its backward.

The data are random images in [0, 1] of the Stacked-MNIST shape: the step's cost does not depend
on pixel values, and this keeps the benchmark free of data files. The two methods are timed
interleaved (ABAB... over every width) so that changes in machine load hit all alike; the ratio
of medians is the figure to read (goal <= 1.10), and the step time of each width relative to
width 1 says what a wider network costs.

    python benchmarks/bench_gan_si_step.py [--widths 0.25 0.5 1 2 4] [--steps 40]
        [--threads 1] [--device cpu] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass

import torch

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


def make_trainer(method: str, width: float, device: str) -> Trainer:
    cfg = Config().replace(**{"method": method, "model.width_g": width, "model.width_d": width,
                              "loss.lam": 1.0, "loss.k": 64, "train.batch_size": 64,
                              "train.lr": 2e-4, "train.lr_d": 2e-4, "run.device": device})
    return Trainer(cfg, data=RandomStackedImages())


def timed_step(trainer: Trainer) -> float:
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    losses = trainer.train_step()
    float(torch.stack(list(losses.values())).sum())  # the loop's one host sync per step
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", nargs="+", type=float, default=[0.25, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per method and width")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    trainers = {(method, width): make_trainer(method, width, args.device)
                for width in args.widths for method in ("gan", "gan_si")}
    times: dict[tuple[str, float], list[float]] = {key: [] for key in trainers}
    for _ in range(5):  # warm-up: allocator, autograd graph caches
        for trainer in trainers.values():
            timed_step(trainer)
    for _ in range(args.steps):
        for key, trainer in trainers.items():
            times[key].append(timed_step(trainer))

    medians = {key: statistics.median(ts) for key, ts in times.items()}
    reference = min(args.widths, key=lambda w: abs(w - 1.0))
    load = os.getloadavg()[0]
    print(f"Stacked-MNIST networks, N = K = 64, {args.device}, torch {torch.__version__}, "
          f"{args.threads} threads, load avg {load:.2f}, {args.steps} steps each")
    print(f"{'width':>6s} {'gan ms':>8s} {'gan_si ms':>10s} {'gan_si/gan':>11s} "
          f"{'gan vs width ' + format(reference, 'g'):>16s}")
    rows = []
    for width in args.widths:
        gan, gan_si = medians[("gan", width)], medians[("gan_si", width)]
        rows.append({"width": width, "gan_ms": gan * 1e3, "gan_si_ms": gan_si * 1e3,
                     "ratio": gan_si / gan, "vs_reference": gan / medians[("gan", reference)]})
        print(f"{width:6g} {gan * 1e3:8.2f} {gan_si * 1e3:10.2f} {gan_si / gan:11.3f} "
              f"{rows[-1]['vs_reference']:16.2f}")
    print("goal: gan_si / gan <= 1.10 at every width")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "device": args.device, "load_avg": load,
                       "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
