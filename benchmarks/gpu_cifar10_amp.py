"""Do bf16 autocast and channels_last pay on a GPU, and do they keep IS / FID within noise?
One prepared script for one CUDA machine (about 10 minutes on an H100 at the defaults).

1. The Inception path against the known answer: the inception score of real CIFAR-10 training
   images (published: about 11.24 on 50,000; a little lower on fewer) and the FID of those
   images against the training set's statistics (small: they are part of it).
2. Step time of the four methods on the CIFAR-10 networks (``--width`` 1, N = K = 64) in each of the
   four settings (fp32, bf16, channels_last, both), timed interleaved in one process.
3. Short runs of DCGAN-SI and WGAN-GP-SI, fp32 and bf16 + channels_last, over ``--seeds``:
   IS / FID at the end. The settings keep IS / FID within noise where their difference is
   within the fp32 seeds' spread.

Needs CIFAR-10 under ``--data-root`` (the python version; see README, CIFAR-10) and the
Inception weights (torch-fidelity's cache or ``--inception-weights``): the machine may be
offline, so bring both. Writes ``OUT/results.json`` and prints the tables.

    python benchmarks/gpu_cifar10_amp.py --data-root data [--inception-weights PATH]
        [--steps 3000] [--eval-samples 10000] [--seeds 0 1] [--out runs/gpu_cifar10_amp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from bench_cifar10_step import METHODS, measure  # noqa: E402

from sigdist.config import from_flat  # noqa: E402
from sigdist.evaluation import build_scorer  # noqa: E402
from sigdist.train import Trainer  # noqa: E402

SETTINGS = {"fp32": (False, False), "bf16": (True, False), "channels_last": (False, True),
            "bf16+channels_last": (True, True)}


def config(args: argparse.Namespace, **flat) -> dict:
    stand_in = {"data.stand_in": True, "metrics.extractor": "stand-in"} if args.stand_in else {}
    return {"data.name": "cifar10", "data.root": args.data_root, "data.download": False,
            "metrics.inception_weights": args.inception_weights, "run.device": args.device,
            **stand_in, **flat}


def real_data_check(args: argparse.Namespace) -> dict:
    trainer = Trainer(from_flat(config(args)))
    start = time.perf_counter()
    # the training set's FID statistics (computed once, cached under data.root)
    scorer = build_scorer(trainer.cfg, trainer.data, trainer.device)
    reference_s = time.perf_counter() - start
    real = trainer.data.images[:args.eval_samples]
    start = time.perf_counter()
    metrics = scorer(real)
    return {**metrics, "scoring_s": time.perf_counter() - start, "reference_s": reference_s}


def step_times(args: argparse.Namespace) -> dict:
    out = {}
    for name, (bf16, channels_last) in SETTINGS.items():
        namespace = argparse.Namespace(width=args.width, steps=args.timed_steps, device=args.device,
                                       bf16=bf16, channels_last=channels_last)
        out[name] = {method: seconds * 1e3 for method, seconds in measure(namespace).items()}
    return out


def short_runs(args: argparse.Namespace) -> list[dict]:
    rows = []
    for method in ("gan_si", "wgan_gp_si"):
        for name in ("fp32", "bf16+channels_last"):
            bf16, channels_last = SETTINGS[name]
            for seed in args.seeds:
                cfg = from_flat(config(args, **{
                    "method": method, "seed": seed, "train.steps": args.steps,
                    "model.width_g": args.width, "model.width_d": args.width,
                    "run.eval_every": args.steps, "run.eval_samples": args.eval_samples,
                    "run.bf16": bf16, "run.channels_last": channels_last}))
                start = time.perf_counter()
                metrics = Trainer(cfg).fit()
                rows.append({"method": method, "setting": name, "seed": seed,
                             "seconds": time.perf_counter() - start,
                             "inception_score": metrics["inception_score"],
                             "fid": metrics["fid"]})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--inception-weights", default="")
    parser.add_argument("--steps", type=int, default=3000, help="steps of each short run")
    parser.add_argument("--eval-samples", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--timed-steps", type=int, default=50)
    parser.add_argument("--width", type=float, default=1.0, help="model.width_g = width_d")
    parser.add_argument("--out", default="runs/gpu_cifar10_amp")
    # a dry run of the script itself: CPU, the stand-in data and extractor; numbers meaningless
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--stand-in", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: this script measures the GPU path")
    if args.stand_in:
        from sigdist.data.cifar10 import write_stand_in

        write_stand_in(args.data_root)
    os.makedirs(args.out, exist_ok=True)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (dry run)"
    results = {"device": device, "torch": torch.__version__,
               "args": vars(args)}
    results["real_data"] = real_data_check(args)
    print("real CIFAR-10 training images:", json.dumps(results["real_data"]), flush=True)
    results["ms_per_step"] = step_times(args)
    print(f"\n{'setting':>20s} " + " ".join(f"{m:>11s}" for m in METHODS))
    for name, times in results["ms_per_step"].items():
        fp32 = results["ms_per_step"]["fp32"]
        print(f"{name:>20s} " + " ".join(f"{times[m]:8.2f} ms" for m in METHODS)
              + "   vs fp32: " + " ".join(f"{fp32[m] / times[m]:.2f}x" for m in METHODS))
    results["runs"] = short_runs(args)
    print(f"\n{'method':>11s} {'setting':>20s} {'IS (seeds)':>24s} {'FID (seeds)':>24s}")
    for method in ("gan_si", "wgan_gp_si"):
        for name in ("fp32", "bf16+channels_last"):
            rows = [r for r in results["runs"] if r["method"] == method and r["setting"] == name]
            scores = [r["inception_score"] for r in rows]
            fids = [r["fid"] for r in rows]
            print(f"{method:>11s} {name:>20s} {statistics.mean(scores):7.3f} "
                  f"({' '.join(f'{v:.2f}' for v in scores):>14s}) {statistics.mean(fids):7.2f} "
                  f"({' '.join(f'{v:.1f}' for v in fids):>14s})")
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"\nwrote {os.path.join(args.out, 'results.json')}")


if __name__ == "__main__":
    main()
