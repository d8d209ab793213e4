"""What a seed population costs on this machine: P members trained in one run
(``run.seeds = P``) against the P single runs of the same seeds one after the other, as
ratios measured in one run, for Stacked MNIST (DCGAN-SI) at widths 0.125, 0.25 and 1 and the
25-Gaussian grid (GAN-SI and SIG); both ways of running the members (``run.member_kernels``:
``loop``, each member's own kernels; ``vmap``, one batched kernel for all); and the share of a
3,000-step Stacked-MNIST trial that scoring its P members takes.

    python benchmarks/bench_population.py [--members 4] [--steps 20] [--rounds 3]
        [--threads 1] [--device cpu] [--json OUT]

Each round times ``--steps`` steps of the population and of each single run in turn (the
order rotating), so a load change on the machine touches all alike; the table gives the
median over rounds of cost = population time / (P x single-run time): 1 is as cheap as the
runs one by one, below 1 cheaper. Evaluation is timed apart (26,000 samples a member).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from bench_method_steps import timed_steps  # seconds per step, synchronised on a GPU

from sigdist.config import from_flat
from sigdist.train import Trainer

CASES = {  # name: flat config (batch and K as the studies train them)
    "mnist3 gan_si width 0.125": {"data.name": "mnist3", "method": "gan_si", "model.size": "S"},
    "mnist3 gan_si width 0.25": {"data.name": "mnist3", "method": "gan_si", "model.size": "M"},
    "mnist3 gan_si width 1": {"data.name": "mnist3", "method": "gan_si", "model.size": "L"},
    "gmm25 gan_si": {"data.name": "gmm25", "method": "gan_si"},
    "gmm25 sig": {"data.name": "gmm25", "method": "sig"},
}


def config(flat: dict, args: argparse.Namespace, seed: int, members: int, kernels: str):
    extra = {"data.source": "mnist-5k", "data.root": args.data_root} if (
        flat["data.name"] == "mnist3") else {}
    return from_flat({**flat, **extra, "seed": seed, "run.seeds": members,
                      "run.member_kernels": kernels, "run.device": args.device,
                      "train.steps": 10**6})


def measure(flat: dict, args: argparse.Namespace) -> dict:
    p = args.members
    runs = {"loop": Trainer(config(flat, args, 0, p, "loop")),
            "vmap": Trainer(config(flat, args, 0, p, "vmap"))}
    runs.update({f"single {i}": Trainer(config(flat, args, i, 1, "loop")) for i in range(p)})
    for trainer in runs.values():  # warm-up: kernels chosen, memory pooled
        timed_steps(trainer, 2)
    step_s: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            step_s[name].append(timed_steps(runs[name], args.steps))
    singles = [sum(step_s[f"single {i}"][r] for i in range(p)) for r in range(args.rounds)]
    return {kernels: round(statistics.median(
        step_s[kernels][r] / singles[r] for r in range(args.rounds)), 3)
        for kernels in ("loop", "vmap")} | {
        "single_step_ms": round(statistics.median(singles) / p * 1e3, 2)}


def scoring_share(args: argparse.Namespace) -> dict:
    """Seconds to score each of P members' 26,000 samples (Stacked MNIST at M), against the
    training time of a 3,000-step trial of P members, extrapolated from timed steps."""
    cfg = config(CASES["mnist3 gan_si width 0.25"], args, 0, args.members, "loop")
    trainer = Trainer(cfg.replace(**{"run.eval_samples": 26_000}))
    step_s = timed_steps(trainer, args.steps)
    trainer.evaluate()  # the classifier loaded once, as in a trial
    start = time.perf_counter()
    trainer.evaluate()
    score_s = time.perf_counter() - start
    evaluations = 3  # the CPU profile's 3,000 steps, evaluated every 1,000
    train_s = 3000 * step_s
    return {"members": args.members, "score_s": round(score_s, 2),
            "train_3000_steps_s": round(train_s, 1),
            "share": round(evaluations * score_s / (train_s + evaluations * score_s), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    results = {}
    print(f"P = {args.members} members vs {args.members} single runs, {args.steps} steps x "
          f"{args.rounds} rounds, {args.threads} thread(s), {args.device}")
    print(f"{'case':28s} {'single ms/step':>14s} {'cost loop':>10s} {'cost vmap':>10s}")
    for name, flat in CASES.items():
        results[name] = measure(flat, args)
        r = results[name]
        print(f"{name:28s} {r['single_step_ms']:14.2f} {r['loop']:10.3f} {r['vmap']:10.3f}",
              flush=True)
    results["scoring"] = scoring_share(args)
    s = results["scoring"]
    print(f"scoring {s['members']} members x 26,000 samples: {s['score_s']} s; a 3,000-step "
          f"trial trains {s['train_3000_steps_s']} s: scoring is {s['share']:.1%} of it")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
