"""Sweep GAN-SI on the 25-Gaussian grid (Table 1): Optuna over lam (with the plain GAN as a
baseline arm) and K, through Ray Tune, minimising KL(p_gen || p_true).

    python studies/gmm25_sweep.py [--address auto] [--num-samples N] [--max-concurrent N]
        [--cpus-per-trial C] [--gpus-per-trial G] [--seed S] [--smoke-test]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from sigdist.study.runner import (  # noqa: E402
    StudyOptions,
    best_trials_table,
    check_options,
    run_study,
    study_parser,
    validated_base,
)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    check_options(args, parser)
    if args.smoke_test:
        base = {"train.steps": 20, "run.eval_every": 10, "run.eval_samples": 2000,
                "train.batch_size": 64}
        num_samples, k_choices = args.num_samples or 4, (16, 32)
    else:
        base = {"train.steps": 8000, "run.eval_every": 1000}
        num_samples, k_choices = args.num_samples or 12, (64, 256, 1024)
    base = validated_base({**base, "data.name": "gmm25", "method": "gan_si",
                           "seed": args.seed}, parser)
    options = StudyOptions(
        name="gmm25_sweep" + ("_smoke" if args.smoke_test else ""), base=base,
        num_samples=num_samples, max_concurrent=args.max_concurrent or 2,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        seed=args.seed, address=args.address, storage_path=os.path.abspath(args.storage_path))
    results = run_study(options, k_choices=k_choices, sizes=("M",))
    print("\nbest trials (lowest KL):")
    print(best_trials_table(results, options.metric, options.mode))
    return 1 if results.num_errors == len(results) else 0


if __name__ == "__main__":
    sys.exit(main())
