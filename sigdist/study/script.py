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

from sigdist.config import ConfigError, from_flat, parse_assignment
from sigdist.metrics.members import label
from sigdist.metrics.names import OBJECTIVES
from sigdist.study.runner import (
    SpaceFn,
    StudyOptions,
    check_name,
    check_options,
    end_on_sigterm_as_on_ctrl_c,
    open_study_run,
    optuna_storage_url,
    pinned_keys,
    pinned_values,
    prepare_storage,
    prepare_tracking,
    refuse_existing_study,
    resolve_grid,
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
    # run.seeds of every trial (--seeds-per-trial): a grid's seeds train inside its trials
    seeds_per_trial: int = 1


@dataclass(frozen=True)
class StudyScript:
    """One study of ``studies/``: its profiles, its objectives and, for a table or figure of the
    paper, its report. Every study runs through :func:`main`."""

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
    # keys that follow a grid key's value: {"data.name": {"ring": {"loss.sigma": 0.02}}}
    per_value: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    # the study's own report, built from MLflow alone (also by --report-only, nothing run):
    # (tracking URI, the studies' parent run ids, --out) -> the files written. Each run's
    # last checkpoint is then logged on its MLflow run, where the report finds it.
    report: Callable[[str, list[str], str], list[str]] | None = None

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
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the reports' reads
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
    # MLflow logs a traceback for a database error it then raises; the study reports the
    # error once, in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def parse_args(script: StudyScript, argv: list[str] | None = None
               ) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The study's flags, checked (bad ones: exit 2)."""
    parser = study_parser(script.description, script.objectives)
    if script.report is not None:
        parser.add_argument("--out", default="docs/results",
                            help="where the report (markdown and PNGs) is written (default: "
                            "docs/results; with --smoke-test: runs/smoke-report, so that a "
                            "smoke test never replaces a real report)")
        parser.add_argument("--report-only", nargs="+", default=None, metavar="STUDY",
                            help="run nothing: rebuild the report from these studies in MLflow "
                            "(by --name); a later study's runs replace an earlier one's of the "
                            "same grid value")
    args = parser.parse_args(argv)
    check_options(args, parser)
    args.explicit = given_flags(parser, argv)
    if script.report is not None and args.smoke_test and "out" not in args.explicit:
        args.out = os.path.join("runs", "smoke-report")  # docs/results holds real numbers
    if args.gpus_per_trial is None:
        args.gpus_per_trial = _default_gpus_per_trial()
    return parser, args


_NOT_GIVEN = object()


