"""Study throughput with trials run two at a time against one at a time, on two CPUs (goal: the
two-at-a-time study finishes >= 1.7x as fast).

The study: 4 trials of the same size (default: GAN-SI on gmm25, 4,000 steps, an evaluation of
50,000 samples every 500 steps), differing only in ``seed`` (``tune.grid_search``), each on
1 CPU (``tune.with_resources(train_sigdist, {"cpu": 1})``, so one torch thread), with the
study's MLflow callback (:class:`MlflowTrialCallback`) on a sqlite store in a temporary
directory, and no scheduler: every trial trains to its last step. Ray starts once with
``num_cpus=2``; then the same study runs with ``max_concurrent_trials=1`` and with
``max_concurrent_trials=2`` (in that order unless ``--order``), each timed as the whole
``tuner.fit()``. Also printed: the median of the trials' own ``time_total_s`` in each mode, which
shows how much a trial slows down when it shares the two cores, and the load average before each
phase (other work on the machine shows there).

    python benchmarks/bench_concurrency.py [--trials 4 --steps 4000 --eval-every 500
        --order 1,2 --no-reuse-actors --set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from study_bench import add_trial_flags, fit_tracked, flat_config, shown_config  # noqa: E402

from sigdist.config import ConfigError  # noqa: E402

GOAL = 1.7


def run_phase(flat: dict, seeds: list[int], concurrent: int, workdir: str, uri: str,
              experiment: str, reuse_actors: bool) -> dict:
    from ray import tune

    grid, wall = fit_tracked({**flat, "seed": tune.grid_search(seeds)},
                             name=f"concurrency_{concurrent}_at_a_time", workdir=workdir,
                             uri=uri, experiment=experiment, max_concurrent=concurrent,
                             reuse_actors=reuse_actors)
    errors = [str(result.error) for result in grid if result.error is not None]
    if errors:
        sys.exit(f"{len(errors)} trial(s) failed with {concurrent} at a time: {errors[0]}")
    trial_s = [float(result.metrics["time_total_s"]) for result in grid]
    steps = [int(result.metrics["step"]) for result in grid]
    if len(trial_s) != len(seeds) or min(steps) != flat["train.steps"]:
        sys.exit(f"expected {len(seeds)} trials of {flat['train.steps']} steps, got steps {steps}")
    return {"wall_s": wall, "trial_s": trial_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_trial_flags(parser, steps=4000, eval_every=500)
    parser.add_argument("--trials", type=int, default=4, help="trials in the study (seeds)")
    parser.add_argument("--order", default="1,2",
                        help="trials at a time, per phase, in this order (e.g. 2,1 or 1,2,1,2)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs Ray may use")
    parser.add_argument("--reuse-actors", action=argparse.BooleanOptionalAction, default=True,
                        help="reuse a trial's worker process for the next trial, as the "
                        "studies do (--no-reuse-actors: Tune's default, a process per trial)")
    args = parser.parse_args()
    try:
        order = [int(part) for part in args.order.split(",")]
    except ValueError:
        order = []
    if set(order) != {1, 2}:
        parser.error(f"--order: got {args.order!r}; allowed: a comma list of 1 and 2, "
                     "each at least once")
    if args.trials < 2:
        parser.error(f"--trials: got {args.trials}; allowed: an integer >= 2")
    try:
        flat = flat_config(args)
    except ConfigError as err:
        parser.error(str(err))
    seeds = [flat["seed"] + i for i in range(args.trials)]

    import mlflow
    import ray
    import torch

    print(f"Study throughput, 2 at a time vs 1 at a time: ray {ray.__version__}, "
          f"mlflow {mlflow.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"  {args.trials} trials (seeds {seeds}), 1 CPU / 1 torch thread each, no scheduler, "
          f"reuse_actors={args.reuse_actors}")
    print(f"  config (others as defaulted for the data set): {shown_config(flat)}")
    phases: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="bench_concurrency_") as workdir:
        uri = f"sqlite:///{os.path.join(workdir, 'mlflow.db')}"
        experiment = "bench_concurrency"
        # artifacts beside the store, not in the current directory
        mlflow.MlflowClient(uri).create_experiment(
            experiment, artifact_location=Path(workdir, "artifacts").as_uri())
        start = time.perf_counter()
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False,
                 log_to_driver=False)
        print(f"  ray.init (not in any timing below): {time.perf_counter() - start:.1f} s, "
              f"num_cpus={args.num_cpus}")
        try:
            for index, concurrent in enumerate(order):
                load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
                print(f"  phase {index + 1}: {concurrent} at a time, load avg before: {load}",
                      flush=True)
                phase = run_phase(flat, seeds, concurrent, os.path.join(workdir, str(index)),
                                  uri, experiment, args.reuse_actors)
                phases[concurrent].append(phase)
                trials = ", ".join(f"{s:.1f}" for s in phase["trial_s"])
                print(f"    tuner.fit {phase['wall_s']:7.1f} s   trials' time_total_s: "
                      f"{trials}", flush=True)
        finally:
            ray.shutdown()

    wall = {n: statistics.median(p["wall_s"] for p in runs) for n, runs in phases.items()}
    trial = {n: statistics.median(s for p in runs for s in p["trial_s"])
             for n, runs in phases.items()}
    print(f"Results (medians over phases of each mode; load avg now "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}):")
    for n in (1, 2):
        print(f"  {n} at a time: study wall {wall[n]:7.1f} s, "
              f"{args.trials * 3600 / wall[n]:6.1f} trials/hour, "
              f"trial time_total_s median {trial[n]:6.1f} s")
    ratio = wall[1] / wall[2]
    print(f"  throughput, 2 at a time / 1 at a time: {ratio:.2f}x  (goal >= {GOAL}x: "
          f"{'met' if ratio >= GOAL else 'not met'})")
    print(f"  trial slowdown when sharing, median time_total_s 2 / 1: {trial[2] / trial[1]:.2f}")
    overhead = statistics.median(p["wall_s"] - sum(p["trial_s"]) for p in phases[1])
    print(f"  1 at a time, study wall minus the sum of its trials' time_total_s: "
          f"{overhead:.1f} s (starting and stopping trials, between them)")


if __name__ == "__main__":
    main()
