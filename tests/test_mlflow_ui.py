"""End to end through the MLflow UI: a finished GMM-25 study's tracking store served by
``mlflow server`` and rendered by headless Chromium, where every trial (child run) must show
its lam, K, network size, modes and KL in its own column of the compare-runs page.

MLflow 3.17 opens an experiment in the view of its GenAI / Model training switch (GenAI until a
user switches), whatever the experiment's kind: the study prints a link to its runs table in
the model-training view, in MLflow's own shared view of the study (its trials, ranked, the
columns that matter first), and the compare-runs page, which lays every run out as a column."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from browser import CHROMIUM, Node, format_metric, mlflow_server, parse_html, render

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "studies" / "gmm25_sweep.py"
STUDY = "gmm25_sweep_smoke"
PARENT_TAG = "mlflow.parentRunId"

PARAMS = ("method", "loss.lam", "loss.k", "model.size")
METRICS = ("modes", "kl")


# ---------------------------------------------------------------- the study's tracking store


@pytest.fixture
def study_store(gmm25_smoke) -> tuple[str, str]:
    """Tracking URI of a finished GMM-25 smoke study (the session's, see conftest.py), and
    the URL of its trials that the study printed (for a UI served at 127.0.0.1:5000)."""
    result, uri, _ = gmm25_smoke
    printed = re.findall(r"side by side \(.*\): (http://127\.0\.0\.1:5000/\S+)", result.stdout)
    assert len(printed) == 1, result.stdout[-2000:]
    return uri, printed[0]


# ---------------------------------------------------------------- reading the compare page


class ComparePage:
    """The compare-runs page's tables: a header row of run ids (one column per run), a
    parameters table (``<tr><th>key</th><td>value</td>...``) and a virtualised metrics grid
    (absolutely placed cells, a row per metric and a column per run)."""

    def __init__(self, root: Node):
        self.root = root
        self.text = root.text

    def run_ids(self) -> list[str]:
        row = self._row_of("Run ID:")
        return [] if row is None else [c.text for c in row.elements()[1:]]

    def metric_names(self) -> list[str]:
        return [a.text for a in self.root.iter("a") if a.attrs.get("title") == "Plot chart"]

    def param_row(self, key: str) -> list[str]:
        row = self._row_of(key)
        assert row is not None, f"no parameter row {key!r} on the compare page"
        return [c.text for c in row.elements()[1:]]

    def metric_row(self, key: str) -> dict[int, str]:
        """Column index -> text of the metric's cells that the grid has rendered."""
        names = [a for a in self.root.iter("a")
                 if a.attrs.get("title") == "Plot chart" and a.text == key]
        assert len(names) == 1, (
            f"metric {key!r} appears {len(names)} times in the metrics grid's name column "
            "(the grid draws only the rows near its viewport)")
        name_cell = names[0].parent
        top = name_cell.style_px("top")
        grids = [d for d in self.root.iter("div")
                 if "ReactVirtualized__Grid" in d.attrs.get("class", "").split()]
        name_grid = next(g for g in grids if any(n is names[0] for n in g.iter("a")))
        values = grids[grids.index(name_grid) + 1]
        row: dict[int, str] = {}
        for cell in values.iter("div"):
            left, width = cell.style_px("left"), cell.style_px("width")
            if cell.style_px("top") == top and left is not None and width:
                row[round(left / width)] = cell.text
        return row

    def _row_of(self, header: str) -> Node | None:
        rows = [tr for tr in self.root.iter("tr")
                if tr.elements() and tr.elements()[0].text == header]
        assert len(rows) <= 1, f"{len(rows)} table rows headed {header!r}"
        return rows[0] if rows else None


# ---------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")
def test_the_printed_url_shows_each_trials_params_and_metrics(study_store, tmp_path: Path):
    """The URL the study printed, opened without a click, shows every trial's method, lam, K,
    size, modes and KL."""
    from mlflow import MlflowClient

    study_store, printed_url = study_store
    client = MlflowClient(study_store)
    exp = client.get_experiment_by_name(STUDY)
    assert exp is not None, f"no experiment {STUDY!r} in {study_store}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1, f"expected one study run, got {[r.info.run_name for r in parents]}"
    trials = [r for r in runs if r.data.tags.get(PARENT_TAG) == parents[0].info.run_id]
    assert len(trials) >= 2 and len(trials) == len(runs) - 1, (
        f"{len(runs)} runs, {len(trials)} of them under the study run")
    for r in trials:
        missing = [k for k in PARAMS if k not in r.data.params]
        missing += [k for k in METRICS if k not in r.data.metrics]
        assert not missing, f"trial {r.info.run_name} lacks {missing}"
    ids = [r.info.run_id for r in trials]

    screenshot = tmp_path / "compare_runs.png"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(printed_url).fragment.split("?", 1)[1])
    assert sorted(json.loads(query["runs"][0])) == sorted(ids)  # every trial, nothing else
    with mlflow_server(study_store, tmp_path) as base:
        url = printed_url.replace("http://127.0.0.1:5000", base, 1)
        for attempt, budget_ms in enumerate((15000, 45000)):
            page = ComparePage(parse_html(render(
                url, tmp_path / f"chromium-profile-{attempt}", screenshot=screenshot,
                virtual_time_budget_ms=budget_ms)))
            if sorted(page.run_ids()) == sorted(ids) and page.metric_names():
                break
    assert screenshot.stat().st_size > 10_000, "the screenshot is (nearly) empty"

    columns = page.run_ids()
    assert sorted(columns) == sorted(ids), f"compare page shows runs {columns}, not {ids}"
    params = {key: page.param_row(key) for key in PARAMS}
    metrics = {key: page.metric_row(key) for key in METRICS}
    for r in trials:
        col = columns.index(r.info.run_id)
        for key in PARAMS:
            assert params[key][col] == r.data.params[key], (
                f"{r.info.run_name}: {key} shows {params[key][col]!r}, "
                f"store has {r.data.params[key]!r}")
        for key in METRICS:
            want = format_metric(r.data.metrics[key])
            assert metrics[key].get(col) == want, (
                f"{r.info.run_name}: {key} shows {metrics[key].get(col)!r}, want {want!r}")

    # negative control: values the store does not hold are not found
    absent_lam = "0.0123456789"
    assert all(r.data.params["loss.lam"] != absent_lam for r in trials)
    assert absent_lam not in params["loss.lam"] and absent_lam not in page.text
    shown_kl = {format_metric(r.data.metrics["kl"]) for r in trials}
    absent_kl = next(v for v in ("0.999", "0.998", "0.997") if v not in shown_kl)
    assert absent_kl not in metrics["kl"].values()
    assert "0" * 32 not in columns
    with pytest.raises(AssertionError):
        page.param_row("loss.no_such_param")