def given_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The destinations of the flags the command line gave, told apart from defaults: argparse
    fills in a default only where the namespace has no value yet."""
    actions = [a for a in parser._actions if a.dest != argparse.SUPPRESS]
    namespace = argparse.Namespace(**{
        a.dest: None if isinstance(a, argparse._AppendAction) else _NOT_GIVEN for a in actions})
    parser.parse_args(argv, namespace)
    return {a.dest for a in actions if getattr(namespace, a.dest) not in (_NOT_GIVEN, None)}


# A flag given on --resume, and the study setting it would change.
_FLAG_SETTINGS = {"num_samples": ("--num-samples", "num_samples"),
                  "max_concurrent": ("--max-concurrent", "max_concurrent"),
                  "objective": ("--objective", "objective"),
                  "member_objective": ("--member-objective", "member_objective"),
                  "smoke_test": ("--smoke-test", "profile"),
                  "seed": ("--seed", "base.seed"),
                  "seeds_per_trial": ("--seeds-per-trial", "base.run.seeds")}


def changed_settings(saved: dict[str, Any], given: dict[str, Any], explicit: set[str],
                     set_keys: tuple[str, ...]) -> list[str]:
    """What the flags of a resumed study's command line would change in the ``saved``
    settings it was started with: ``given`` are the settings this command line makes. Only
    flags it gave count; one left out takes the saved value."""
    def value(settings: dict[str, Any], name: str) -> Any:
        return settings["base"][name[5:]] if name.startswith("base.") else settings[name]

    changes = []
    for dest, (flag, name) in _FLAG_SETTINGS.items():
        if dest in explicit and value(given, name) != value(saved, name):
            changes.append(f"{flag} makes {name.removeprefix('base.')} {value(given, name)}, "
                           f"the study's is {value(saved, name)}")
    for key in set_keys:
        if key not in saved["pinned"]:
            changes.append(f"--set {key}: the study searches or varies it")
        elif given["base"][key] != saved["base"][key]:
            changes.append(f"--set {key}={given['base'][key]}, the study's is "
                           f"{saved['base'][key]}")
    return changes


def build_options(script: StudyScript, args: argparse.Namespace,
                  parser: argparse.ArgumentParser) -> tuple[StudyOptions, Any]:
    """The study's options from its flags, every check done before Ray starts (exit 2 on a
    bad one): the validated base config and each grid cell, the pinned keys, the name (a new
    one, or the study to resume), the tracking URI and the storage path, whose name lock is
    returned with the options (held until the process ends). The study scripts and the
    benchmarks build their options here."""
    kind, profile = script.profile(args)
    experiment = script.prefix + ("_smoke" if args.smoke_test else "")
    storage_path = (os.path.abspath(args.storage_path) if "://" not in args.storage_path
                    else args.storage_path)  # a cloud path goes to Tune as it is
    name = study_name(args, experiment, storage_path, parser)
    tracking_uri = prepare_tracking(args, parser)
    seeds = args.seeds_per_trial or profile.seeds_per_trial
    if args.seeds_per_trial is not None and any(
            text.partition("=")[0].strip() == "run.seeds" for text in args.set):
        parser.error("--seeds-per-trial and --set run.seeds both set the seeds per trial; "
                     "give one")
    base = validated_base({**profile.base, "data.name": script.data_name, "seed": args.seed,
                           "run.seeds": seeds}, args.set, parser)
    if args.member_objective == "worst" and base["run.seeds"] < 2:
        parser.error("--member-objective worst: a trial of one seed has no worst member; "
                     "allowed with --seeds-per-trial 2 or more")
    if script.prepare is not None:
        base = script.prepare(base, args, parser)
    # a key the user sets is pinned: it leaves the search or the grid (and stops following
    # another key)
    pinned = pinned_keys(args.set)
    num_samples = args.num_samples or profile.num_samples
    max_concurrent = args.max_concurrent or profile.max_concurrent
    objective, member_objective = args.objective, args.member_objective
    saved = resumed_settings(args, tracking_uri, experiment, name) if args.resume else None
    if args.resume and saved is None:
        refuse_a_foreign_study(script, args, tracking_uri, experiment, name, parser)
    if saved is not None:  # a resumed study keeps the settings it was started with
        given = {"profile": kind, "num_samples": num_samples, "max_concurrent": max_concurrent,
                 "objective": objective, "member_objective": member_objective,
                 "pinned": list(pinned), "base": base}
        set_keys = tuple(sorted({parse_assignment(text)[0] for text in args.set}))
        changes = changed_settings(saved, given, args.explicit, set_keys)
        if changes:
            parser.error(f"--resume: the study {name!r} keeps the settings it was started "
                         "with; these flags would change them: " + "; ".join(changes)
                         + ". Drop them, or start a new study with another --name")
        kind, profile = saved["profile"], getattr(script, saved["profile"])
        base, pinned = saved["base"], tuple(saved["pinned"])
        num_samples, max_concurrent = saved["num_samples"], saved["max_concurrent"]
        objective, member_objective = saved["objective"], saved["member_objective"]
    grid = {k: v for k, v in profile.grid.items() if k not in pinned}
    tied = {k: v for k, v in profile.tied.items() if k not in pinned}
    per_value = {key: {value: {k: v for k, v in keys.items() if k not in pinned}
                       for value, keys in values.items()}
                 for key, values in script.per_value.items() if key in grid}
    if profile.grid and not grid:
        parser.error("--set pins every key of the grid: " + ", ".join(profile.grid)
                     + "; nothing is left to compare (run `sigdist train` for one run)")
    try:  # every cell is a valid config (a method the data set cannot take: exit 2)
        resolve_grid(base, grid, tied=tied, per_value=per_value,
                     pins={k: base[k] for k in pinned})
    except ConfigError as err:
        parser.error(str(err))
    if profile.space is not None and not profile.grid:
        from sigdist.study.search import searched_keys

        if not searched_keys(profile.space, {k: base[k] for k in pinned}):
            parser.error("--set pins every key the study searches ("
                         + ", ".join(searched_keys(profile.space, {}))
                         + "); nothing is left to search (run `sigdist train` for one run)")
    if not args.resume:  # a study running now is refused by its lock, next
        refuse_existing_study(name, storage_path, tracking_uri, experiment, parser)
    lock = prepare_storage(storage_path, name, parser)
    if base["data.name"] == "mnist3" and base["data.source"] == "auto":
        # resolved once, here, after every check of the flags: every trial then records (and
        # uses) the source actually used
        from sigdist.data.mnist import resolve_source

        base["data.source"] = resolve_source(base["data.root"], "auto")
        print(f"data: Stacked MNIST from {base['data.source']} (data.source=auto)", flush=True)
    options = StudyOptions(
        name=name, experiment=experiment, base=base,
        num_samples=num_samples, max_concurrent=max_concurrent,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        seed=base["seed"], address=args.address, storage_path=storage_path,
        tracking_uri=tracking_uri, objective=objective, resume=args.resume,
        space=None if profile.grid else profile.space, pinned=pinned, grid=grid, tied=tied,
        per_value=per_value, objectives=script.objectives, profile=kind,
        member_objective=member_objective)
    return options, lock


def resumed_settings(args: argparse.Namespace, tracking_uri: str, experiment: str, name: str
                     ) -> dict[str, Any] | None:
    """The settings the study to resume was started with, from its MLflow parent run (None
    for a study started before studies kept them). A database not there is not created."""
    from sigdist.study.tracking import saved_study_settings, sqlite_path

    database = sqlite_path(tracking_uri)
    if database is not None and not os.path.exists(database):
        return None
    saved = saved_study_settings(tracking_uri, experiment, name)
    if saved is not None:  # JSON's lists and numbers back into the config's own values
        saved["base"] = from_flat(saved["base"]).to_flat()
    return saved


def refuse_a_foreign_study(script: StudyScript, args: argparse.Namespace, tracking_uri: str,
                           experiment: str, name: str, parser: argparse.ArgumentParser) -> None:
    """A study to resume has its parent run in this script's experiment of this tracking URI,
    or exit 2: another script's study, or the smoke test's of a full one, or one tracked
    elsewhere would be restarted under the wrong space, profile or database."""
    from mlflow import MlflowClient

    from sigdist.study.tracking import find_study_runs, sqlite_path

    database = sqlite_path(tracking_uri)
    if database is not None and not os.path.exists(database):
        parser.error(f"--resume: the study {name!r} is not tracked in {tracking_uri} (no such "
                     "database); give the --tracking-uri it was started with")
    client = MlflowClient(tracking_uri)

    def holds(experiment_name: str) -> bool:
        found = client.get_experiment_by_name(experiment_name)
        return bool(found and find_study_runs(client, [found.experiment_id], name,
                                              max_results=1))

    if holds(experiment):
        return  # a study started before studies kept their settings
    other = script.prefix if args.smoke_test else script.prefix + "_smoke"
    if holds(other):
        parser.error(f"--resume: {name!r} is a study of {other!r}: "
                     + ("drop --smoke-test" if args.smoke_test else "add --smoke-test"))
    parser.error(f"--resume: no study of {script.prefix} named {name!r} in {tracking_uri} "
                 f"(experiment {experiment!r}); give the --tracking-uri it was started with, "
                 "and the script that started it")


def describe(options: StudyOptions) -> str:
    """The two lines a study prints before Ray starts: its size and what it varies."""
    grid, trials = options.grid, planned_trials(options)
    if options.space is not None:
        from sigdist.study.search import searched_keys

        varied = searched_keys(options.space, pinned_values(options))
    else:
        varied = list(grid)
    return (f"study {options.name} ({options.profile} profile): {trials} trials"
            + (" (a grid: " + " x ".join(grid) + ")" if grid else "") + ", "
            f"{options.max_concurrent} at a time, {options.base['train.steps']} steps each"
            + (f" of {options.base['run.seeds']} seeds" if options.base["run.seeds"] > 1
               else "") + "; "
            f"tracking {options.tracking_uri}\n"
            f"{'grid over' if grid else 'searching'}: {', '.join(varied)}; pinned: "
            + (", ".join(f"{k}={options.base[k]}" for k in options.pinned)
               or "nothing (--set KEY=VALUE pins)"))


def planned_trials(options: StudyOptions) -> int:
    return options.num_samples * math.prod(len(values) for values in options.grid.values())


def main(script: StudyScript, argv: list[str] | None = None) -> int:
    """Run one study from its command line: flags and every check first (bad input: exit 2,
    nothing started), then Ray Tune, the report and, for a table of the paper, its own report.
    Ctrl-C, SIGINT or SIGTERM: exit 130, the study's MLflow runs KILLED, ``--resume`` continues."""
    quiet_study_output()
    parser, args = parse_args(script, argv)
    if getattr(args, "report_only", None):
        running = sorted(args.explicit - {"report_only", "out", "tracking_uri"})
        if running:  # flags of a run, with nothing run: a mistake, not silence
            parser.error("--report-only runs nothing; drop "
                         + ", ".join("--" + dest.replace("_", "-") for dest in running))
        return report_only(script, args, parser)
    options, _lock = build_options(script, args, parser)  # the lock is held until exit
    if script.report is not None:  # after every check: a bad flag leaves no folder
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as err:
            parser.error(f"--out: cannot create {args.out}: {err.strerror}")
    print(describe(options), flush=True)
    end_on_sigterm_as_on_ctrl_c()
    from sigdist.study.tracking import TRACKING_ERRORS, tracking_failure

    parent = open_study_run(options)
    try:
        results = run_study(options, parent_run_id=parent)
        failure = tracking_failure(parent)
        if failure is not None:
            raise TrackingLost(failure)
        if was_interrupted(options, results, parent, planned_trials(options)):
            # Ray Tune catches Ctrl-C itself: it stops the running trials, saves the study
            # and returns as if done. The study is not done: it says so and exits 130.
            raise KeyboardInterrupt
        report(options, parent)
    except KeyboardInterrupt as err:
        end_study_run(options.tracking_uri, parent, err)
        print(f"\nstudy {options.name} interrupted; continue it with the same command and "
              f"--resume --name {options.name}", file=sys.stderr, flush=True)
        return 130
    except (TrackingLost, *TRACKING_ERRORS) as err:  # the database or server went away
        print(f"study {options.name} stopped: its MLflow tracking failed "
              f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); Ray's "
              f"results are kept under {options.study_dir}", file=sys.stderr, flush=True)
        return 1
    except BaseException as err:  # every way out ends the parent run, saying why
        end_study_run(options.tracking_uri, parent, err)
        raise
    if results.num_errors == len(results):
        return 1
    if script.report is not None:
        unfinished = [r for r in results if r.error or int((r.metrics or {}).get("step", 0))
                      < int(r.config["train.steps"])]
        if unfinished:  # no report from part of the runs
            print(f"{len(unfinished)} of {len(results)} runs did not finish; no report written",
                  file=sys.stderr)
            return 1
        print("report: " + ", ".join(write_report(script, options.tracking_uri, [parent],
                                                  args.out)))
    return 0


