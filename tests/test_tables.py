"""The reports' one table writer and the metric registry every report reads."""

from __future__ import annotations

import torch

from sigdist.config import TOY_DATASETS
from sigdist.data import toy_data
from sigdist.metrics import evaluate_toy
from sigdist.metrics.names import METRICS, OBJECTIVES, metrics_of, modes_of, table_metrics
from sigdist.reports.tables import table
from sigdist.study.report import pareto_front


def test_markdown_table_has_a_header_a_rule_and_a_line_per_row():
    text = table(["a", "b"], [[1, "x"], [2.5, ""]], markdown=True)
    assert text.splitlines() == ["| a | b |", "| --- | --- |", "| 1 | x |", "| 2.5 |  |"]


def test_text_table_right_aligns_every_column_to_its_widest_cell():
    lines = table(["method", "kl"], [["gan_si", "0.123"], ["gan", "10.500"]]).splitlines()
    assert lines == ["method     kl", "gan_si  0.123", "   gan 10.500"]
    assert len({len(line) for line in lines}) == 1


def test_a_table_without_rows_is_its_header():
    # a study whose every trial failed: max() of one int raised a TypeError before
    assert table(["method", "kl"], []) == "method kl"


def test_every_toy_reports_the_metrics_the_registry_gives_it():
    for name in TOY_DATASETS:
        data = toy_data(name)
        measured = evaluate_toy(data, data.sample(5000, torch.Generator().manual_seed(0)))
        assert set(metrics_of(name)) <= set(measured), name
        for metric in metrics_of(name):
            assert METRICS[metric].format(float(measured[metric]))  # formats as declared


def test_objectives_rank_by_registered_metrics_in_their_direction():
    assert modes_of(OBJECTIVES["kl"]) == ["min"]
    assert modes_of(OBJECTIVES["pareto"]) == ["max", "min"]
    for metrics in OBJECTIVES.values():
        assert set(table_metrics(metrics[-1])) >= set(metrics)
    assert all(m.better in ("max", "min", "") for m in METRICS.values())


def test_pareto_front_is_the_non_dominated_points():
    points = [(0.9, 1.0), (0.5, 0.2), (0.4, 0.3), (0.9, 1.0), (0.95, 2.0), (0.1, 5.0)]
    assert pareto_front(points, ["max", "min"]) == [0, 1, 3, 4]
    assert pareto_front(points, ["min", "max"]) == [5]
