"""Study scripts as a user runs them, on a real local Ray with Optuna and MLflow: the smoke
sweeps end to end, what MLflow holds afterwards, a real `mlflow server`, bad flags."""

import json
import os
import re
from pathlib import Path

import optuna
import pytest
from browser import mlflow_server
from processes import free_port
from studyrun import TERMINAL, progress_header, progress_table, run_script, study_runs

from sigdist.config import Config, from_flat, parse_assignment
from sigdist.study.report import pareto_front

# end to end (real Ray, MLflow, study scripts): left out of the fast loop
pytestmark = pytest.mark.slow


def table_rows(stdout: str, title: str, *, images: bool) -> list[dict[str, str]]:
    """The printed table under ``title``, each row a dict by its header (size and width
    columns only for ``images``: the grid's MLP has neither)."""
    lines = stdout.split(title)[1].strip().splitlines()
    header = lines[0].split()
    sizes = ["size", "width"] if images else []
    seeds = ["seeds"] if "seeds" in header else []  # trials of several seeds: mean ± s.e.
    # Stacked MNIST: the classifier ensemble's metrics (docs/classifiers.md)
    metrics = (["ensemble_modes", "ensemble_kl", "confident_modes", "ensemble_high_quality"]
               if "ensemble_kl" in header else ["modes", "kl", "high_quality"])
    assert header == ["method", "lam", "k", *sizes, *seeds, *metrics, "step"]
    rows = []
    for line in lines[1:]:
        if not line.strip():
            break
        rows.append(dict(zip(header, line.replace(" ± ", "±").split(), strict=True)))
    return rows


def mean_of(cell: str) -> float:
    """The mean of a printed "mean ± s.e." cell (or a plain value)."""
    return float(cell.split("±")[0])


def test_smoke_sweep_prints_progress_best_trials_and_the_ui_command(gmm25_smoke):
    result, uri, _ = gmm25_smoke
    # Ray's progress table while it runs: the searched values and the metrics by name
    header = progress_header(result.stdout)
    assert {"method", "lam", "K", "step", "modes", "KL", "HQ"} <= set(header), header
    assert not {"size", "width"} & set(header), header  # the grid's MLP has no width
    for row in progress_table(result.stdout):  # lam: the SIG weight, 0 for plain GAN
        assert (float(row["lam"]) == 0.0) == (row["method"] == "gan"), row
        if row["status"] == "TERMINATED":  # two seeds a trial (the smoke profile): mean ± s.e.
            assert re.fullmatch(r"\d+\.\d{3} ± \d+\.\d{3}", row["KL"]), row
    assert "started with configuration" not in result.stdout  # no config box per trial
    # nothing that needs no action: Ray's token-auth notice, Tune's checkpoint-rate warning
    for noise in ("Token authentication is enabled", "snapshotting has been triggered",
                  "tensorboard"):
        assert noise not in result.stdout + result.stderr, noise
    assert "searching: method, loss.lam, loss.sigma, loss.k; pinned: nothing" in result.stdout
    assert "20 steps each of 2 seeds" in result.stdout
    rows = table_rows(result.stdout, "best trials (lowest KL):", images=False)
    assert 1 <= len(rows) <= 4
    kls = [mean_of(row["kl"]) for row in rows]
    assert kls == sorted(kls)
    for row in rows:
        assert row["method"] in ("gan", "gan_si") and int(row["k"]) in (16, 32)
        assert (float(row["lam"]) == 0.0) == (row["method"] == "gan")  # the SIG weight
        assert 0 <= mean_of(row["modes"]) <= 25 and row["seeds"] == "2"
        assert "±" in row["kl"] and "±" in row["modes"]
    assert f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1" in result.stdout
    assert re.search(r"The trials ranked by KL \(modes, KL, high quality, where each "
                     r"stopped\): http://127\.0\.0\.1:5000/#/experiments/\d+/runs\?"
                     r"viewStateShareKey=[0-9a-f]{32}&workflowType=machine_learning\n",
                     result.stdout), result.stdout[-1500:]
    report = re.search(r"The study report: (\S+/report\.html) ", result.stdout)
    assert report and Path(report.group(1)).read_text().startswith("<!doctype html>")
    counts = re.search(r"4 trials: (\d+) finished, (\d+) stopped early, (\d+) failed\.",
                       result.stdout)
    assert counts and counts.group(3) == "0", result.stdout[-1500:]
    _, _, children = study_runs(uri, "gmm25_sweep_smoke")
    early = [c for c in children if "sigdist.stopped_early" in c.data.tags]
    assert int(counts.group(2)) == len(early) and int(counts.group(1)) == 4 - len(early)


