"""Reproducing the paper's tables and figures through the study system: each table is one grid
study (every method or data set x seeds, in parallel under Ray Tune, one MLflow parent run, a
child run per training run), then its report is built from what MLflow holds: the children's
final metrics and their final checkpoints (logged as ``final_checkpoint/checkpoint.pt``), from
which the figures redraw the very samples that were scored.

Used by ``studies/reproduce.py``; the reports live in ``sigdist.report_table1`` and
``sigdist.report_figure1``."""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from sigdist.config import ConfigError, from_flat, parse_assignment

FINAL_CHECKPOINT = "final_checkpoint"
TABLE1_METHODS = ("gan", "gan_si", "sig", "vae", "veegan", "unrolled_gan")
# Figure 1 (Section 5.1): SIG on four toys. Count data under a Poisson likelihood, p(x | psi) =
# Poisson(x; e^psi): both count toys are Poisson mixtures, so the learned rates e^psi can be held
# against the true mixing distribution (NegBin(r, p) = Poisson(Gamma(r, p / (1 - p)))). The
# continuous toys under N(x; psi, sigma^2 I) with sigma the data's own noise, so that the true
# mixing distribution is the ring itself (ring + noise 0.1) or the 8 centres (ring, std 0.02).
FIGURE1_PANELS = {
    "negbin": {"loss.likelihood": "poisson", "loss.sigma_anneal": 0.0},
    "poisson_negbin": {"loss.likelihood": "poisson", "loss.sigma_anneal": 0.0},
    "ring_noise": {"loss.likelihood": "gaussian", "loss.sigma": 0.1},
    "ring": {"loss.likelihood": "gaussian", "loss.sigma": 0.02},
}


@dataclass(frozen=True)
class Protocol:
    """One table's grid study at one size."""

    base: dict[str, Any]
    grid: dict[str, tuple]
    max_concurrent: int
    per_panel: dict[str, dict[str, Any]] = field(default_factory=dict)  # keyed by data.name


_SMOKE_RUN = {"train.steps": 30, "run.eval_every": 15, "run.eval_samples": 2000,
              "train.batch_size": 64, "loss.k": 64, "loss.sigma_anneal": 0.67,
              "train.unroll_steps": 2}
PROTOCOLS = {
    ("table1", "smoke"): Protocol({**_SMOKE_RUN, "data.name": "gmm25"},
                                  {"method": TABLE1_METHODS, "seed": (0, 1)}, 2),
    # Table 1's budget as measured (docs/results/table1.md), whatever the grid's defaults
    ("table1", "full"): Protocol({"data.name": "gmm25", "run.eval_every": 2000,
                                  "train.steps": 8000, "loss.k": 256, "loss.sigma": 0.1,
                                  "loss.sigma_anneal": 0.75},
                                 {"method": TABLE1_METHODS, "seed": (0, 1, 2, 3, 4)}, 2),
    ("figure1", "smoke"): Protocol({**_SMOKE_RUN, "method": "sig", "data.name": "ring"},
                                   {"data.name": tuple(FIGURE1_PANELS), "seed": (0, 1)}, 2,
                                   FIGURE1_PANELS),
    ("figure1", "full"): Protocol({"method": "sig", "data.name": "ring", "run.eval_every": 2000,
                                   "train.steps": 8000, "loss.k": 256,
                                   "loss.sigma_anneal": 0.75},
                                  {"data.name": tuple(FIGURE1_PANELS), "seed": (0, 1, 2)}, 2,
                                  FIGURE1_PANELS),
}


def _panel_value(key: str, per_panel: dict[str, dict[str, Any]], default: Any, spec) -> Any:
    """Ray Tune ``sample_from``: the value of ``key`` for the trial's data set."""
    return per_panel.get(spec.config["data.name"], {}).get(key, default)


