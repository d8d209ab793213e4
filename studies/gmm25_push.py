"""Push SIG and GAN-SI on the 25-Gaussian grid (Table 1) towards high quality >= 0.95 and
KL <= 0.03: Optuna over the method, sigma, its annealing (start, length), lambda, K and the
learning rate, through Ray Tune with ASHA, every trial tracked in MLflow.

    python studies/gmm25_push.py [--num-samples N] [--max-concurrent N] [--set KEY=VALUE ...]
        [--tracking-uri URI] [--storage-path PATH] [--name NAME] [--seed S] [--smoke-test]

The same trainable, tracking callback and MLflow layout as the other studies; only the search
space is this study's own. The best trials' settings are then checked over 5 seeds with
``studies/reproduce.py table1 --set ...`` or ``benchmarks/compare_methods.py``.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any

import optuna

CPU = {"train.steps": 16000, "run.eval_every": 4000}
SMOKE = {"train.steps": 20, "run.eval_every": 10, "run.eval_samples": 2000,
         "train.batch_size": 64}


def search_space(trial: optuna.Trial, *, steps: int) -> dict[str, Any]:
    """Define-by-run: SIG or GAN-SI (lambda log-uniform in [0.3, 10]); sigma (a final kernel
    wider than the modes' std 0.05 still has point masses at the centres as its optimum, and
    reaches the generated mass left between modes), the annealing's start and length, K and
    the learning rate (both networks). Every name is a config key."""
    method = trial.suggest_categorical("method", ["sig", "gan_si"])
    if method == "gan_si":
        trial.suggest_float("loss.lam", 0.3, 10.0, log=True)
    trial.suggest_float("loss.sigma", 0.05, 0.3, log=True)
    trial.suggest_float("loss.sigma_start", 0.5, 4.0, log=True)
    trial.suggest_int("loss.sigma_anneal_steps", steps // 6, (3 * steps) // 4)
    trial.suggest_categorical("loss.k", [256, 1024])
    lr = trial.suggest_float("train.lr", 1.5e-3, 6e-3, log=True)
    return {"train.lr_d": lr}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from sigdist.study.report import best_trials_table, finish_study_run
    from sigdist.study.runner import (
        StudyOptions,
        check_options,
        open_study_run,
        optuna_storage_url,
        prepare_storage,
        prepare_tracking,
        study_parser,
        validated_base,
    )
    from sigdist.study.script import end_study_run
    from sigdist.study.tracking import MlflowTrialCallback
    from sigdist.study.trainable import train_sigdist

    parser = study_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    check_options(args, parser)
    profile = SMOKE if args.smoke_test else CPU
    base = validated_base({**profile, "data.name": "gmm25", "seed": args.seed}, args.set,
                          parser)
    experiment = "gmm25_push" + ("_smoke" if args.smoke_test else "")
    name = args.name or f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    tracking_uri = prepare_tracking(args, parser)
    storage_path = os.path.abspath(args.storage_path)
    _lock = prepare_storage(storage_path, name, parser)  # noqa: F841 (held until exit)
    options = StudyOptions(
        name=name, experiment=experiment, base=base,
        num_samples=args.num_samples or (2 if args.smoke_test else 12),
        max_concurrent=args.max_concurrent or 2, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=0.0, seed=args.seed, address=args.address, storage_path=storage_path,
        tracking_uri=tracking_uri)
    print(f"study {name}: {options.num_samples} trials of {base['train.steps']} steps, "
          f"{options.max_concurrent} at a time; tracking {tracking_uri}", flush=True)
    parent = open_study_run(options)
    try:
        searcher = OptunaSearch(
            space=functools.partial(search_space, steps=base["train.steps"]), metric="kl",
            mode="min", sampler=optuna.samplers.TPESampler(seed=args.seed, multivariate=True),
            storage=optuna.storages.RDBStorage(optuna_storage_url(options)), study_name=name)
        max_t = -(-base["train.steps"] // base["run.eval_every"])
        scheduler = ASHAScheduler(metric="kl", mode="min", max_t=max_t,
                                  grace_period=max(1, max_t // 2), reduction_factor=2)
        ray.init(address=args.address or "local", include_dashboard=False,
                 log_to_driver=False)
        tuner = tune.Tuner(
            tune.with_resources(train_sigdist, {"cpu": args.cpus_per_trial}),
            param_space=dict(base),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=options.num_samples,
                                        max_concurrent_trials=options.max_concurrent,
                                        reuse_actors=True),
            run_config=tune.RunConfig(
                name=name, storage_path=storage_path, verbose=1,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                callbacks=[MlflowTrialCallback(tracking_uri, parent, metric="kl", mode="min")]))
        results = tuner.fit()
        finish_study_run(tracking_uri, parent, results, figures={}, metric="kl", mode="min")
    except BaseException as err:  # every way out ends the parent run, saying why
        end_study_run(tracking_uri, parent, err)
        raise
    rows = sorted((r for r in results if r.metrics and "kl" in r.metrics),
                  key=lambda r: r.metrics["kl"])
    keys = ("method", "loss.lam", "loss.sigma", "loss.sigma_start", "loss.sigma_anneal_steps",
            "loss.k", "train.lr")
    print("\nbest trials (lowest KL at their last step):")
    print(best_trials_table(results, "kl", "min"))
    for result in rows[:8]:
        print(f"kl {result.metrics['kl']:.4f} hq {result.metrics['high_quality']:.4f} "
              f"modes {result.metrics['modes']:.0f} step {result.metrics['step']:.0f}  "
              + " ".join(f"{k}={result.config.get(k)}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
