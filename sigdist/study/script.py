"""The command line shared by the study scripts in ``studies/``: flags, checks, run, report."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sigdist.study.runner import (
    OBJECTIVES,
    SpaceFn,
    StudyOptions,
    check_options,
    open_study_run,
    optuna_storage_url,
    pinned_keys,
    prepare_storage,
    prepare_tracking,
    run_study,
    study_name,
    study_parser,
    validated_base,
)


@dataclass(frozen=True)
class Profile:
    """A study's size on one kind of machine: trial config, number of trials, search space."""

    base: dict[str, Any]
    num_samples: int
    max_concurrent: int
    space: SpaceFn | None = None  # the define-by-run search space (None: a grid study)
    # a grid study instead of Optuna's search (see StudyOptions.grid / .tied)
    grid: dict[str, tuple] = field(default_factory=dict)
    tied: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyScript:
    prefix: str  # names the MLflow experiment and, with a time, each study
    description: str
    data_name: str
    smoke: Profile  # --smoke-test: seconds on a CPU
    cpu: Profile  # the default on a CPU machine
    gpu: Profile  # the default where trials get GPUs: more trials, more steps
    objectives: dict[str, tuple] = field(default_factory=lambda: OBJECTIVES)  # --objective
    # (base, args, parser) -> base: readies the data before Ray starts (parser.error: exit 2)
    prepare: Callable[[dict[str, Any], argparse.Namespace, argparse.ArgumentParser],
                      dict[str, Any]] | None = None

    def profile(self, args: argparse.Namespace) -> tuple[str, Profile]:
        if args.smoke_test:
            return "smoke", self.smoke
        return ("gpu", self.gpu) if args.gpus_per_trial > 0 else ("cpu", self.cpu)


def _default_gpus_per_trial() -> float:
    import torch

    return 0.25 if torch.cuda.is_available() else 0.0


