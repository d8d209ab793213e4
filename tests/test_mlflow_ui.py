"""End to end through the MLflow UI: a finished GMM-25 study's tracking store served by
``mlflow server`` and rendered by headless Chromium, where every trial (child run) must show
its lam, K, network size, modes and KL in its own column of the compare-runs page.

The experiment's own page opens on the GenAI overview, and its "Training runs" table shows
the study's parent run with the trials folded under it and the param/metric columns hidden;
the compare-runs page lays every run out as a column with all its params and latest metrics."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
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
