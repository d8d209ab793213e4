"""What scoring Stacked MNIST costs on this machine: seconds per 26,000 samples for each digit
classifier (the ensemble's, the wide CNN, and LeNet with the max pooling it had before), the
ensemble against that single LeNet as a ratio from one run, and the share of a 3,000-step
trial (M, one seed, evaluated every 1,000 steps) that its evaluations take.

    python benchmarks/bench_scoring.py [--rounds 3] [--threads 1] [--data-root data]
        [--json OUT]

Each round times every classifier once on the same 26,000 samples, the order rotating, so
that a load change touches all alike; the table gives the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from bench_method_steps import timed_steps  # seconds per step, synchronised on a GPU

from sigdist.config import from_flat
from sigdist.data.mnist import load_mnist
from sigdist.metrics.classifier import (
    _PIXEL_MEAN,
    _PIXEL_STD,
    ENSEMBLE,
    LeNet,
    classify_channels,
    load_or_train_classifier,
)
from sigdist.train import Trainer


class PreviousLeNet(LeNet):
    """LeNet as it pooled before (``F.max_pool2d``, which also computes argmax indices)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = (images - _PIXEL_MEAN) / _PIXEL_STD
        hidden = F.max_pool2d(F.relu(self.conv1(hidden)), 2)
        hidden = F.max_pool2d(F.relu(self.conv2(hidden)), 2)
        return self.fc2(self.dropout(F.relu(self.fc1(hidden.flatten(1)))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    digits = load_mnist(args.data_root, "mnist-5k")
    classifiers = {f"{arch}{seed}": load_or_train_classifier(digits, args.data_root, seed=seed,
                                                             arch=arch)[0]
                   for arch, seed in (*ENSEMBLE, ("wide", 0))}
    previous = PreviousLeNet().eval()
    previous.load_state_dict(classifiers["lenet0"].state_dict())
    classifiers["lenet0, previous pooling"] = previous
    cfg = from_flat({"data.name": "mnist3", "data.source": "mnist-5k",
                     "data.root": args.data_root, "method": "gan_si", "model.size": "M",
                     "run.eval_samples": 26_000, "train.steps": 10**6})
    trainer = Trainer(cfg)
    samples = trainer.generate(26_000, batch_size=1000)
    assert torch.equal(classify_channels(previous, samples[:2000]),
                       classify_channels(classifiers["lenet0"], samples[:2000]))
    names = list(classifiers)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            start = time.perf_counter()
            classify_channels(classifiers[name], samples)
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    ensemble_names = [f"{arch}{seed}" for arch, seed in ENSEMBLE]
    ensemble_s = sum(median[name] for name in ensemble_names)
    before_s = median["lenet0, previous pooling"]
    print(f"26,000 samples (78,000 digits), {args.threads} thread(s), median of {args.rounds}:")
    for name in names:
        print(f"  {name:26s} {median[name]:6.2f} s")
    print(f"  ensemble {'+'.join(ensemble_names)}: {ensemble_s:.2f} s = "
          f"{ensemble_s / before_s:.2f} x the single LeNet as it pooled before")

    trainer.evaluate()  # the classifiers loaded once, as in a trial
    start = time.perf_counter()
    trainer.evaluate()
    evaluate_s = time.perf_counter() - start
    step_s = timed_steps(trainer, args.steps)
    train_s, evaluations = 3000 * step_s, 3
    share = evaluations * evaluate_s / (train_s + evaluations * evaluate_s)
    print(f"one evaluation (generate + score 26,000, ensemble): {evaluate_s:.2f} s; 3,000 steps "
          f"train {train_s:.0f} s: 3 evaluations are {share:.1%} of the trial")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "classify_s": median, "ensemble_s": ensemble_s,
                       "ensemble_over_previous_single": ensemble_s / before_s,
                       "evaluate_s": evaluate_s, "train_3000_steps_s": train_s,
                       "share": share}, fh, indent=1)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
