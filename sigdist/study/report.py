"""What a finished study reports: the table of its best trials (or its Pareto front), Optuna's
plots and the best trial on the MLflow parent run, and the command that opens the MLflow UI."""

from __future__ import annotations

import json
import os
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
            + [step_cell(config, metrics)] for config, metrics in rows]
    return table(header, body)


def step_cell(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The step of a trial's final evaluation; "750/3000" for one ASHA stopped there."""
    from sigdist.study.tracking import STOPPED_EARLY_METRIC

    step = f"{metrics.get('step', float('nan')):.0f}"
    return f"{step}/{config.get('train.steps')}" if STOPPED_EARLY_METRIC in metrics else step


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


def runs_view_url(base: str, experiment_id: str, share_key: str) -> str:
    """The experiment's runs table in the view saved under ``share_key`` (MLflow's own shared
    view: an experiment tag holding the filter, the sort and the columns), in MLflow's model
    training view: MLflow 3.17 opens every experiment in the view of its GenAI / Model
    training switch (GenAI until a user switches), not by the experiment's kind."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey="
            f"{share_key}&workflowType=machine_learning")


def runs_view_state(parent_run_id: str, metric: str, mode: str, columns: Sequence[str]) -> str:
    """MLflow's shared view state of the study's trials: only its child runs, ranked by
    ``metric`` (best first), ``columns`` (``params.`loss.lam```, ``metrics.`kl``` ...) in this
    order and narrow, so that they fit beside the run names on a laptop's screen."""
    return json.dumps({
        "searchFilter": f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        "orderByKey": f"metrics.`{metric}`", "orderByAsc": mode == "min",
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
        "datasetsFilter": [], "selectedColumns": list(columns),
        "columnOrder": ["attributes.`Run Name`", *columns],
        "columnWidths": {"runDateAndNestInfo": 110, **dict.fromkeys(columns, 80)},
        "runsHiddenMode": "SHOW_ALL"})


def view_columns(metric: str, searched: Sequence[str]) -> list[str]:
    """The runs table's columns for a study: the searched config keys (method, lam, K and the
    size or width it varies), the two metrics beside ``metric`` and ``metric``, where a trial
    stopped early, then its last step and the other metrics."""
    from sigdist.metrics.members import base_metric
    from sigdist.metrics.names import table_metrics
    from sigdist.study.tracking import STOPPED_EARLY_METRIC

    keys = [key for _, key, _ in CONFIG_COLUMNS if key in searched or key == "method"]
    shown = table_metrics(base_metric(metric))
    first = list(dict.fromkeys([*shown[:2], metric]))
    metrics = [*first, STOPPED_EARLY_METRIC, "step", *[m for m in shown if m not in first]]
    return [f"params.`{key}`" for key in keys] + [f"metrics.`{name}`" for name in metrics]


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
    importances and, for two objectives, the Pareto front, labelled with the metrics' names
    and sized so that the config keys are not cut. A plot Optuna cannot draw yet (too few
    finished trials) is left out."""
    import optuna
    from optuna.visualization import matplotlib as plots

    from sigdist.metrics.names import METRICS

    study = optuna.load_study(study_name=study_name, storage=storage_url)
    label = METRICS[metrics[-1]].label if metrics[-1] in METRICS else metrics[-1]
    target = ({"target": (lambda t: t.values[-1])} if len(metrics) > 1 else {}) | {
        "target_name": f"{label} (final evaluation)"}
    makers = {"optimization_history": lambda: plots.plot_optimization_history(study, **target),
              "param_importances": lambda: plots.plot_param_importances(study, **target)}
    if len(metrics) > 1:
        makers["pareto_front"] = lambda: plots.plot_pareto_front(
            study, target_names=[METRICS[m].label if m in METRICS else m for m in metrics])
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, make in makers.items():
            try:
                figure = make().figure
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue
            figure.set_size_inches(8, 4.5)
            figure.tight_layout()  # the importance plot's key names fit
            figures[name] = figure
    return figures


def ranked_runs(tracking_uri: str, parent_run_id: str, metric: str, mode: str) -> list:
    """The study's trial runs that reported ``metric``, best final evaluation first (a run
    lost to a driver's stop, and run again, is left out)."""
    from sigdist.reports.runs import trial_runs
    from sigdist.study.tracking import LOST_TAG

    runs = [run for run in trial_runs(tracking_uri, parent_run_id)[1]
            if LOST_TAG not in run.data.tags and metric in run.data.metrics]
    return sorted(runs, key=lambda run: run.data.metrics[metric], reverse=(mode == "max"))


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def last_samples_png(client, run_id: str, scratch: str) -> str | None:
    """The sample grid of a run's last evaluation, downloaded (None: it logged none)."""
    pictures = sorted(a.path for a in client.list_artifacts(run_id, "samples")
                      if a.path.endswith(".png"))
    return client.download_artifacts(run_id, pictures[-1], scratch) if pictures else None


def _png_data(path_or_figure) -> str:
    import base64
    import io

    if isinstance(path_or_figure, str):
        with open(path_or_figure, "rb") as fh:
            data = fh.read()
    else:
        buffer = io.BytesIO()
        path_or_figure.savefig(buffer, format="png", dpi=100)
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def study_report_html(*, study: str, metric: str, mode: str, runs: Sequence, best_shown: int,
                      figures: dict[str, Any], samples: dict[str, str], ui_base: str,
                      experiment_id: str) -> str:
    """The study at a glance, one self-contained HTML page (MLflow shows it inline): the best
    trial named with a link, the ranking, the lam figure and Optuna's plots, and the sample
    grids of the best trials side by side. Stopped-early trials are marked."""
    from html import escape

    from sigdist.config import has_width
    from sigdist.metrics.members import base_metric, with_se
    from sigdist.metrics.names import METRICS, table_metrics
    from sigdist.reports.runs import run_config
    from sigdist.study.tracking import DESCRIPTION_TAG, STOPPED_EARLY_TAG

    label = METRICS[base_metric(metric)].label
    order = "lowest" if mode == "min" else "highest"
    shown = list(dict.fromkeys([*table_metrics(base_metric(metric)), metric]))
    widths = any(has_width(run.data.params.get("data.name")) for run in runs)
    head = ["#", "run", "method", "lam", "K", *(["width"] if widths else []),
            *[METRICS[base_metric(m)].label
                                                         + (" (worst)" if m != base_metric(m)
                                                            else "") for m in shown],
            "step", "ended"]
    rows = []
    for rank, run in enumerate(runs, 1):
        config, metrics = run_config(run), run.data.metrics
        width = [f"{float(config['model.width_g']):.3g}"] if widths else []
        stopped = run.data.tags.get(STOPPED_EARLY_TAG)
        link = f'<a href="{escape(run_url(ui_base, experiment_id, run.info.run_id))}" ' \
               f'target="_top">{escape(run.info.run_name)}</a>'
        cells = [str(rank), link, escape(str(config.get("method"))),
                 f"{float(config.get('loss.lam', 0)):.3g}", str(config.get("loss.k")), *width,
                 *[escape(with_se(metrics, m)) for m in shown],
                 f"{metrics.get('step', float('nan')):.0f}",
                 "stopped by ASHA" if stopped else run.info.status.lower()]
        style = ' class="stopped"' if stopped else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    best = runs[0] if runs else None
    best_line = (f'<p class="best">Best trial ({order} {escape(label)}, final evaluation): '
                 f'<a href="{escape(run_url(ui_base, experiment_id, best.info.run_id))}" '
                 f'target="_top">{escape(best.info.run_name)}</a> &mdash; '
                 f"{escape(best.data.tags.get(DESCRIPTION_TAG, ''))}</p>" if best else
                 "<p>No trial reported its result.</p>")
    pictures = "".join(
        f'<figure><img src="{_png_data(figure)}" alt="{escape(name)}">'
        f"<figcaption>{escape(name.replace('_', ' '))}</figcaption></figure>"
        for name, figure in figures.items())
    grids = "".join(
        f'<figure><img class="samples" src="{_png_data(path)}" alt="samples of '
        f'{escape(run.info.run_name)}"><figcaption>#{rank} {escape(run.info.run_name)}'
        "</figcaption></figure>"
        for rank, run in enumerate(runs[:best_shown], 1)
        if (path := samples.get(run.info.run_id)))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>study {escape(study)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
tr.stopped td {{ color: #777; font-style: italic; }}
figure {{ display: inline-block; margin: 4px; vertical-align: top; }}
img {{ max-width: 640px; }} img.samples {{ width: 300px; }}
</style></head><body>
<h1>Study {escape(study)}</h1>
<p>A trial's result is its final evaluation (the last one it reached: trials ASHA stopped early
are marked, in grey, with the step they stopped at); trials are ranked by {escape(label)},
{order} first.</p>
{best_line}
<h2>Ranking</h2>
<table><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr>
{"".join(rows)}</table>
<h2>Figures</h2>
{pictures}
<h2>Samples of the best {min(best_shown, len(runs))} trials (final evaluation)</h2>
{grids}
</body></html>
"""


def finish_study_run(tracking_uri: str, parent_run_id: str, *,
                     figures: dict[str, Any], metric: str, mode: str,
                     columns: Sequence[str] = (), report_dir: str | None = None,
                     ui_base: str = LOCAL_UI) -> str | None:
    """The parent run gets Optuna's plots, the trials' table and figure, its best trial
    (named, linked, its metrics and config), the study report, the runs table's shared view,
    and ends. The report is also written into ``report_dir``; its path is returned."""
    import tempfile

    from mlflow import MlflowClient

    from sigdist.metrics.members import SE_SUFFIX, WORST_SUFFIX, base_metric
    from sigdist.metrics.names import METRICS
    from sigdist.reports.figures import lam_figure_metric, lam_metric_figure, plt
    from sigdist.reports.runs import run_config, trial_runs, trials_frame
    from sigdist.study.tracking import DESCRIPTION_TAG

    client = MlflowClient(tracking_uri)
    experiment_id, runs = trial_runs(tracking_uri, parent_run_id)
    study = client.get_run(parent_run_id).info.run_name
    frame = trials_frame(runs)
    lam_metric = lam_figure_metric(metric)
    lam_figure = f"lam_vs_{lam_metric}"
    if len(frame):  # the trials at a glance on the parent run: a table and lam vs the metric
        client.log_table(parent_run_id, frame, "trials.json")
        figures = {lam_figure: lam_metric_figure(frame, lam_metric, study), **figures}
        client.set_tag(parent_run_id, "sigdist.compare_url", compare_url(
            LOCAL_UI, experiment_id, [run.info.run_id for run in runs]))
        client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{parent_run_id}",
                                  runs_view_state(parent_run_id, metric, mode, columns))
        client.set_tag(parent_run_id, "sigdist.runs_url",
                       runs_view_url(LOCAL_UI, experiment_id, parent_run_id))
    for name, figure in figures.items():
        folder = {"capacity_map": "grid", "learning_curves": "grid",
                  lam_figure: "trials"}.get(name, "optuna")
        client.log_figure(parent_run_id, figure, f"{folder}/{name}.png")
    ranked = ranked_runs(tracking_uri, parent_run_id, metric, mode)
    if ranked:
        best = ranked[0]
        metrics = dict(best.data.metrics)
        client.log_dict(parent_run_id, {"run_id": best.info.run_id,
                                        "run_name": best.info.run_name,
                                        "result": "final evaluation", "ranked_by": metric,
                                        "config": run_config(best), "metrics": metrics},
                        "best_trial.json")
        for name in METRICS:
            for key in (name, name + SE_SUFFIX, name + WORST_SUFFIX):
                if key in metrics:
                    client.log_metric(parent_run_id, f"best_trial.{key}", float(metrics[key]))
        label = METRICS[base_metric(metric)].label
        client.set_tag(parent_run_id, "sigdist.best_trial", best.info.run_name)
        client.set_tag(parent_run_id, "sigdist.best_trial_run_id", best.info.run_id)
        client.set_tag(parent_run_id, DESCRIPTION_TAG, (
            f"Study {study}: {len(ranked)} trials ranked by the {label} of their final "
            f"evaluation ({'lowest' if mode == 'min' else 'highest'} first). Best trial: "
            f"[{best.info.run_name}](#/experiments/{experiment_id}/runs/{best.info.run_id})"
            f" ({best.data.tags.get(DESCRIPTION_TAG, '')}).\n\n"
            f"[The trials ranked]({runs_view_url('', experiment_id, parent_run_id)}) · "
            f"[side by side]({compare_url('', experiment_id, [r.info.run_id for r in runs])})"
            " · the study report: the artifact `report.html`."))
    written = None
    with tempfile.TemporaryDirectory() as scratch:
        samples = {run.info.run_id: path for run in ranked[:5]
                   if (path := last_samples_png(client, run.info.run_id, scratch))}
        html = study_report_html(study=study, metric=metric, mode=mode, runs=ranked,
                                 best_shown=5, figures=figures, samples=samples,
                                 ui_base=ui_base, experiment_id=experiment_id)
        path = os.path.join(report_dir or scratch, "report.html")
        with open(path, "w") as fh:
            fh.write(html)
        client.log_artifact(parent_run_id, path)
        written = path if report_dir else None
    for figure in figures.values():
        plt.close(figure)
    client.set_terminated(parent_run_id, status="FINISHED")
    return written
