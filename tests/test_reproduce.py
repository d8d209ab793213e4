"""`studies/table1.py --smoke-test` as a user runs it: every method x seed is a
finished MLflow child run with its final checkpoint, and the report it writes is well formed
and holds exactly the numbers MLflow holds."""

import math
import re
import statistics

import pytest
from studyrun import TERMINAL, progress_table, run_script, study_runs

from sigdist.reports.table1 import LABELS
from sigdist.reports.table1 import METHODS as TABLE1_METHODS

pytestmark = pytest.mark.slow


def _row(table: str, label: str) -> list[str]:
    (line,) = [line for line in table.splitlines() if line.startswith(f"| {label} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_table1_smoke_report_equals_what_mlflow_holds(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = tmp_path / "report"
    result = run_script("table1.py", "--smoke-test", "--out", str(out),
                        "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray"),
                        "--name", "smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # the study scripts' progress output: Ray's classic table, no config box per trial
    assert "started with configuration" not in result.stdout
    assert "Token authentication is enabled" not in result.stdout + result.stderr
    rows = progress_table(result.stdout)  # lam: the weight of L_K each method gives
    assert {row["method"]: float(row["lam"]) for row in rows} == {
        "gan": 0.0, "gan_si": 1.0, "sig": 1.0, "vae": 0.0, "veegan": 0.0, "unrolled_gan": 0.0}
    client, parent, children = study_runs(uri, "reproduce_table1_smoke")
    assert parent.info.status == "FINISHED"
    # 6 methods x 2 seeds, each run to its last step, each with its final checkpoint
    assert sorted((c.data.params["method"], c.data.params["seed"]) for c in children) == sorted(
        (m, s) for m in TABLE1_METHODS for s in ("0", "1"))
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.metrics["step"] == float(child.data.params["train.steps"]) == 30
        assert [a.path for a in client.list_artifacts(child.info.run_id, "final_checkpoint")] \
            == ["final_checkpoint/checkpoint.pt", "final_checkpoint/metrics.json"]

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
    # rebuilt from MLflow alone, nothing run: the same report (through the older command)
    again = run_script("reproduce.py", "table1", "--report-only", "smoke", "--out",
                       str(tmp_path / "again"), "--tracking-uri", uri, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again" / "table1.md").read_text() == table


def test_push_smoke_searches_sig_and_gan_si_over_sigma_and_k(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_script("gmm25_push.py", "--smoke-test", "--tracking-uri", uri,
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, parent, children = study_runs(uri, "gmm25_push_smoke")
    assert parent.info.status == "FINISHED" and len(children) == 2
    for child in children:
        params = child.data.params
        assert params["method"] in ("sig", "gan_si") and params["loss.k"] in ("256", "1024")
        assert 0.05 <= float(params["loss.sigma"]) <= 0.3
        assert params["train.lr_d"] == params["train.lr"]
        # ASHA may stop a trial at its first evaluation (step 10 of 20)
        assert child.data.metrics["step"] in (10, 20) and child.info.status in TERMINAL
    assert "best trials (lowest KL):" in result.stdout
    assert "searching: method, loss.lam, loss.sigma, loss.sigma_start, loss.sigma_anneal" in \
        result.stdout


def test_figure1_report_equals_what_mlflow_holds(tmp_path):
    """The report builder alone, on runs logged as a study logs them (no Ray): one child run
    per data set with its final metrics and final checkpoint."""
    from mlflow import MlflowClient

    from sigdist.config import Config
    from sigdist.reports.figure1 import PANEL_METRICS, TITLES, figure1_report
    from sigdist.reports.figure1 import PANELS as FIGURE1_PANELS
    from sigdist.train import Trainer

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("figure1")
    parent = client.create_run(experiment, run_name="study").info.run_id
    logged = {}
    for name, keys in FIGURE1_PANELS.items():
        cfg = Config().replace(**{"method": "sig", "data.name": name, **keys, "seed": 0,
                                  "train.steps": 4, "loss.k": 16, "train.batch_size": 16,
                                  "run.eval_samples": 500, "run.device": "cpu"})
        trainer = Trainer(cfg)
        metrics = trainer.fit()
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
        for key, value in cfg.to_flat().items():
            client.log_param(run, key, value)
        for key, value in metrics.items():
            client.log_metric(run, key, value, step=4)
        path = tmp_path / f"{name}.pt"
        trainer.save(str(path))
        (tmp_path / name).mkdir()
        (tmp_path / name / "checkpoint.pt").write_bytes(path.read_bytes())
        client.log_artifact(run, str(tmp_path / name / "checkpoint.pt"), "final_checkpoint")
        client.set_terminated(run)
        logged[name] = metrics
    out = tmp_path / "report"
    out.mkdir()
    written = figure1_report(client.tracking_uri, [parent], str(out))
    text = (out / "figure1.md").read_text()
    for name, metrics in logged.items():
        (line,) = [row for row in text.splitlines() if row.startswith(f"| {TITLES[name]} |")]
        for metric in PANEL_METRICS[name]:
            value = metrics[metric]
            assert f"{metric} {value:.3f} ± 0.000 ({value:.3f})" in line
        assert (out / f"figure1_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(written) == 1 + len(FIGURE1_PANELS)
