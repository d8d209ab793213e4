"""What a finished study reports: the table of its best trials (or its Pareto front), Optuna's
plots and the best trial on the MLflow parent run, and the command that opens the MLflow UI."""

from __future__ import annotations

import json
import shlex
import urllib.parse
import warnings
from collections.abc import Sequence
from typing import Any

# (title, config key, format) of the trials' configs, before their metrics
CONFIG_COLUMNS = (("method", "method", "s"), ("lam", "loss.lam", ".3g"), ("k", "loss.k", "d"),
                  ("size", "model.size", "s"), ("width", "model.width_g", ".3g"))


def trial_rows(tracking_uri: str, parent_run_id: str, metric: str
               ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(config, last metrics) of every trial run of the study in MLflow that reported
    ``metric`` (a run lost to a driver's stop, and run again, is left out)."""
    from sigdist.reports.runs import run_config, trial_runs
    from sigdist.study.tracking import LOST_TAG

    runs = trial_runs(tracking_uri, parent_run_id)[1]
    return [(run_config(run), dict(run.data.metrics)) for run in runs
            if LOST_TAG not in run.data.tags and metric in run.data.metrics]


def outcome_counts(tracking_uri: str, parent_run_id: str) -> dict[str, int]:
    """How the study's trials ended, from their MLflow runs: all their steps, stopped early by
    the scheduler, or failed (a lost run, run again, is not counted twice)."""
    from sigdist.reports.runs import trial_runs
    from sigdist.study.tracking import LOST_TAG, STOPPED_EARLY_TAG

    counts = {"finished": 0, "stopped early": 0, "failed": 0}
    for run in trial_runs(tracking_uri, parent_run_id)[1]:
        if LOST_TAG in run.data.tags:
            continue
        if run.info.status == "FAILED":
            counts["failed"] += 1
        elif STOPPED_EARLY_TAG in run.data.tags:
            counts["stopped early"] += 1
        else:
            counts["finished"] += 1
    return counts


def trials_table(rows: Sequence[tuple[dict[str, Any], dict[str, Any]]], metric: str) -> str:
    """A row per trial: its config columns (no size or width where every trial is on a toy,
    whose MLP has neither), then the metrics that go with the ranking ``metric``."""
    from sigdist.config import has_width
    from sigdist.metrics.members import base_metric, with_se
    from sigdist.metrics.names import table_metrics
    from sigdist.reports.tables import table

    config_columns = CONFIG_COLUMNS
    if rows and not any(has_width(config.get("data.name")) for config, _ in rows):
        config_columns = tuple(c for c in CONFIG_COLUMNS if c[0] not in ("size", "width"))
    shown = list(table_metrics(base_metric(metric)))
    if metric not in shown:  # ranked by the worst member: its column beside the means
        shown.append(metric)
    seeds = any(int(config.get("run.seeds", 1)) > 1 for config, _ in rows)
    header = ([title for title, _, _ in config_columns] + (["seeds"] if seeds else [])
              + [*shown, "step"])
    body = [[format(config[key], fmt) for _, key, fmt in config_columns]
            + ([str(config.get("run.seeds", 1))] if seeds else [])
            + [with_se(metrics, name) for name in shown]
            + [f"{metrics.get('step', float('nan')):.0f}"] for config, metrics in rows]
    return table(header, body)


def best_trials_table(rows, metric: str, mode: str, count: int = 5) -> str:
    ranked = sorted(rows, key=lambda row: row[1][metric], reverse=(mode == "max"))
    return trials_table(ranked[:count], metric)


def pareto_front(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points (each objective to ``min`` or ``max``), in order.

    A point is dominated when another is at least as good in every objective and better in
    one; duplicates of a front point stay on the front."""
    signs = [1.0 if mode == "min" else -1.0 for mode in modes]
    keyed = [[s * v for s, v in zip(signs, p, strict=True)] for p in points]

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(
            x < y for x, y in zip(a, b, strict=True))

    return [i for i, p in enumerate(keyed) if not any(dominates(q, p) for q in keyed)]


def pareto_table(rows, metrics: Sequence[str], modes: Sequence[str]) -> str:
    rows = [row for row in rows if all(m in row[1] for m in metrics)]
    front = pareto_front([[row[1][m] for m in metrics] for row in rows], modes)
    chosen = sorted((rows[i] for i in front), key=lambda row: row[1][metrics[-1]])
    return trials_table(chosen, metrics[-1])


LOCAL_UI = "http://127.0.0.1:5000"


def compare_url(base: str, experiment_id: str, run_ids: Sequence[str]) -> str:
    """The MLflow UI's compare-runs page of ``run_ids``: a column per trial with every param
    and metric, where the experiment's own page shows one folded parent row."""
    quote = urllib.parse.quote
    return (f"{base.rstrip('/')}/#/compare-runs?runs={quote(json.dumps(list(run_ids)))}"
            f"&experiments={quote(json.dumps([experiment_id]))}")


def ui_command(tracking_uri: str) -> str:
    """How to serve ``tracking_uri`` at :data:`LOCAL_UI` (a server is already served)."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"the server {tracking_uri} (an SSH tunnel for a cluster's server)"
    return (f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)} "
            "--host 127.0.0.1 --port 5000")


def settle_lost_optuna_trials(storage_url: str, study_name: str) -> int:
    """Optuna trials still RUNNING when the study has ended were proposed just before a driver
    stopped and are unknown to the resumed study: mark them FAIL. Returns how many."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage_url)
    lost = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in lost:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(lost)


def optuna_figures(storage_url: str, study_name: str, metrics: Sequence[str]) -> dict[str, Any]:
    """Optuna's own plots of the study (matplotlib): optimisation history, parameter
    importances and, for two objectives, the Pareto front. A plot Optuna cannot draw yet (too
    few finished trials) is left out."""
    import optuna
    from optuna.visualization import matplotlib as plots

    study = optuna.load_study(study_name=study_name, storage=storage_url)
    multi = len(metrics) > 1
    target = {"target": (lambda t: t.values[-1]), "target_name": metrics[-1]} if multi else {}
    makers = {"optimization_history": lambda: plots.plot_optimization_history(study, **target),
              "param_importances": lambda: plots.plot_param_importances(study, **target)}
    if multi:
        makers["pareto_front"] = lambda: plots.plot_pareto_front(study, target_names=metrics)
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, make in makers.items():
            try:
                figures[name] = make().figure
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue
    return figures


def finish_study_run(tracking_uri: str, parent_run_id: str, *,
                     figures: dict[str, Any], metric: str, mode: str) -> None:
    """The parent run gets Optuna's plots, the best trial's metrics and config, and ends."""
    from mlflow import MlflowClient

    from sigdist.metrics.members import SE_SUFFIX, WORST_SUFFIX
    from sigdist.metrics.names import METRICS
    from sigdist.reports.figures import lam_figure_metric, lam_metric_figure, plt
    from sigdist.reports.runs import trial_runs, trials_frame

    client = MlflowClient(tracking_uri)
    experiment_id, runs = trial_runs(tracking_uri, parent_run_id)
    frame = trials_frame(runs)
    lam_metric = lam_figure_metric(metric)
    lam_figure = f"lam_vs_{lam_metric}"
    if len(frame):  # the trials at a glance on the parent run: a table and lam vs the metric
        client.log_table(parent_run_id, frame, "trials.json")
        figures = {**figures, lam_figure: lam_metric_figure(
            frame, lam_metric, client.get_run(parent_run_id).info.run_name)}
        client.set_tag(parent_run_id, "sigdist.compare_url", compare_url(
            LOCAL_UI, experiment_id, [run.info.run_id for run in runs]))
    for name, figure in figures.items():
        folder = {"capacity_map": "grid", "learning_curves": "grid",
                  lam_figure: "trials"}.get(name, "optuna")
        client.log_figure(parent_run_id, figure, f"{folder}/{name}.png")
        plt.close(figure)
    rows = sorted(trial_rows(tracking_uri, parent_run_id, metric),
                  key=lambda row: row[1][metric], reverse=(mode == "max"))
    if rows:
        config, metrics = rows[0]
        client.log_dict(parent_run_id, {"config": config, "metrics": metrics},
                        "best_trial.json")
        for name in METRICS:
            for key in (name, name + SE_SUFFIX, name + WORST_SUFFIX):
                if key in metrics:
                    client.log_metric(parent_run_id, f"best_trial.{key}", float(metrics[key]))
    client.set_terminated(parent_run_id, status="FINISHED")