def test_smoke_sweep_tracks_each_trial_as_a_child_run(gmm25_smoke):
    _, uri, tmp = gmm25_smoke
    client, parent, children = study_runs(uri, "gmm25_sweep_smoke")
    assert len(children) == 4
    # artifacts beside the database (mlflow.db: mlflow-artifacts/), not in ./mlruns
    assert not (tmp / "mlruns").exists()
    for run in (parent, *children):
        assert run.info.artifact_uri.startswith((tmp / "mlflow-artifacts").as_uri() + "/")
    for child in children:  # named by what tells them apart (the grid's MLP has no width)
        params = child.data.params
        weight = float(params["loss.lam"])
        assert child.info.run_name.endswith(
            f" {params['method']} lam={weight:.3g} k={params['loss.k']}")
    assert parent.info.status == "FINISHED"
    assert {"optuna/optimization_history.png", "optuna/param_importances.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id, "optuna")}
    best = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "best_trial.json")).read_text())
    assert best["metrics"]["kl"] == min(c.data.metrics["kl"] for c in children)
    # the parent names its best trial (the lowest final KL) and links to it
    (top,) = [c for c in children if c.info.run_id == best["run_id"]]
    assert top.data.metrics["kl"] == min(c.data.metrics["kl"] for c in children)
    assert parent.data.tags["sigdist.best_trial"] == top.info.run_name == best["run_name"]
    assert best["result"] == "final evaluation"
    assert f"(#/experiments/{parent.info.experiment_id}/runs/{top.info.run_id})" in \
        parent.data.tags["mlflow.note.content"]
    # the parent holds the study's settings, not a trial's config
    assert parent.data.params["study.num_samples"] == "4" and "loss.lam" not in parent.data.params
    settings = json.loads(Path(client.download_artifacts(
        parent.info.run_id, "study_settings.json")).read_text())
    assert settings["base"]["train.steps"] == 20 and settings["profile"] == "smoke"
    # the experiment opens on its runs (MLflow's classic view), with the study's shared view
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.{parent.info.run_id}"])
    assert view["orderByKey"] == "metrics.`kl`" and view["orderByAsc"] is True
    assert view["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    assert {"params.`loss.lam`", "params.`loss.k`", "metrics.`modes`", "metrics.`kl`",
            "metrics.`stopped_early_at`"} <= set(view["selectedColumns"])
    report = Path(client.download_artifacts(parent.info.run_id, "report.html")).read_text()
    assert f">{top.info.run_name}</a> &mdash;" in report and report.count("<img") >= 3
    table = json.loads(Path(client.download_artifacts(parent.info.run_id,
                                                      "trials.json")).read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert sorted(r["run_id"] for r in rows) == sorted(c.info.run_id for c in children)
    assert "trials/lam_vs_kl.png" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "trials")}
    keys = set(Config().to_flat())
    for child in children:
        params = dict(child.data.params)
        row = next(r for r in rows if r["run_id"] == child.info.run_id)
        # (MLflow's table keeps 10 significant digits)
        assert row["kl"] == pytest.approx(child.data.metrics["kl"], rel=1e-9)
        assert row["lam"] == pytest.approx(float(params["loss.lam"]), rel=1e-9)
        # the full flat config as resolved, as strings: plain GAN's lam is 0, gan_si's searched
        assert (float(params["loss.lam"]) == 0) == (params["method"] == "gan")
        assert set(params) == keys
        # ... that parses back into a valid config
        config = from_flat(dict(parse_assignment(f"{k}={v}") for k, v in params.items()))
        assert config.data.name == "gmm25" and config.train.steps == 20
        curve = client.get_metric_history(child.info.run_id, "kl")
        steps = [m.step for m in curve]
        assert steps in ([10], [10, 20])  # one point per evaluation, against the step
        assert child.data.metrics["kl"] == curve[-1].value > 0
        # two seeds in the trial: each member's curve, and the trial's metrics are their mean,
        # standard error and worst member
        metrics = child.data.metrics
        assert params["run.seeds"] == "2"
        members = [metrics[f"seed_{m}/kl"] for m in (0, 1)]  # the study's seed is 0
        assert metrics["kl"] == pytest.approx(sum(members) / 2, rel=1e-12)
        assert metrics["kl_se"] == pytest.approx(abs(members[0] - members[1]) / 2, rel=1e-9)
        assert metrics["kl_worst"] == max(members)
        assert metrics["modes_worst"] == min(metrics[f"seed_{m}/modes"] for m in (0, 1))
        assert "seed_0/loss_d" in metrics and "loss_d_se" not in metrics  # losses: no spread
        for member in (0, 1):
            assert [m.step for m in client.get_metric_history(
                child.info.run_id, f"seed_{member}/kl")] == steps
        assert not any(key.endswith("_pm") for key in metrics)  # the progress table's text
        # FINISHED, all 20 steps or stopped early by the scheduler (tagged, with the step)
        assert child.info.status == "FINISHED"
        if steps[-1] < 20:
            assert child.data.tags["sigdist.stopped_early"] == "by the scheduler at step 10 of 20"
            assert child.data.metrics["stopped_early_at"] == 10
        else:
            assert "sigdist.stopped_early" not in child.data.tags
        pictures = [a.path for a in client.list_artifacts(child.info.run_id, "samples")]
        assert pictures == [f"samples/samples_step_{s:07d}.png" for s in steps]
        png = Path(client.download_artifacts(child.info.run_id, pictures[-1]))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # one result, the final evaluation: its checkpoint kept, its metrics, its description
        kept = {a.path for a in client.list_artifacts(child.info.run_id, "final_checkpoint")}
        assert kept == {"final_checkpoint/checkpoint.pt", "final_checkpoint/metrics.json"}
        assert not client.list_artifacts(child.info.run_id, "best_checkpoint")
        final = json.loads(
            Path(client.download_artifacts(child.info.run_id, "final_metrics.json")).read_text())
        assert final["kl"] == child.data.metrics["kl"] and final["step"] == steps[-1]
        kept_metrics = json.loads(Path(client.download_artifacts(
            child.info.run_id, "final_checkpoint/metrics.json")).read_text())
        assert kept_metrics["kl"] == pytest.approx(child.data.metrics["kl"], rel=1e-12)
        description = child.data.tags["mlflow.note.content"]
        assert description.startswith(f"{params['method']}, lam {float(params['loss.lam']):.3g}, K "
                                      f"{params['loss.k']} -> final evaluation: modes ")
        assert f"KL {child.data.metrics['kl']:.3f}; " in description
        assert description.endswith("stopped by ASHA at step 10 of 20" if steps[-1] < 20
                                    else "finished all 20 steps"), description


