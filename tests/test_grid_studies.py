"""Grid studies (the capacity x budget map, Table 2) run as a user runs them: every cell of the
grid is one MLflow child run, the report averages each cell over seeds at every budget, widths
follow the grid (tied, or a preset's), and a --set on a grid key pins it."""

import re

import pytest
from studyrun import TERMINAL, run_script, study_runs

from sigdist.reports.grid import summarize, summary_table
from sigdist.sizes import WIDTH_PRESETS

pytestmark = pytest.mark.slow


def _grid_lines(stdout: str) -> list[str]:
    text = stdout.split("grid (mean ± standard error over seeds")[1]
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def test_capacity_map_smoke_logs_every_cell_and_the_map(tmp_path, mnist_root):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_script("mnist3_capacity_map.py", "--smoke-test",
                        "--set", f"data.root={mnist_root}", "--tracking-uri", uri,
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client, parent, children = study_runs(uri, "mnist3_capacity_map_smoke")
    # the grid: method (gan, gan_si) x width (0.25, 0.5), each run two seeds: four runs,
    # none RUNNING
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert {c.data.params["run.seeds"] for c in children} == {"2"}
    cells = {(c.data.params["method"], c.data.params["model.width_g"]) for c in children}
    assert cells == {(m, w) for m in ("gan", "gan_si") for w in ("0.25", "0.5")}
    for child in children:  # the discriminator's width follows the generator's, and the size
        params = child.data.params  # names the preset those widths make (M: 0.25, 0.25)
        assert params["model.width_d"] == params["model.width_g"]
        assert params["model.size"] == ("M" if params["model.width_g"] == "0.25" else "custom")
        assert [m.step for m in client.get_metric_history(child.info.run_id, "modes")] == [4, 8]
    # the printed table: one line per cell and budget, equal to what MLflow holds at step 8
    lines = _grid_lines(result.stdout)
    assert len(lines) == 1 + 4 * 2  # header + 4 cells x 2 budgets
    for child in children:  # every seed of the cell, from its run's member curves
        method, width = child.data.params["method"], child.data.params["model.width_g"]
        row = next(line for line in lines if re.match(rf"\| {method} \| {width} \| 8 \|", line))
        metrics = child.data.metrics
        # led by the ensemble's modes, then its KL, confident modes and the reference's own
        seeds = "/".join(f"{metrics[f'seed_{m}/ensemble_modes']:.0f}" for m in (0, 1))
        assert f"| 8 | 2 | {metrics['ensemble_modes']:.0f} ± " in row and f" ({seeds}) |" in row
        assert f"| {metrics['confident_modes']:.0f} ± " in row
        assert f"| {metrics['modes']:.0f} ± " in row
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "grid")}
    assert artifacts == {"grid/capacity_map.png", "grid/learning_curves.png"}
    (study_dir,) = [p for p in (tmp_path / "ray").iterdir() if p.is_dir()]
    assert (study_dir / "grid.md").read_text().count("\n") == 2 + 4 * 2
    assert (study_dir / "capacity_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table2_smoke_follows_presets_and_set_pins_a_grid_key(tmp_path, mnist_root):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_script("mnist3_table2.py", "--smoke-test", "--set", "method=gan_si",
                        "--set", f"data.root={mnist_root}", "--tracking-uri", uri,
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, _, children = study_runs(uri, "mnist3_table2_smoke")
    # method pinned to gan_si: the grid is size (S, M), seeds 0 and 1 inside each trial
    assert sorted(c.data.params["model.size"] for c in children) == ["M", "S"]
    assert all(c.data.params["run.seeds"] == "2" for c in children)
    assert all(c.info.status in TERMINAL and c.data.params["method"] == "gan_si"
               for c in children)
    for child in children:  # each preset's own widths, in the run's name too
        size = child.data.params["model.size"]
        assert child.info.run_name.endswith(
            f" {size} w={float(child.data.params['model.width_g']):.3g}")
        assert (float(child.data.params["model.width_g"]),
                float(child.data.params["model.width_d"])) == WIDTH_PRESETS[size]


def test_pinning_every_grid_key_is_refused_before_anything_starts(tmp_path):
    result = run_script("mnist3_table2.py", "--smoke-test", "--set", "method=gan",
                        "--set", "model.size=S", "--set", "seed=0",
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "--set pins every key of the grid" in result.stderr
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


def test_grid_summary_is_mean_and_standard_error_over_seeds():
    rows = [{"method": "gan", "seed": s, "step": 100, "modes": m, "kl": k, "high_quality": 0.5,
             "inception_score_digit": 9.0} for s, m, k in ((0, 10.0, 1.0), (1, 20.0, 3.0))]
    (cell,) = summarize(rows, ["method"])
    assert (cell["modes"], cell["kl"], cell["seeds"]) == (15.0, 2.0, 2)
    assert cell["modes_se"] == pytest.approx(5.0) and cell["kl_se"] == pytest.approx(1.0)
    table = summary_table([cell], ["method"])
    assert "| gan | 100 | 2 | 15 ± 5 (10/20) | 2.00 ± 1.00 (1.00/3.00) |" in table
    assert table.splitlines()[0].endswith("| IS (digits) |") and "9.00 ± 0.00 |" in table
    toy = summarize([{**row, "inception_score_digit": float("nan")} for row in rows], ["method"])
    toy_table = summary_table(toy, ["method"])  # the toys have no digit IS: no column of nan
    assert "IS" not in toy_table and "nan" not in toy_table
    assert toy_table.splitlines()[2].endswith("| 0.500 ± 0.000 |")