class TrackingLost(RuntimeError):
    """The study's tracking failed mid-study (its reason, as the callback recorded it)."""


def report_only(script: StudyScript, args: argparse.Namespace,
                parser: argparse.ArgumentParser) -> int:
    """The report of finished studies, found in MLflow by name; nothing is run."""
    from mlflow import MlflowClient

    from sigdist.study.tracking import find_study_runs, sqlite_path

    tracking_uri = prepare_tracking(args, parser)
    for name in args.report_only:
        check_name("--report-only", name, parser)
    database = sqlite_path(tracking_uri)
    if database is not None and not os.path.exists(database):  # not created by looking
        parser.error(f"--report-only: no tracking database at {database}")
    client = MlflowClient(tracking_uri)
    # this script's studies only (its smoke tests' too): another script's has other runs
    experiments = [e.experiment_id for e in (client.get_experiment_by_name(name) for name in
                                             (script.prefix, script.prefix + "_smoke")) if e]
    parents = []
    for name in args.report_only:
        found = find_study_runs(client, experiments, name) if experiments else []
        if not found:
            parser.error(f"--report-only: no study of {script.prefix} named {name!r} in "
                         f"{tracking_uri}")
        parents.append(found[0].info.run_id)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as err:
        parser.error(f"--out: cannot create {args.out}: {err.strerror}")
    print("report: " + ", ".join(write_report(script, tracking_uri, parents, args.out)))
    return 0