def test_smoke_sweep_keeps_optunas_history(gmm25_smoke):
    _, _, tmp = gmm25_smoke
    (db,) = (tmp / "ray").glob("*.optuna.db")
    study = optuna.load_study(study_name=db.name.removesuffix(".optuna.db"),
                              storage=f"sqlite:///{db}")
    assert len(study.trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    searched = set().union(*(t.params for t in study.trials))
    assert {"method", "loss.k"} <= searched <= {"method", "loss.lam", "loss.sigma", "loss.k"}


def test_mnist3_smoke_sweep_reports_a_pareto_front(tmp_path, mnist_root):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_script("mnist3_sweep.py", "--smoke-test", "--objective", "pareto",
                        "--set", f"data.root={mnist_root}", "--tracking-uri", uri,
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # a continuous width search: Ray's table shows the width, not the size ("custom" always)
    header = progress_header(result.stdout)
    assert "width" in header and "size" not in header, header
    # the classifier ensemble's quality and KL (docs/classifiers.md)
    front = table_rows(result.stdout, "Pareto front (high quality (ensemble) vs KL (ensemble)):",
                       images=True)
    everyone = table_rows(result.stdout, "best trials (lowest KL (ensemble)):", images=True)
    quality, kl = "ensemble_high_quality", "ensemble_kl"
    assert {"ensemble_modes", "confident_modes", quality, kl} <= set(everyone[0])
    points = [(mean_of(r[quality]), mean_of(r[kl])) for r in everyone]
    expected = {points[i] for i in pareto_front(points, ["max", "min"])}
    assert {(mean_of(r[quality]), mean_of(r[kl])) for r in front} == expected
    client, parent, children = study_runs(uri, "mnist3_sweep_smoke")
    assert len(children) == 3 and all(c.info.status in TERMINAL for c in children)
    assert all(c.data.params["data.root"] == mnist_root for c in children)
    assert all(c.data.tags["sigdist.data_source"] == "mnist-5k" for c in children)
    assert "optuna/pareto_front.png" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "optuna")}