def header_cells(root: Node) -> dict[str, tuple[float, float]]:
    """The runs table's column headers: col-id -> (left, width) in pixels of its section."""
    cells = {}
    for cell in root.iter("div"):
        if cell.attrs.get("role") == "columnheader" and "aria-sort" in cell.attrs:
            cells[cell.attrs["col-id"]] = (cell.style_px("left"), cell.style_px("width"))
    return cells


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")
def test_the_printed_runs_link_ranks_the_trials_with_their_columns_in_view(gmm25_smoke,
                                                                            tmp_path: Path):
    """The first link the study prints opens MLflow's runs table in its model-training view
    (not GenAI), on this study's trials alone, best final KL first, with method, lam, K,
    modes, KL and the step a trial was stopped at in the first columns (at 1600 x 1000, with
    MLflow's assistant panel open); the study report on the parent names the best trial."""
    from mlflow import MlflowClient

    result, uri, _ = gmm25_smoke
    (printed,) = re.findall(r"The trials ranked by KL \(.*\): (http://127\.0\.0\.1:5000/\S+)",
                            result.stdout)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if PARENT_TAG not in r.data.tags]
    trials = sorted((r for r in runs if PARENT_TAG in r.data.tags),
                    key=lambda r: r.data.metrics["kl"])
    with mlflow_server(uri, tmp_path) as base:
        url = printed.replace("http://127.0.0.1:5000", base, 1)
        for attempt, budget_ms in enumerate((20000, 45000)):
            root = parse_html(render(url, tmp_path / f"chromium-runs-{attempt}",
                                     screenshot=tmp_path / "runs.png",
                                     virtual_time_budget_ms=budget_ms, window_size=(1600, 1000)))
            shown = [a.attrs["href"].rsplit("/", 1)[1] for a in root.iter("a")
                     if re.fullmatch(r"#/experiments/\d+/runs/[0-9a-f]{32}", a.attrs.get(
                         "href", ""))]
            if shown:
                break
        # the parent's artifacts show the report inline (an iframe of the served file)
        artifacts = parse_html(render(
            f"{base}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}/"
            "artifacts/report.html?workflowType=machine_learning",
            tmp_path / "chromium-report", screenshot=tmp_path / "report.png",
            virtual_time_budget_ms=20000, window_size=(1600, 1000)))
        with urllib.request.urlopen(f"{base}/get-artifact?path=report.html&run_uuid="
                                    f"{parent.info.run_id}", timeout=30) as response:
            report = response.read().decode()
    assert any(True for _ in artifacts.iter("iframe")), "the report is not shown inline"
    # the trials in ranked order, each once (a row's name link), the parent not among them
    assert list(dict.fromkeys(shown)) == [t.info.run_id for t in trials], shown
    assert parent.info.run_id not in shown
    assert "Model training" in root.text and "Overview" not in root.text  # not the GenAI page
    columns = header_cells(root)
    first = ["params.`method`", "params.`loss.lam`", "params.`loss.k`", "metrics.`modes`",
             "metrics.`kl`", "metrics.`stopped_early_at`"]
    # left to right from the table's first scrolling column, inside the ~520 px beside the
    # pinned run names that the page shows at this size
    assert [columns[c][0] for c in first] == sorted(columns[c][0] for c in first), columns
    assert all(columns[c][0] + columns[c][1] <= 520 for c in first), columns
    # the report names the best trial, links to it and holds its pictures
    page = parse_html(report)
    best = trials[0]
    links = [a for a in page.iter("a") if a.attrs.get("href", "").endswith(best.info.run_id)]
    assert links and links[0].text == best.info.run_name
    assert "Best trial (lowest KL, final evaluation)" in page.text
    assert sum(1 for img in page.iter("img") if img.attrs["src"].startswith(
        "data:image/png;base64,")) >= 3
    # negative control: a run id that is no trial is not on the page
    assert "0" * 32 not in shown