def write_report(script: StudyScript, tracking_uri: str, parent_run_ids: list[str], out: str
                 ) -> list[str]:
    """The script's report from the studies' MLflow runs into ``out``, also logged on the last
    study's parent run (``report/``)."""
    from mlflow import MlflowClient

    written = script.report(tracking_uri, parent_run_ids, out)
    client = MlflowClient(tracking_uri)
    for path in written:
        client.log_artifact(parent_run_ids[-1], path, "report")
    return written


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
    from mlflow import MlflowClient

    from sigdist.reports.figures import capacity_map_figure, learning_curves_figure
    from sigdist.reports.grid import grid_rows, headline, summarize, summary_table
    from sigdist.reports.runs import trial_runs

    keys = [k for k in options.grid if k != "seed"]

    def make(parent_run_id: str) -> dict[str, Any]:
        runs = trial_runs(options.tracking_uri, parent_run_id)[1]
        summary = summarize(grid_rows(MlflowClient(options.tracking_uri), runs, keys), keys)
        table = summary_table(summary, keys)
        print("\ngrid (mean ± standard error over seeds; each seed's value in brackets):")
        print(table)
        if "://" not in options.study_dir and os.path.isdir(options.study_dir):
            with open(os.path.join(options.study_dir, "grid.md"), "w") as fh:
                fh.write(table + "\n")
        if not summary:
            return {}
        pair = headline(summary)
        figures = {"learning_curves": learning_curves_figure(summary, keys, title=options.name,
                                                             metrics=pair)}
        if len(keys) >= 2 and all(isinstance(e[keys[-1]], int | float) for e in summary):
            figures["capacity_map"] = capacity_map_figure(summary, x_key=keys[-1],
                                                          line_key=keys[0], title=options.name,
                                                          metrics=pair)
        if "://" not in options.study_dir and os.path.isdir(options.study_dir):
            for name, figure in figures.items():
                figure.savefig(os.path.join(options.study_dir, f"{name}.png"), dpi=100)
        return figures

    return make