def test_smoke_sweep_against_a_real_mlflow_server(tmp_path):
    with mlflow_server(f"sqlite:///{tmp_path}/server.db", tmp_path) as url:
        result = run_script("gmm25_sweep.py", "--smoke-test", "--num-samples", "2",
                            "--tracking-uri", url, "--storage-path", str(tmp_path / "ray"),
                            cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        client, parent, children = study_runs(url, "gmm25_sweep_smoke")
        assert len(children) == 2 and parent.info.status == "FINISHED"
        for child in children:
            assert child.info.status in TERMINAL and "kl" in child.data.metrics
            # artifacts went through the server into its own store, not next to the client
            assert child.info.artifact_uri.startswith("mlflow-artifacts:")
            assert client.list_artifacts(child.info.run_id, "samples")


@pytest.mark.parametrize(("flags", "message"), [
    (["--num-samples", "0"], "--num-samples: got 0; allowed: a finite number >= 1"),
    (["--cpus-per-trial", "-1"], "--cpus-per-trial: got -1.0"),
    # NaN and inf passed every check and left the trials PENDING forever
    (["--cpus-per-trial", "nan"], "--cpus-per-trial: got nan; allowed: a finite number"),
    (["--cpus-per-trial", "inf"], "--cpus-per-trial: got inf; allowed: a finite number"),
    (["--gpus-per-trial", "nan"], "--gpus-per-trial: got nan; allowed: a finite number"),
    (["--seed", "x"], "invalid int value"),
    (["--objective", "fid"], "invalid choice: 'fid'"),
    (["--set", "loss.k=0"], "config key 'loss.k': got 0"),
    (["--set", "loss.kk=3"], "loss.kk"),
    (["--resume"], "--resume: no study to resume"),
    (["--tracking-uri", "file:///tmp/x"], "unsupported scheme 'file'"),
    (["--tracking-uri", "sqlite:////no/such/dir/m.db"], "does not exist"),
    (["--name", ".."], "--name: got '..'"),
    (["--name", "../escape"], "--name: got '../escape'"),
    (["--gpus-per-trial", "64"], "--gpus-per-trial: got 64, but this machine has"),
    (["--seeds-per-trial", "0"], "--seeds-per-trial: got 0; allowed: 1 to 1024"),
    (["--seeds-per-trial", "1025"], "--seeds-per-trial: got 1025; allowed: 1 to 1024"),
    (["--seeds-per-trial", "2", "--set", "run.seeds=3"], "both set the seeds per trial"),
    (["--member-objective", "worst"], "--member-objective worst: a trial of one seed"),
    (["--member-objective", "best"], "invalid choice: 'best'"),
    # the hostile round of issue 20: tracebacks, hangs and PENDING trials before
    (["--tracking-uri", "sqlite://mlflow.db"], "a sqlite URI has three slashes"),
    (["--tracking-uri", "http://[::1"], "--tracking-uri http://[::1: Invalid IPv6 URL"),
    (["--cpus-per-trial", "4096"], "--cpus-per-trial: got 4096, but this machine has"),
    (["--address", "127.0.0.1:1"], "--address: no Ray cluster answers at 127.0.0.1:1"),
    (["--address", "nonsense"], "--address: got 'nonsense'; allowed: auto, or HOST:PORT"),
])
def test_bad_flags_exit_2_before_anything_starts(tmp_path, flags, message):
    result = run_script("gmm25_sweep.py", *flags, "--storage-path", str(tmp_path / "ray"),
                        cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_second_study_of_the_same_name_is_refused_while_the_first_runs(tmp_path):
    import fcntl

    storage = tmp_path / "ray"
    storage.mkdir()
    with open(storage / ".busy.lock", "a+") as first:  # what a running study holds
        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        first.write("study busy (pid 4242)")
        first.flush()
        result = run_script("gmm25_sweep.py", "--smoke-test", "--name", "busy",
                            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                            "--storage-path", str(storage), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "the study 'busy' under" in result.stderr
    assert "running in study busy (pid 4242)" in result.stderr
    assert not (storage / "busy").exists()


@pytest.mark.parametrize("kind", ["directory", "corrupt"])
def test_a_tracking_uri_that_is_no_database_is_refused_at_once(tmp_path, kind):
    target = tmp_path / "mlflow.db"
    if kind == "directory":
        target.mkdir()
    else:
        target.write_bytes(b"this is not a database" * 100)
    result = run_script("gmm25_sweep.py", "--smoke-test", "--tracking-uri", f"sqlite:///{target}",
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert ("is a directory" if kind == "directory" else "is not an SQLite database") in \
        result.stderr
    assert not (tmp_path / "ray").exists()


def test_a_read_only_storage_path_is_refused_before_ray_starts(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere but on a read-only mount: use a file instead
        blocker = tmp_path / "a_file"
        blocker.write_text("")
        storage = blocker / "ray"
    else:
        storage = tmp_path / "ro"
        storage.mkdir(mode=0o500)
    result = run_script("gmm25_sweep.py", "--smoke-test", "--tracking-uri",
                        f"sqlite:///{tmp_path}/mlflow.db", "--storage-path", str(storage),
                        cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "--storage-path" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_an_unreachable_tracking_server_is_found_before_any_trial(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_script("mnist3_sweep.py", "--smoke-test", "--tracking-uri", url,
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert f"--tracking-uri {url}: MLflow server unreachable" in result.stderr
    assert not (tmp_path / "ray").exists()


def test_keys_set_by_the_user_are_pinned_and_leave_the_search(tmp_path, mnist_root):
    """Also: data.source=auto is resolved once by the driver, and recorded as resolved."""
    failed = Path(mnist_root) / "MNIST" / "download_failed.txt"  # as after an offline attempt
    failed.parent.mkdir(exist_ok=True)
    failed.write_text("URLError: offline\n")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_script("mnist3_sweep.py", "--smoke-test", "--set", "loss.k=16",
                        "--set", "model.size=S", "--set", f"data.root={mnist_root}",
                        "--set", "data.source=auto",
                        "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray"),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data: Stacked MNIST from mnist-5k (data.source=auto)" in result.stdout
    searched = re.search(r"searching: (.*); pinned: (.*)", result.stdout)
    assert searched.group(1) == "method, loss.lam", result.stdout[:2000]
    assert "loss.k=16" in searched.group(2) and "model.size=S" in searched.group(2)
    _, _, children = study_runs(uri, "mnist3_sweep_smoke")
    assert len(children) == 3
    for child in children:  # what every trial ran with, as MLflow holds it
        params = child.data.params
        assert (params["loss.k"], params["model.size"], params["model.width_g"],
                params["model.width_d"]) == ("16", "S", "0.125", "0.125")
        assert params["data.source"] == "mnist-5k"


def test_pinning_every_searched_key_is_refused(tmp_path):
    result = run_script("gmm25_sweep.py", "--smoke-test", "--set", "method=gan",
                        "--set", "loss.k=16", "--storage-path", str(tmp_path / "ray"),
                        cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert ("--set pins every key the study searches (method, loss.lam, loss.sigma, loss.k); "
            "nothing is left to search") in result.stderr
    assert not (tmp_path / "ray").exists()


def test_a_study_one_trial_at_a_time_repeats_exactly(tmp_path):
    """With --max-concurrent 1 nothing depends on timing (which trial ends first decides what
    Optuna has seen and whom ASHA compares): the same seed gives the same trials and numbers."""
    outcomes = []
    for attempt in range(2):
        uri = f"sqlite:///{tmp_path}/mlflow{attempt}.db"
        result = run_script("gmm25_sweep.py", "--smoke-test", "--max-concurrent", "1",
                            "--tracking-uri", uri,
                            "--storage-path", str(tmp_path / f"ray{attempt}"), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        _, _, children = study_runs(uri, "gmm25_sweep_smoke")
        outcomes.append(sorted(
            (c.data.params["method"], c.data.params["loss.lam"], c.data.params["loss.k"],
             c.data.metrics["kl"], c.data.metrics["step"]) for c in children))
    assert len(outcomes[0]) == 4 and outcomes[0] == outcomes[1]


def test_resuming_another_scripts_or_the_smoke_tests_study_exits_2(gmm25_smoke, tmp_path):
    """Before: a smoke study resumed without --smoke-test ran the full profile under a new
    parent run and exited 130; another script's study restarted under the wrong space with a
    traceback; a resume against another database split the study in two."""
    _, uri, tmp = gmm25_smoke
    client, parent, _ = study_runs(uri, "gmm25_sweep_smoke")
    name, storage = parent.info.run_name, str(tmp / "ray")
    before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    for script, flags, message in (
            ("gmm25_sweep.py", ["--tracking-uri", uri], "is a study of 'gmm25_sweep_smoke': "
             "add --smoke-test"),
            ("gmm25_push.py", ["--smoke-test", "--tracking-uri", uri],
             f"no study of gmm25_push named {name!r} in {uri}"),
            ("gmm25_sweep.py", ["--smoke-test", "--tracking-uri",
                                f"sqlite:///{tmp_path}/other.db"], "no such database")):
        result = run_script(script, "--resume", "--name", name, "--storage-path", storage,
                            *flags, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "other.db").exists()
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) \
        == before  # no stray parent run


def test_report_only_takes_only_this_scripts_studies_and_creates_nothing(gmm25_smoke,
                                                                        tmp_path):
    _, uri, _ = gmm25_smoke
    _, parent, _ = study_runs(uri, "gmm25_sweep_smoke")
    out = tmp_path / "out"
    for flags, message in (
            ([parent.info.run_name, "--tracking-uri", uri], "no study of reproduce_table1 "
             f"named {parent.info.run_name!r}"),
            (["x' OR 1=1 --", "--tracking-uri", uri], "--report-only: got \"x' OR 1=1 --\""),
            (["t1", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"],
             f"no tracking database at {tmp_path}/none.db")):
        result = run_script("table1.py", "--report-only", *flags, "--out", str(out),
                            cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not out.exists() and not (tmp_path / "none.db").exists()
    # a bad flag of a report script leaves no --out folder (it was made before the checks)
    result = run_script("table1.py", "--set", "foo=bar", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2 and not out.exists()
