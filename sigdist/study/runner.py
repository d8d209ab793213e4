"""Run a study: Ray Tune over the trainable, Optuna proposing lam / K / size, ASHA stopping
collapsed trials early. Command-line flags are parsed and validated here, before Ray starts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from sigdist.config import ConfigError, from_flat


@dataclass(frozen=True)
class StudyOptions:
    name: str
    base: dict[str, Any]  # the flat config every trial starts from
    num_samples: int
    max_concurrent: int
    cpus_per_trial: float
    gpus_per_trial: float
    seed: int
    address: str | None
    storage_path: str
    metric: str = "kl"
    mode: str = "min"


def study_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--address", default=None, help="an existing Ray cluster ('auto')")
    parser.add_argument("--num-samples", type=int, default=None, help="trials")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials at once")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--gpus-per-trial", type=float, default=0.0,
                        help="a fraction lets several small trials share one GPU")
    parser.add_argument("--seed", type=int, default=0, help="seeds the search and the trials")
    parser.add_argument("--storage-path", default="runs/ray", help="Ray Tune's results")
    parser.add_argument("--smoke-test", action="store_true", help="a few tiny trials (seconds)")
    return parser


def check_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Bad flags end the program with status 2 and a message before anything starts."""
    for flag, value, low in (("--num-samples", args.num_samples, 1),
                             ("--max-concurrent", args.max_concurrent, 1),
                             ("--cpus-per-trial", args.cpus_per_trial, 0.01),
                             ("--gpus-per-trial", args.gpus_per_trial, 0.0),
                             ("--seed", args.seed, 0)):
        if value is not None and value < low:
            parser.error(f"{flag}: got {value}; allowed: a number >= {low}")


def validated_base(flat: dict[str, Any], parser: argparse.ArgumentParser) -> dict[str, Any]:
    try:
        return from_flat(flat).to_flat()
    except ConfigError as err:
        parser.error(str(err))
    raise AssertionError("unreachable")


def run_study(options: StudyOptions, **space_options: Any):
    """Run the study and return Ray Tune's ResultGrid."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from sigdist.study.search import optuna_searcher
    from sigdist.study.trainable import train_sigdist

    ray.init(address=options.address, ignore_reinit_error=True, include_dashboard=False)
    searcher = optuna_searcher(options.metric, options.mode, seed=options.seed, **space_options)
    # Each report is one evaluation; ASHA compares trials at equal numbers of evaluations.
    steps, every = options.base["train.steps"], options.base["run.eval_every"]
    max_t = max(1, -(-steps // every))
    scheduler = ASHAScheduler(metric=options.metric, mode=options.mode, max_t=max_t,
                              grace_period=max(1, max_t // 4), reduction_factor=2)
    trainable = tune.with_resources(
        train_sigdist, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space=options.base,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=options.num_samples,
                                    max_concurrent_trials=options.max_concurrent),
        run_config=tune.RunConfig(name=options.name, storage_path=options.storage_path,
                                  failure_config=tune.FailureConfig(max_failures=2)),
    )
    return tuner.fit()


def best_trials_table(results, metric: str, mode: str, count: int = 5) -> str:
    rows = [r for r in results if r.metrics and metric in r.metrics]
    rows.sort(key=lambda r: r.metrics[metric], reverse=(mode == "max"))
    lines = [f"{'method':8s} {'lam':>8s} {'k':>5s} {'size':>4s} {'modes':>6s} {'kl':>8s} "
             f"{'high_q':>7s} {'step':>6s}"]
    for r in rows[:count]:
        c, m = r.config, r.metrics
        lines.append(f"{c['method']:8s} {c['loss.lam']:8.3g} {c['loss.k']:5d} "
                     f"{c['model.size']:>4s} {m['modes']:6.0f} {m['kl']:8.3f} "
                     f"{m['high_quality']:7.3f} {m['step']:6.0f}")
    return "\n".join(lines)
