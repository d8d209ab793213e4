"""Studies under faults, on real Ray, Optuna and MLflow: a diverging trial, a killed trial
worker, a killed driver resumed with --resume, and a real 2-node Ray cluster on this machine."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from processes import free_port, in_pid_namespace, namespaces_work, stop_process_group, wait_for
from studyrun import ROOT, TERMINAL, run_script, study_runs

pytestmark = pytest.mark.slow
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def trial_results(study_dir: Path) -> dict[str, list[dict]]:
    """Every trial's results so far, as the driver wrote them (trial directory -> results)."""
    found = {}
    for path in study_dir.glob("*/result.json"):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        found[path.parent.name] = [json.loads(line) for line in lines]
    return found


def start_script(name: str, *args: str, cwd: Path, env: dict | None = None,
                 new_session: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "studies" / name), *args], cwd=cwd,
                            env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=new_session)


def test_a_diverging_trial_fails_with_its_reason_while_the_others_finish(tmp_path):
    """The learning rate is searched over {3e-3, 1e30}: the 1e30 trials diverge at once."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    driver = textwrap.dedent(f"""
        from sigdist.config import from_flat
        from sigdist.study.runner import StudyOptions, run_study
        def space(s):
            s.categorical("loss.k", [16])
            s.set("train.lr_d", s.categorical("train.lr", [3e-3, 1e30]))
        base = from_flat({{"data.name": "gmm25", "method": "gan_si", "train.steps": 20,
                           "run.eval_every": 10, "run.eval_samples": 2000}}).to_flat()
        options = StudyOptions(
            name="diverge", experiment="diverge", base=base, num_samples=4, max_concurrent=2,
            cpus_per_trial=1, gpus_per_trial=0, seed=7, address=None,
            storage_path={str(tmp_path / "ray")!r}, tracking_uri={uri!r}, space=space)
        results = run_study(options, verbose=0)
        print("errors", results.num_errors)
    """)
    result = subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    _, _, children = study_runs(uri, "diverge")
    assert len(children) == 4
    by_lr = {}
    for child in children:
        by_lr.setdefault(float(child.data.params["train.lr"]), []).append(child)
    assert set(by_lr) == {3e-3, 1e30}, "the seeded search should try both learning rates"
    for child in by_lr[1e30]:
        assert child.info.status == "FAILED"
        assert "trial diverged: " in child.data.tags["sigdist.failure"]
        assert "diverged at step 1" in child.data.tags["sigdist.failure"]
    for child in by_lr[3e-3]:
        assert child.info.status in ("FINISHED", "KILLED") and child.data.metrics["kl"] > 0
    assert f"errors {len(by_lr[1e30])}" in result.stdout


def test_a_killed_trial_worker_resumes_from_its_checkpoint_in_the_same_run(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    steps, every = 3000, 250
    proc = start_script("gmm25_sweep.py", "--num-samples", "1", "--name", "killworker",
                        "--set", f"train.steps={steps}", "--set", f"run.eval_every={every}",
                        "--set", "run.eval_samples=5000", "--tracking-uri", uri,
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path)
    try:
        study_dir = tmp_path / "ray" / "killworker"

        def running_trial():
            for results in trial_results(study_dir).values():
                if results and 3 * every <= results[-1]["step"] < steps - 2 * every:
                    return results[-1]
            return None

        last = wait_for(running_trial, timeout=300, what="the trial's third report", proc=proc)
        os.kill(last["pid"], signal.SIGKILL)  # the trial's worker process, mid-run
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    _, _, (child,) = study_runs(uri, "gmm25_sweep")  # one trial: one run, never a duplicate
    assert child.info.status == "FINISHED"
    assert "sigdist.last_restart_reason" in child.data.tags
    steps_logged = [m.step for m in
                    mlflow.MlflowClient(uri).get_metric_history(child.info.run_id, "kl")]
    assert steps_logged == list(range(every, steps + 1, every))  # resumed, not restarted
    (results,) = trial_results(study_dir).values()
    pids = {r["pid"] for r in results}
    assert len(pids) == 2 and last["pid"] in pids  # a new worker took over


def test_a_killed_driver_resumes_with_the_optuna_history_kept(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    trials, every = 8, 250
    flags = ["--num-samples", str(trials), "--max-concurrent", "2", "--set", "train.steps=1500",
             "--set", f"run.eval_every={every}", "--set", "run.eval_samples=5000",
             "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray")]
    # Tune saves the study's state at least 10 s apart by default, and ASHA ends most trials
    # of these (seconds long) at their first report: every second, the kill below comes while
    # the searcher still has trials to propose.
    proc = start_script("gmm25_sweep.py", *flags, cwd=tmp_path,
                        env={**ENV, "TUNE_GLOBAL_CHECKPOINT_S": "1"})
    try:
        def first_report():
            dirs = list((tmp_path / "ray").glob("gmm25_sweep-*/"))
            reported = dirs and any(trial_results(dirs[0]).values())
            return (dirs[0], time.time()) if reported else None

        study_dir, seen = wait_for(first_report, timeout=300, what="a first report", proc=proc)

        def state_saved_since():
            return any(p.stat().st_mtime > seen
                       for p in study_dir.glob("experiment_state-*.json"))

        wait_for(state_saved_since, timeout=120, what="a saved study state", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    before = trial_results(study_dir)
    assert 1 <= len(before) < trials  # the searcher still had trials to propose after the resume
    resumed = run_script("gmm25_sweep.py", *flags, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr, resumed.stderr[-5000:]
    assert re.search(rf"{trials} trials: \d+ finished, \d+ stopped early, 0 failed\.",
                     resumed.stdout), resumed.stdout[-1500:]
    _, parent, children = study_runs(uri, "gmm25_sweep")
    assert parent.info.run_name == study_dir.name and parent.info.status == "FINISHED"
    # A trial started after Tune's last save is unknown to the resumed study, which proposes
    # it again: its run ends KILLED, marked lost. Every other run is one of the trials.
    lost = [c for c in children if "sigdist.lost" in c.data.tags]
    assert len(children) - len(lost) == trials and all(c.info.status == "KILLED" for c in lost)
    assert all(c.info.status in TERMINAL for c in children)
    study = optuna.load_study(study_name=study_dir.name,
                              storage=f"sqlite:///{study_dir}.optuna.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == trials  # nothing proposed twice, nothing lost
    # the lost proposals are marked FAIL (one may have been asked for but never started)
    assert len(study.trials) - trials >= len(lost)
    assert all(t.state == optuna.trial.TrialState.FAIL for t in study.trials
               if t not in complete)
    # a searcher restarted from scratch would repeat its first proposals exactly: a GAN-SI
    # proposal (its lam and sigma are continuous) appears once (plain GAN's has only K to vary)
    si = [json.dumps(t.params, sort_keys=True) for t in complete
          if t.params["method"] == "gan_si"]
    assert si and len(set(si)) == len(si)
    for trial_dir, results in trial_results(study_dir).items():
        if trial_dir in before and before[trial_dir]:
            # a trial interrupted mid-run went on from its checkpoint, not from step 0 (a
            # step reported after Tune's last save is trained again: Ray's log has it twice)
            restarts = [r["step"] for r in results[1:] if r["iterations_since_restore"] == 1]
            assert all(step > every for step in restarts), [r["step"] for r in results]
    client = mlflow.MlflowClient(uri)
    for child in children:
        if "sigdist.lost" in child.data.tags:
            continue
        # MLflow holds one value per step: the curve of a trial that went on from a
        # checkpoint has each evaluation once, none missing
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "kl")]
        assert steps == list(range(every, steps[-1] + 1, every)), steps


def start_ray_cluster(tmp_path: Path, *, nodes: int, env: dict) -> tuple[subprocess.Popen, int]:
    """A Ray cluster of ``nodes`` nodes (1 CPU each) on this machine, every process of it in a
    PID namespace of its own: stopping the returned process ends exactly this cluster."""
    if not namespaces_work():
        pytest.skip("needs `unshare --pid` (root or a privileged container) to stop exactly "
                    "the Ray processes it starts")
    ray = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    start = f"{ray} start --num-cpus=1 --node-ip-address=127.0.0.1"
    script = (f"{start} --head --port={port} --include-dashboard=false --disable-usage-stats"
              + "".join(f" && {start} --address=127.0.0.1:{port}" for _ in range(nodes - 1))
              + " && exec sleep infinity")
    cluster = subprocess.Popen(in_pid_namespace(["bash", "-c", script]), env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)

    def all_nodes():
        status = subprocess.run([ray, "status", f"--address=127.0.0.1:{port}"], env=env,
                                capture_output=True, text=True, timeout=60).stdout
        active = status.split("Active:")[1].split("Pending:")[0] if "Active:" in status else ""
        return active.count(" node_") == nodes

    try:
        wait_for(all_nodes, timeout=150, what=f"{nodes} Ray nodes", proc=cluster)
    except BaseException:
        stop_process_group(cluster)
        raise
    return cluster, port


def test_trials_land_on_both_nodes_of_a_two_node_cluster(tmp_path):
    """`ray start --head` + `ray start --address`: two Ray nodes of 1 CPU each on this machine,
    with Ray's token authentication on (a token file every node and the driver read)."""
    ray = str(Path(sys.executable).with_name("ray"))
    token = tmp_path / "auth_token"
    token.write_text(os.urandom(32).hex())
    env = {**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cluster, port = start_ray_cluster(tmp_path, nodes=2, env=env)
    try:
        wrong = {**env, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}
        refused = subprocess.run([ray, "status", f"--address=127.0.0.1:{port}"], env=wrong,
                                 capture_output=True, text=True, timeout=60)
        result = subprocess.run(
            # trials of a few seconds, so that two run at once (each node has one CPU)
            [sys.executable, str(ROOT / "studies" / "gmm25_sweep.py"), "--smoke-test",
             "--set", "train.steps=1000", "--set", "run.eval_every=500",
             "--address", f"127.0.0.1:{port}", "--tracking-uri", uri,
             "--storage-path", str(tmp_path / "ray")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    finally:
        stop_process_group(cluster)  # this cluster's processes only, never `ray stop`
    assert refused.returncode != 0  # token auth is on: no token, no access
    assert result.returncode == 0, result.stderr[-3000:]
    _, _, children = study_runs(uri, "gmm25_sweep_smoke")
    nodes = {c.data.tags["sigdist.node_id"] for c in children}
    assert len(children) == 4 and len(nodes) == 2  # each node (1 CPU) ran trials


def test_the_studys_own_ray_takes_token_authentication_whatever_the_environment_says(
        tmp_path):
    """RAY_AUTH_MODE=disabled in the environment would start the study's Ray open to anyone
    who reaches the machine's address; it starts with token authentication, and says so."""
    probe = textwrap.dedent(f"""
        import os, subprocess, ray
        from sigdist.study.runner import init_ray
        init_ray(None)
        gcs = ray.get_runtime_context().gcs_address
        open_client = {{**os.environ, "RAY_AUTH_MODE": "disabled"}}  # a client with no token
        status = subprocess.run([{str(Path(sys.executable).with_name("ray"))!r}, "status",
                                 "--address", gcs], env=open_client, capture_output=True,
                                timeout=60)
        token = subprocess.run([{str(Path(sys.executable).with_name("ray"))!r}, "status",
                                "--address", gcs], capture_output=True, timeout=60)
        print("open client", status.returncode, "with token", token.returncode)
        ray.shutdown()
    """)
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, timeout=300,
                            env={**ENV, "RAY_AUTH_MODE": "disabled"}, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RAY_AUTH_MODE=disabled ignored: the study's own Ray takes token authentication" \
        in result.stdout
    opened, tokened = re.search(r"open client (\d+) with token (\d+)", result.stdout).groups()
    assert opened != "0" and tokened == "0", result.stdout


def test_a_study_without_address_starts_its_own_ray_and_joins_no_other(tmp_path):
    """A Ray cluster already running here (another user's, with another token) is neither
    joined nor touched by a study started without --address."""
    token = tmp_path / "foreign_token"
    token.write_text(os.urandom(32).hex())
    foreign_env = {**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    cluster, port = start_ray_cluster(tmp_path, nodes=1, env=foreign_env)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    try:
        result = run_script("gmm25_sweep.py", "--smoke-test", "--tracking-uri", uri,
                            "--storage-path", str(tmp_path / "ray"), cwd=tmp_path)
        still_there = cluster.poll() is None
    finally:
        stop_process_group(cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    assert still_there
    # the study's own Ray has this machine's CPUs, not the foreign cluster's single one
    assert f"/{os.cpu_count()}.0 CPUs" in result.stdout or f"/{os.cpu_count()} CPUs" in \
        result.stdout, result.stdout[-2000:]
    client, parent, children = study_runs(uri, "gmm25_sweep_smoke")
    assert parent.info.status == "FINISHED" and len(children) == 4


@pytest.mark.parametrize(("stop", "to_group"), [(signal.SIGINT, False), (signal.SIGTERM, False),
                                               (signal.SIGTERM, True)],
                         ids=["sigint", "sigterm", "sigterm-to-its-group"])
def test_ctrl_c_ends_the_study_interrupted_and_resume_clears_the_marks(tmp_path, stop,
                                                                       to_group):
    """Tune catches SIGINT itself and returns as if the study were done; the study must exit
    130 with its parent and its cut-short trial KILLED and tagged, and --resume finish it.
    SIGTERM takes the same path (Ray's own handler would abort the driver with a stack dump
    and leave the trials' runs RUNNING), also sent to the driver's whole process group as
    `timeout`, systemd and Slurm send it (Ray's processes died first, the driver hung on its
    lost GCS and exited 1 with every run RUNNING)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    steps, every = 1500, 250
    flags = ["--num-samples", "2", "--max-concurrent", "1", "--name", "ctrlc",
             "--set", f"train.steps={steps}", "--set", f"run.eval_every={every}",
             "--set", "run.eval_samples=5000", "--tracking-uri", uri,
             "--storage-path", str(tmp_path / "ray")]
    proc = start_script("gmm25_sweep.py", *flags, cwd=tmp_path, new_session=to_group)
    try:
        def mid_run():
            return any(results and every <= results[-1]["step"] < steps - 2 * every
                       for results in trial_results(tmp_path / "ray" / "ctrlc").values())

        wait_for(mid_run, timeout=300, what="a trial mid-run", proc=proc)
        if to_group:
            os.killpg(proc.pid, stop)  # its own session: exactly the processes it started
        else:
            proc.send_signal(stop)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted; continue it with the same command and --resume --name ctrlc" in err
    assert "SIGTERM received" not in err and "Traceback" not in err, err[-3000:]
    _, parent, children = study_runs(uri, "gmm25_sweep")
    assert parent.info.status == "KILLED" and parent.data.tags["sigdist.ended"] == "interrupted"
    (cut,) = [c for c in children if "sigdist.interrupted" in c.data.tags]
    assert cut.info.status == "KILLED" and "sigdist.stopped" not in cut.data.tags
    assert all(c.info.status in TERMINAL for c in children)

    resumed = run_script("gmm25_sweep.py", *flags, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _, parent, children = study_runs(uri, "gmm25_sweep")
    assert parent.info.status == "FINISHED"
    assert not {"sigdist.ended", "sigdist.interrupted"} & set(parent.data.tags)
    assert len(children) == 2
    again = next(c for c in children if c.info.run_id == cut.info.run_id)
    assert "sigdist.interrupted" not in again.data.tags
    assert again.info.status in ("FINISHED", "KILLED")  # ASHA may stop it, now as a scheduler


def test_ctrl_c_ends_a_table_study_killed_and_resume_without_a_name_writes_its_report(
        tmp_path):
    """The paper's tables run through the same driver: Ctrl-C exits 130 with the parent run
    KILLED and no report from part of the runs; --resume without --name takes the latest
    study of the script, finishes it and writes the report."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    steps, every = 1500, 250
    flags = ["--smoke-test", "--set", "method=gan", "--max-concurrent", "1",
             "--set", f"train.steps={steps}", "--set", f"run.eval_every={every}",
             "--set", "run.eval_samples=5000", "--tracking-uri", uri,
             "--storage-path", str(tmp_path / "ray"), "--out", str(tmp_path / "report")]
    proc = start_script("table1.py", *flags, cwd=tmp_path)
    try:
        def mid_run():
            return any(results and every <= results[-1]["step"] < steps - 2 * every
                       for study in (tmp_path / "ray").glob("reproduce_table1_smoke-*")
                       for results in trial_results(study).values())

        wait_for(mid_run, timeout=300, what="a run mid-way", proc=proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted; continue it with the same command and --resume --name" in err
    _, parent, children = study_runs(uri, "reproduce_table1_smoke")
    assert parent.info.status == "KILLED" and parent.data.tags["sigdist.ended"] == "interrupted"
    assert all(c.info.status in TERMINAL for c in children)
    assert not (tmp_path / "report" / "table1.md").exists()

    resumed = run_script("table1.py", *flags, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _, again, children = study_runs(uri, "reproduce_table1_smoke")
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert sorted(c.data.params["seed"] for c in children) == ["0", "1"]
    assert all(c.info.status == "FINISHED" and c.data.metrics["step"] == steps
               for c in children)
    assert "| GAN | 2 | 1500 |" in (tmp_path / "report" / "table1.md").read_text()


def test_a_database_deleted_mid_study_ends_it_with_one_line(tmp_path):
    """Before: a traceback per hook and trial (24), trials failing one by one. Now the first
    tracking error stops the study: exit 1, one line with the database's reason."""
    database = tmp_path / "mlflow.db"
    proc = start_script("gmm25_sweep.py", "--num-samples", "4", "--max-concurrent", "2",
                        "--set", "train.steps=3000", "--set", "run.eval_every=250",
                        "--set", "run.eval_samples=5000", "--tracking-uri",
                        f"sqlite:///{database}", "--storage-path", str(tmp_path / "ray"),
                        "--name", "gone", cwd=tmp_path)
    try:
        wait_for(lambda: any(trial_results(tmp_path / "ray" / "gone").values()), timeout=300,
                 what="a first report", proc=proc)
        database.unlink()
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    (line,) = [line for line in err.splitlines() if "tracking failed" in line]
    # sqlite's words: the open connection writes to a deleted file ("readonly database")
    assert re.fullmatch(re.escape(f"study gone stopped: its MLflow tracking failed (sqlite:///"
                                  f"{database}: OperationalError: ") + r"[^()]+"
                        + re.escape(f"); Ray's results are kept under {tmp_path}/ray/gone"),
                        line), line
