"""The command line shared by the study scripts in ``studies/``: flags, checks, run, report."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sigdist.config import parse_assignment
from sigdist.study.runner import (
    OBJECTIVES,
    StudyOptions,
    check_options,
    open_study_run,
    optuna_storage_url,
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
    space: dict[str, Any] = field(default_factory=dict)
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


def main(script: StudyScript, argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
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
    # a key the user sets is pinned: it leaves the grid (and stops following another key)
    pinned = {parse_assignment(text)[0] for text in args.set}
    grid = {k: v for k, v in profile.grid.items() if k not in pinned}
    tied = {k: v for k, v in profile.tied.items() if k not in pinned}
    if profile.grid and not grid:
        parser.error("--set pins every key of the grid: " + ", ".join(profile.grid)
                     + "; nothing is left to compare (run `sigdist train` for one run)")
    experiment = script.prefix + ("_smoke" if args.smoke_test else "")
    name = study_name(args, experiment, parser)
    tracking_uri = prepare_tracking(args, parser)
    storage_path = (os.path.abspath(args.storage_path) if "://" not in args.storage_path
                    else args.storage_path)
    _lock = prepare_storage(storage_path, name, parser)  # noqa: F841 (held until exit)
    options = StudyOptions(
        name=name, experiment=experiment, base=base,
        num_samples=args.num_samples or profile.num_samples,
        max_concurrent=args.max_concurrent or profile.max_concurrent,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        seed=args.seed, address=args.address, storage_path=storage_path,
        tracking_uri=tracking_uri, objective=args.objective, resume=args.resume,
        space=profile.space, grid=grid, tied=tied, objectives=script.objectives)
    trials = options.num_samples * math.prod(len(values) for values in grid.values())
    print(f"study {name} ({kind} profile): {trials} trials"
          + (" (a grid: " + " x ".join(grid) + ")" if grid else "") + ", "
          f"{options.max_concurrent} at a time, {base['train.steps']} steps each; "
          f"tracking {tracking_uri}", flush=True)
    parent = open_study_run(options)
    try:
        results = run_study(options, parent_run_id=parent)
        report(options, results, parent)
    except BaseException as err:  # every way out ends the parent run, saying why
        end_study_run(tracking_uri, parent, err)
        raise
    return 1 if results.num_errors == len(results) else 0


def end_study_run(tracking_uri: str, parent_run_id: str, err: BaseException) -> None:
    """The parent run of a study that ended by an error or an interrupt: KILLED, with why."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    reason = "interrupted" if isinstance(err, KeyboardInterrupt) else (
        f"{type(err).__name__}: {err}"[:4000])
    client.set_tag(parent_run_id, "sigdist.ended", reason)
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
        best_trials_table,
        finish_study_run,
        optuna_figures,
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
    failed = [r for r in results if r.error]
    print(f"\n{len(results)} trials, {len(failed)} failed.")
    names = {"high_quality": "high quality", "kl": "KL", "inception_score": "IS", "fid": "FID"}
    if len(options.metrics) > 1:
        print(f"Pareto front ({' vs '.join(names[m] for m in options.metrics)}):")
        print(pareto_table(results, options.metrics, options.modes) + "\n")
    metric, mode = options.scheduler_metric
    print(f"best trials ({'lowest' if mode == 'min' else 'highest'} {names[metric]}):")
    print(best_trials_table(results, metric, mode))
    print(f"\nMLflow: experiment {options.experiment!r}, parent run {options.name!r}.")
    print(f"Compare the trials: {ui_command(options.tracking_uri)}")
    sys.stdout.flush()
