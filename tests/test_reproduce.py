"""`studies/reproduce.py table1 --smoke-test` as a user runs it: every method x seed is a
finished MLflow child run with its final checkpoint, and the report it writes is well formed
and holds exactly the numbers MLflow holds."""

import math
import re
import statistics

import pytest
from studyrun import run_script, study_runs

from sigdist.report_table1 import LABELS
from sigdist.reproduce import TABLE1_METHODS

pytestmark = pytest.mark.slow


def _row(table: str, label: str) -> list[str]:
    (line,) = [line for line in table.splitlines() if line.startswith(f"| {label} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_table1_smoke_report_equals_what_mlflow_holds(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = tmp_path / "report"
    result = run_script("reproduce.py", "table1", "--smoke-test", "--out", str(out),
                        "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray"),
                        "--name", "smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client, parent, children = study_runs(uri, "reproduce_table1_smoke")
    assert parent.info.status == "FINISHED"
    # 6 methods x 2 seeds, each run to its last step, each with its final checkpoint
    assert sorted((c.data.params["method"], c.data.params["seed"]) for c in children) == sorted(
        (m, s) for m in TABLE1_METHODS for s in ("0", "1"))
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.metrics["step"] == float(child.data.params["train.steps"]) == 30
        assert [a.path for a in client.list_artifacts(child.info.run_id, "final_checkpoint")] \
            == ["final_checkpoint/checkpoint.pt"]

    table = (out / "table1.md").read_text()
    header = [c.strip() for c in table.splitlines()[4].strip("|").split("|")]
    assert header[:6] == ["method", "seeds", "steps", "modes (of 25)", "high quality", "KL"]
    for method in TABLE1_METHODS:
        runs = sorted((c for c in children if c.data.params["method"] == method),
                      key=lambda c: int(c.data.params["seed"]))
        cells = _row(table, LABELS[method])
        assert cells[1:3] == ["2", "30"]
        for cell, metric, digits in zip(cells[3:6], ("modes", "high_quality", "kl"), (1, 3, 3),
                                        strict=True):
            values = [r.data.metrics[metric] for r in runs]
            mean = statistics.mean(values)
            se = statistics.stdev(values) / math.sqrt(2)
            expected = (f"{mean:.{digits}f} ± {se:.{digits}f} ("
                        + "/".join(f"{v:.{digits}f}" for v in values) + ")")
            assert cell == expected, (method, metric)
        picture = out / f"table1_{method}.png"
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({picture.name})" in table
    assert _row(table, "PacGAN (Lin et al. 2018)")[-1] == "24.8 / 0.936 / 0.04"
    assert _row(table, "SIG")[-1] == "25 / 0.91 / 0.14"
    # the scatter's title names the metrics MLflow holds for the seed-0 run it redraws
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert logged == {"report/table1.md"} | {f"report/table1_{m}.png" for m in TABLE1_METHODS}
    assert re.search(r"\| VAE \| 2 \| 30 \|", table)
    # rebuilt from MLflow alone, nothing run: the same report
    again = run_script("reproduce.py", "table1", "--report-only", "smoke", "--out",
                       str(tmp_path / "again"), "--tracking-uri", uri, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again" / "table1.md").read_text() == table