def quiet_study_output() -> None:
    """What every study driver prints: Ray's classic progress table, none of its notices."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's classic progress table (CLIReporter: a row per trial with its lam, K and size);
    # the newer output prints a config box per trial instead
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's warning that checkpoints come fast: a study checkpoints at every evaluation by
    # design (each report is a resumable point); the warning said nothing actionable
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's notice on every start that token authentication is on (it stays on; the README
    # says so) and how to turn it off
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)


def main(script: StudyScript, argv: list[str] | None = None) -> int:
    quiet_study_output()
    parser = study_parser(script.description, script.objectives)
    args = parser.parse_args(argv)
    check_options(args, parser)
    if args.gpus_per_trial is None:
        args.gpus_per_trial = _default_gpus_per_trial()
    kind, profile = script.profile(args)
    base = validated_base({**profile.base, "data.name": script.data_name, "seed": args.seed},
                          args.set, parser)
    if script.prepare is not None:
        base = script.prepare(base, args, parser)
    # a key the user sets is pinned: it leaves the search or the grid (and stops following
    # another key)
    pinned = pinned_keys(args.set)
    grid = {k: v for k, v in profile.grid.items() if k not in pinned}
    tied = {k: v for k, v in profile.tied.items() if k not in pinned}
    if profile.grid and not grid:
        parser.error("--set pins every key of the grid: " + ", ".join(profile.grid)
                     + "; nothing is left to compare (run `sigdist train` for one run)")
    searched = list(grid)
    if profile.space is not None and not profile.grid:
        from sigdist.study.search import searched_keys

        searched = searched_keys(profile.space, {k: base[k] for k in pinned})
        if not searched:
            parser.error("--set pins every key the study searches ("
                         + ", ".join(searched_keys(profile.space, {}))
                         + "); nothing is left to search (run `sigdist train` for one run)")
    experiment = script.prefix + ("_smoke" if args.smoke_test else "")
    name = study_name(args, experiment, parser)
    tracking_uri = prepare_tracking(args, parser)
    storage_path = (os.path.abspath(args.storage_path) if "://" not in args.storage_path
                    else args.storage_path)
    _lock = prepare_storage(storage_path, name, parser)  # noqa: F841 (held until exit)
    if base["data.name"] == "mnist3" and base["data.source"] == "auto":
        # resolved once, here, after every check of the flags: every trial then records (and
        # uses) the source actually used
        from sigdist.data.mnist import resolve_source

        base["data.source"] = resolve_source(base["data.root"], "auto")
        print(f"data: Stacked MNIST from {base['data.source']} (data.source=auto)", flush=True)
    options = StudyOptions(
        name=name, experiment=experiment, base=base,
        num_samples=args.num_samples or profile.num_samples,
        max_concurrent=args.max_concurrent or profile.max_concurrent,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        seed=args.seed, address=args.address, storage_path=storage_path,
        tracking_uri=tracking_uri, objective=args.objective, resume=args.resume,
        space=None if profile.grid else profile.space, pinned=pinned, grid=grid, tied=tied,
        objectives=script.objectives)
    trials = options.num_samples * math.prod(len(values) for values in grid.values())
    print(f"study {name} ({kind} profile): {trials} trials"
          + (" (a grid: " + " x ".join(grid) + ")" if grid else "") + ", "
          f"{options.max_concurrent} at a time, {base['train.steps']} steps each; "
          f"tracking {tracking_uri}", flush=True)
    print(f"{'grid over' if grid else 'searching'}: {', '.join(searched)}; pinned: "
          + (", ".join(f"{k}={base[k]}" for k in pinned) or "nothing (--set KEY=VALUE pins)"),
          flush=True)
    parent = open_study_run(options)
    try:
        results = run_study(options, parent_run_id=parent)
        if was_interrupted(options, results, parent, trials):
            # Ray Tune catches Ctrl-C itself: it stops the running trials, saves the study
            # and returns as if done. The study is not done: it says so and exits 130.
            raise KeyboardInterrupt
        report(options, results, parent)
    except KeyboardInterrupt as err:
        end_study_run(tracking_uri, parent, err)
        print(f"\nstudy {name} interrupted; continue it with the same command and --resume "
              f"--name {name}", file=sys.stderr, flush=True)
        return 130
    except BaseException as err:  # every way out ends the parent run, saying why
        end_study_run(tracking_uri, parent, err)
        raise
    return 1 if results.num_errors == len(results) else 0


def was_interrupted(options: StudyOptions, results, parent_run_id: str, trials: int) -> bool:
    """Whether Tune returned before the study's end: fewer trials than planned, or trials
    the tracking callback found unfinished (tagged on the parent run)."""
    from mlflow import MlflowClient

    from sigdist.study.tracking import INTERRUPTED_TAG

    tags = MlflowClient(options.tracking_uri).get_run(parent_run_id).data.tags
    return len(results) < trials or INTERRUPTED_TAG in tags


def end_study_run(tracking_uri: str, parent_run_id: str, err: BaseException) -> None:
    """The parent run of a study that ended by an error or an interrupt: KILLED, with why."""
    from mlflow import MlflowClient

    from sigdist.study.tracking import ENDED_TAG

    client = MlflowClient(tracking_uri)
    reason = "interrupted" if isinstance(err, KeyboardInterrupt) else (
        f"{type(err).__name__}: {err}"[:4000])
    client.set_tag(parent_run_id, ENDED_TAG, reason)
    client.set_terminated(parent_run_id, status="KILLED")


def grid_report(options: StudyOptions):
    """A grid study's report: its table (printed, and written as ``grid.md`` beside Ray's
    results) and the capacity x budget map, both per cell over the seeds."""
    from sigdist.study.grid import (
        capacity_map_figure,
        grid_rows,
        learning_curves_figure,
        summarize,
        summary_table,
    )

    keys = [k for k in options.grid if k != "seed"]

    def make(results) -> dict[str, Any]:
        summary = summarize(grid_rows(results, keys), keys)
        table = summary_table(summary, keys)
        print("\ngrid (mean ± standard error over seeds; each seed's value in brackets):")
        print(table)
        if "://" not in options.study_dir and os.path.isdir(options.study_dir):
            with open(os.path.join(options.study_dir, "grid.md"), "w") as fh:
                fh.write(table + "\n")
        if not summary:
            return {}
        figures = {"learning_curves": learning_curves_figure(summary, keys, title=options.name)}
        x_key = keys[-1]
        if len(keys) >= 2 and all(isinstance(e[x_key], int | float) for e in summary):
            figures["capacity_map"] = capacity_map_figure(summary, x_key=x_key,
                                                          line_key=keys[0], title=options.name)
        if "://" not in options.study_dir and os.path.isdir(options.study_dir):
            for name, figure in figures.items():
                figure.savefig(os.path.join(options.study_dir, f"{name}.png"), dpi=100)
        return figures

    return make


def report(options: StudyOptions, results, parent_run_id: str) -> None:
    from sigdist.study.report import (
        LOCAL_UI,
        best_trials_table,
        finish_study_run,
        optuna_figures,
        outcome_counts,
        pareto_table,
        settle_lost_optuna_trials,
        ui_command,
    )
    if options.grid:
        figures = grid_report(options)(results)
    else:
        storage_url = optuna_storage_url(options)
        settle_lost_optuna_trials(storage_url, options.name)
        figures = optuna_figures(storage_url, options.name, options.metrics)
    finish_study_run(options.tracking_uri, parent_run_id, results, figures=figures,
                     metric=options.metrics[-1], mode=options.modes[-1])
    counts = outcome_counts(results)
    print(f"\n{len(results)} trials: " + ", ".join(f"{n} {what}" for what, n in counts.items())
          + ".")
    names = {"high_quality": "high quality", "kl": "KL", "inception_score": "IS", "fid": "FID"}
    if len(options.metrics) > 1:
        print(f"Pareto front ({' vs '.join(names[m] for m in options.metrics)}):")
        print(pareto_table(results, options.metrics, options.modes) + "\n")
    metric, mode = options.scheduler_metric
    print(f"best trials ({'lowest' if mode == 'min' else 'highest'} {names[metric]}):")
    print(best_trials_table(results, metric, mode))
    print(f"\nMLflow: experiment {options.experiment!r}, parent run {options.name!r}.")
    from mlflow import MlflowClient

    url = MlflowClient(options.tracking_uri).get_run(parent_run_id).data.tags.get(
        "sigdist.compare_url")
    print(f"Serve it: {ui_command(options.tracking_uri)}")
    if url:
        if options.tracking_uri.startswith(("http://", "https://")):
            url = url.replace(LOCAL_UI, options.tracking_uri.rstrip("/"), 1)
        print(f"The trials side by side (lam = sig_weight, K, size, modes, KL): {url}")
    sys.stdout.flush()