def report(options: StudyOptions, parent_run_id: str) -> None:
    from sigdist.metrics.members import base_metric
    from sigdist.metrics.names import table_metrics
    from sigdist.study.report import (
        LOCAL_UI,
        best_trials_table,
        finish_study_run,
        optuna_figures,
        outcome_counts,
        pareto_table,
        settle_lost_optuna_trials,
        trial_rows,
        ui_command,
        view_columns,
    )
    if options.grid:
        figures = grid_report(options)(parent_run_id)
        varied = list(options.grid)
    else:
        from sigdist.study.search import searched_keys

        storage_url = optuna_storage_url(options)
        settle_lost_optuna_trials(storage_url, options.name)
        figures = optuna_figures(storage_url, options.name, options.metrics)
        varied = searched_keys(options.space, pinned_values(options))
    local = "://" not in options.study_dir and os.path.isdir(options.study_dir)
    ui_base = (options.tracking_uri.rstrip("/") if options.tracking_uri.startswith(
        ("http://", "https://")) else LOCAL_UI)
    written = finish_study_run(
        options.tracking_uri, parent_run_id, figures=figures,
        metric=options.objective_keys[-1], mode=options.modes[-1],
        columns=view_columns(options.objective_keys[-1], varied),
        report_dir=options.study_dir if local else None, ui_base=ui_base)
    counts = outcome_counts(options.tracking_uri, parent_run_id)
    print(f"\n{sum(counts.values())} trials: "
          + ", ".join(f"{n} {what}" for what, n in counts.items()) + ".")
    metric, mode = options.scheduler_metric
    rows = trial_rows(options.tracking_uri, parent_run_id, metric)
    if len(options.metrics) > 1:
        print(f"Pareto front ({' vs '.join(map(label, options.objective_keys))}):")
        print(pareto_table(rows, options.objective_keys, options.modes) + "\n")
    print(f"best trials ({'lowest' if mode == 'min' else 'highest'} {label(metric)}):")
    print(best_trials_table(rows, metric, mode))
    print(f"\nMLflow: experiment {options.experiment!r}, parent run {options.name!r}.")
    from mlflow import MlflowClient

    tags = MlflowClient(options.tracking_uri).get_run(parent_run_id).data.tags
    print(f"Serve it: {ui_command(options.tracking_uri)}")
    if "sigdist.runs_url" in tags:
        shown = ", ".join(label(m) for m in table_metrics(base_metric(metric)))
        print(f"The trials ranked by {label(metric)} ({shown}, where each stopped): "
              + tags["sigdist.runs_url"].replace(LOCAL_UI, ui_base, 1))
        print("The trials side by side (lam, K, size, modes, KL): "
              + tags["sigdist.compare_url"].replace(LOCAL_UI, ui_base, 1))
    if written:
        print(f"The study report: {written} (and report.html on the parent run)")
    sys.stdout.flush()
