"""Ray Tune's overhead on one trial: the trial's wall time under Tune over the same training run
bare (goal: trial time under Tune / bare <= 1.05 for a trial of about a minute).

Both sides train one flat config on one CPU thread (default: GAN-SI on gmm25, 8,000 steps,
an evaluation of 50,000 samples every 1,000 steps, so 8 reports and checkpoints).

* Bare: ``Trainer(cfg).fit(report=...)`` in a fresh Python process with
  ``torch.set_num_threads(1)``. With ``--bare-report full`` (the default) each evaluation does what
  the trainable does minus Tune: save the checkpoint, its metrics and a picture of the samples to a
  temporary directory; with ``--bare-report none`` fit gets no report at all. Timed: from the
  config to the end of fit (as the trial's own clock), and the whole process (Python start and
  imports included).
* Tune: a Tuner over ``tune.with_resources(train_sigdist, {"cpu": 1})`` with that one config as
  ``param_space``, ``RunConfig(storage_path=<temp dir>)`` and the study's MLflow callback
  (:class:`MlflowTrialCallback`) on a sqlite store in a temporary directory, under a parent run
  from ``start_study_run``. Timed: the trial's ``time_total_s`` (Tune's clock: from the training
  function's start to its last report), and the whole ``tuner.fit()``. Ray starts once, before
  any timing; its start-up time is printed apart.

The two sides run interleaved (bare, tune, bare, tune, ...) because this machine's load changes;
the ratios are of medians.

    python benchmarks/bench_tune_overhead.py [--steps 8000 --eval-every 1000 --repeats 2
        --bare-report full|none --set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from study_bench import add_trial_flags, fit_tracked, flat_config, shown_config  # noqa: E402

from sigdist.config import ConfigError, from_flat  # noqa: E402

GOAL = 1.05



# ---------------------------------------------------------------- bare, in a child process
def bare_child(flat: dict, report_kind: str) -> None:
    """Runs in the child: one bare training run; prints its timing as one JSON line."""
    import torch

    torch.set_num_threads(1)
    from sigdist.study.trainable import write_evaluation
    from sigdist.train import Trainer

    reports = 0

    def report(trainer: Trainer, metrics: dict[str, float]) -> None:
        # The trainable's per-evaluation work, without tune.report.
        nonlocal reports
        reports += 1
        with tempfile.TemporaryDirectory() as directory:
            write_evaluation(trainer, metrics, directory)

    start = time.perf_counter()
    cfg = from_flat(dict(flat))
    trainer = Trainer(cfg)
    trainer.fit(report=report if report_kind == "full" else None)
    fit_s = time.perf_counter() - start
    print(json.dumps({"fit_s": fit_s, "reports": reports, "steps": trainer.step}))


def run_bare(flat: dict, report_kind: str) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--bare-child",
                           json.dumps(flat), "--bare-report", report_kind],
                          capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bare run failed (status {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "process_s": process_s}


# ---------------------------------------------------------------- under Ray Tune
def run_tune(flat: dict, workdir: str, uri: str, experiment: str, index: int) -> dict:
    grid, fit_s = fit_tracked(flat, name=f"tune_overhead_{index}", workdir=workdir, uri=uri,
                              experiment=experiment)
    result = grid[0]
    if result.error is not None:
        sys.exit(f"the trial failed: {result.error}")
    return {"trial_s": float(result.metrics["time_total_s"]), "tuner_fit_s": fit_s,
            "reports": int(result.metrics["training_iteration"]),
            "steps": int(result.metrics["step"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_trial_flags(parser, steps=8000, eval_every=1000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side")
    parser.add_argument("--bare-report", choices=("full", "none"), default="full",
                        help="full: the bare run saves what the trainable saves per "
                        "evaluation; none: fit without a report")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs Ray may use")
    parser.add_argument("--bare-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child is not None:
        bare_child(json.loads(args.bare_child), args.bare_report)
        return
    if args.repeats < 1:
        parser.error(f"--repeats: got {args.repeats}; allowed: an integer >= 1")
    try:
        flat = flat_config(args)
    except ConfigError as err:
        parser.error(str(err))

    import mlflow
    import ray
    import torch

    print(f"Ray Tune overhead on one trial: ray {ray.__version__}, mlflow {mlflow.__version__}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, 1 torch thread per run")
    print(f"  config (others as defaulted for the data set): {shown_config(flat)}")
    print(f"  bare report: {args.bare_report} ("
          + ("checkpoint, metrics.json and a sample picture per evaluation, as the trainable"
             if args.bare_report == "full" else "fit(report=None)") + ")")
    with tempfile.TemporaryDirectory(prefix="bench_tune_overhead_") as workdir:
        uri = f"sqlite:///{os.path.join(workdir, 'mlflow.db')}"
        experiment = "bench_tune_overhead"
        client = mlflow.MlflowClient(uri)
        # artifacts beside the store, not in the current directory
        client.create_experiment(experiment,
                                 artifact_location=Path(workdir, "artifacts").as_uri())
        start = time.perf_counter()
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False,
                 log_to_driver=False)
        print(f"  ray.init (not in any timing below): {time.perf_counter() - start:.1f} s, "
              f"num_cpus={args.num_cpus}")
        bare, tuned = [], []
        try:
            for index in range(args.repeats):
                load = os.getloadavg()[0]
                bare.append(run_bare(flat, args.bare_report))
                b = bare[-1]
                print(f"  [{index + 1}] bare  load {load:4.2f}  fit {b['fit_s']:7.2f} s  "
                      f"process {b['process_s']:7.2f} s  ({b['steps']} steps, "
                      f"{b['reports']} reports)", flush=True)
                load = os.getloadavg()[0]
                tuned.append(run_tune(flat, workdir, uri, experiment, index))
                t = tuned[-1]
                print(f"  [{index + 1}] tune  load {load:4.2f}  trial {t['trial_s']:7.2f} s  "
                      f"tuner.fit {t['tuner_fit_s']:7.2f} s  ({t['steps']} steps, "
                      f"{t['reports']} reports)", flush=True)
        finally:
            ray.shutdown()

    def median(rows: list[dict], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    bare_fit, bare_process = median(bare, "fit_s"), median(bare, "process_s")
    trial, tuner_fit = median(tuned, "trial_s"), median(tuned, "tuner_fit_s")
    print(f"Medians over {args.repeats} runs each (load avg now "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}):")
    print(f"  bare fit {bare_fit:.2f} s, bare process {bare_process:.2f} s, "
          f"trial under Tune {trial:.2f} s, tuner.fit() {tuner_fit:.2f} s")
    ratio = trial / bare_fit
    print(f"  trial time under Tune / bare fit:      {ratio:.3f}  (goal <= {GOAL}: "
          f"{'met' if ratio <= GOAL else 'not met'})")
    print(f"  tuner.fit() / bare fit:                 {tuner_fit / bare_fit:.3f}")
    print(f"  tuner.fit() / bare process:             {tuner_fit / bare_process:.3f}")


if __name__ == "__main__":
    main()