def parser() -> argparse.ArgumentParser:
    from sigdist.study.runner import study_parser

    p = study_parser("Reproduce the paper's Table 1 or Figure 1 through the study system and "
                     "write its report from MLflow.")
    p.add_argument("table", choices=("table1", "figure1"), help="what to reproduce")
    p.add_argument("--out", default="docs/results",
                   help="where the report (markdown and PNGs) is written")
    p.add_argument("--report-only", nargs="+", default=None, metavar="STUDY",
                   help="run nothing: rebuild the report from these studies in MLflow (by "
                   "--name); a later study's runs replace an earlier one's of the same method "
                   "or data set")
    return p


def main(argv: list[str] | None = None) -> int:
    from sigdist.study.script import quiet_study_output

    quiet_study_output()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from sigdist.study.report import finish_study_run
    from sigdist.study.runner import (
        StudyOptions,
        check_options,
        open_study_run,
        prepare_storage,
        prepare_tracking,
        run_study,
        validated_base,
    )
    from sigdist.study.script import end_study_run

    p = parser()
    args = p.parse_args(argv)
    check_options(args, p)
    if args.report_only:
        return report_only(args, p)
    args.gpus_per_trial = args.gpus_per_trial or 0.0
    size = "smoke" if args.smoke_test else "full"
    protocol = PROTOCOLS[(args.table, size)]
    base = validated_base({**protocol.base, "seed": args.seed}, args.set, p)
    # a key the user sets is pinned: it leaves the grid (`--set method=sig`: SIG's 5 seeds)
    pinned = {parse_assignment(text)[0] for text in args.set}
    grid = {k: v for k, v in protocol.grid.items() if k not in pinned}
    if "seed" not in grid:
        p.error("--set: seed is the grid of every table; allowed: any other config key")
    base = _with_panels(base, protocol, pinned, p)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as err:
        p.error(f"--out: cannot create {args.out}: {err.strerror}")
    experiment = f"reproduce_{args.table}" + ("_smoke" if args.smoke_test else "")
    name = args.name or f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    tracking_uri = prepare_tracking(args, p)
    storage_path = os.path.abspath(args.storage_path)
    _lock = prepare_storage(storage_path, name, p)  # noqa: F841 (held until exit)
    options = StudyOptions(
        name=name, experiment=experiment, base=base, num_samples=1,
        max_concurrent=args.max_concurrent or protocol.max_concurrent,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, seed=args.seed,
        address=args.address, storage_path=storage_path, tracking_uri=tracking_uri,
        resume=args.resume, grid=grid)
    runs = math.prod(len(values) for values in grid.values())
    print(f"{args.table} ({size}): {runs} runs ({' x '.join(grid)}), "
          f"{options.max_concurrent} at a time; tracking {tracking_uri}", flush=True)
    parent = open_study_run(options)
    try:
        results = run_study(options, parent_run_id=parent)
        # the table's own report (below) replaces the grid study's generic one
        finish_study_run(tracking_uri, parent, results, figures={}, metric="kl", mode="min")
        log_final_checkpoints(tracking_uri, parent, results)
    except BaseException as err:  # every way out ends the parent run, saying why
        end_study_run(tracking_uri, parent, err)
        raise
    unfinished = [r for r in results
                  if r.error or int((r.metrics or {}).get("step", 0)) < base["train.steps"]]
    if unfinished:  # an interrupted or failing study: no report from part of its runs
        print(f"{len(unfinished)} of {len(results)} runs did not finish; no report written",
              file=sys.stderr)
        return 1
    written = write_report(args.table, tracking_uri, [parent], args.out)
    print("report: " + ", ".join(written))
    return 0


def report_only(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """The report of finished studies, found in MLflow by name; nothing is run."""
    from mlflow import MlflowClient

    from sigdist.study.runner import prepare_tracking
    from sigdist.study.tracking import STUDY_TAG

    tracking_uri = prepare_tracking(args, p)
    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = []
    for name in args.report_only:
        found = client.search_runs(experiments, f"tags.`{STUDY_TAG}` = '{name}'")
        if not found:
            p.error(f"--report-only: no study named {name!r} in {tracking_uri}")
        parents.append(found[0].info.run_id)
    os.makedirs(args.out, exist_ok=True)
    print("report: " + ", ".join(write_report(args.table, tracking_uri, parents, args.out)))
    return 0


def _with_panels(base: dict[str, Any], protocol: Protocol, pinned: set[str],
                 p: argparse.ArgumentParser) -> dict[str, Any]:
    """Figure 1's per-data-set keys (likelihood, sigma) as Ray Tune ``sample_from`` specs,
    each panel's config validated first; a key the user pins applies to every panel."""
    if not protocol.per_panel:
        return base
    from ray import tune

    keys = sorted({k for panel in protocol.per_panel.values() for k in panel} - pinned)
    for name, panel in protocol.per_panel.items():
        try:
            from_flat({**base, "data.name": name,
                       **{k: v for k, v in panel.items() if k in keys}})
        except ConfigError as err:
            p.error(f"{name}: {err}")
    return {**base, **{key: tune.sample_from(functools.partial(
        _panel_value, key, protocol.per_panel, base[key])) for key in keys}}


def child_runs(client, parent_run_ids: list[str], key: str) -> list:
    """The studies' child runs (one per training run); where two studies ran the same value
    of ``key`` (a method, a data set), the later study's runs replace the earlier's."""
    chosen: dict[str, list] = {}
    for parent_run_id in parent_run_ids:
        parent = client.get_run(parent_run_id)
        runs: dict[str, list] = {}
        for run in client.search_runs([parent.info.experiment_id],
                                      f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                      max_results=10_000):
            runs.setdefault(run.data.params.get(key), []).append(run)
        chosen.update(runs)
    return [run for runs in chosen.values() for run in runs]


def log_final_checkpoints(tracking_uri: str, parent_run_id: str, results) -> None:
    """Each run's last checkpoint (the trained model at its last step) onto its MLflow child
    run, where the reports find it."""
    from mlflow import MlflowClient

    from sigdist.study.tracking import TRIAL_TAG
    from sigdist.study.trainable import CHECKPOINT_FILE

    client = MlflowClient(tracking_uri)
    by_trial = {run.data.tags.get(TRIAL_TAG): run.info.run_id
                for run in child_runs(client, [parent_run_id], TRIAL_TAG)}
    for result in results:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id")
        finished = int(metrics.get("step", 0)) >= int(result.config["train.steps"])
        if result.checkpoint is None or trial_id not in by_trial or not finished:
            continue  # a run cut short has no final model
        with result.checkpoint.as_directory() as directory:
            client.log_artifact(by_trial[trial_id], os.path.join(directory, CHECKPOINT_FILE),
                                FINAL_CHECKPOINT)


def load_final_trainer(client, run_id: str, scratch: str):
    """The trainer of a child run, rebuilt from its final checkpoint in MLflow."""
    from sigdist.study.trainable import CHECKPOINT_FILE
    from sigdist.train import Trainer

    path = client.download_artifacts(run_id, f"{FINAL_CHECKPOINT}/{CHECKPOINT_FILE}", scratch)
    return Trainer.from_checkpoint(path, device="cpu")


def write_report(table: str, tracking_uri: str, parent_run_ids: list[str], out: str
                 ) -> list[str]:
    """Build ``table``'s report from the studies' MLflow runs into ``out``, and log it on the
    last study's parent run."""
    from mlflow import MlflowClient

    if table == "table1":
        from sigdist.report_table1 import table1_report as build
    else:
        from sigdist.report_figure1 import figure1_report as build
    written = build(tracking_uri, parent_run_ids, out)
    client = MlflowClient(tracking_uri)
    for path in written:
        client.log_artifact(parent_run_ids[-1], path, "report")
    return written


if __name__ == "__main__":
    sys.exit(main())
