"""The study's MLflow callback against a real sqlite store, driven hook by hook as Tune's driver
drives it (a stub trial: Tune's own Trial object, not started)."""

import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient
from ray.train._internal.session import _TrainingResult
from ray.tune import Checkpoint, CheckpointConfig
from ray.tune.experiment import Trial

from sigdist.study.tracking import (
    MlflowTrialCallback,
    TrackingStopper,
    forget_deleted_checkpoints,
    start_study_run,
    tracking_failure,
)

CONFIG = {"method": "gan_si", "loss.lam": 0.1, "loss.k": 8, "data.name": "gmm25",
          "train.steps": 30}


def stub_trial(trial_id: str) -> Trial:
    return Trial("__stub", config=dict(CONFIG), trial_id=trial_id, stub=True)


def report(callback: MlflowTrialCallback, trial: Trial, step: int, kl: float) -> None:
    callback.on_trial_result(0, [trial], trial, {"step": step, "kl": kl, "timestamp": step})


def test_a_step_trained_again_after_the_driver_restarted_is_logged_once(tmp_path):
    """A driver killed after logging step 20 but before the study saved it: the resumed study
    (a new callback) restores the trial from step 10 and reports 20 again."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_study_run(uri, "exp", "study", {})
    trial = stub_trial("t1")
    first = MlflowTrialCallback(uri, parent, metric="kl", mode="min")
    first.on_trial_start(0, [trial], trial)
    for step, kl in ((10, 1.0), (20, 0.5)):
        report(first, trial, step, kl)
    resumed = MlflowTrialCallback(uri, parent, metric="kl", mode="min")
    resumed.on_trial_start(0, [trial], trial)
    for step, kl in ((20, 0.5), (30, 0.25)):
        report(resumed, trial, step, kl)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_run(parent).info.experiment_id],
                                "tags.`sigdist.trial_id` = 't1'")
    history = client.get_metric_history(run.info.run_id, "kl")
    assert [(m.step, m.value) for m in history] == [(10, 1.0), (20, 0.5), (30, 0.25)]


def test_a_database_deleted_mid_study_stops_it_with_one_reason(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_study_run(uri, "exp", "study", {})
    trial = stub_trial("t1")
    callback = MlflowTrialCallback(uri, parent, metric="kl", mode="min")
    stopper = TrackingStopper(parent)
    callback.on_trial_start(0, [trial], trial)
    report(callback, trial, 10, 1.0)
    assert tracking_failure(parent) is None and not stopper.stop_all()
    Path(tmp_path / "mlflow.db").unlink()
    callback._client = None  # a new connection, as after the pool's recycling
    report(callback, trial, 20, 0.5)  # no exception out of a hook: Tune would fail the trial
    callback.on_trial_complete(0, [trial], trial)
    reason = tracking_failure(parent)
    assert reason is not None and reason.startswith(uri + ": "), reason
    assert stopper.stop_all()



def checkpointed_trial(directory: Path, trial_id: str) -> Trial:
    """A trial whose Tune checkpoint manager (keeping two) lists c0 and c1; c0 is then deleted,
    as by a driver killed after it registered c2 (deleting c0) and before it saved the study."""
    trial = Trial("__stub", config={}, trial_id=trial_id, stub=True,
                  checkpoint_config=CheckpointConfig(num_to_keep=2))
    for index in (0, 1):
        (directory / f"c{index}").mkdir(parents=True)
        trial.run_metadata.checkpoint_manager.register_checkpoint(_TrainingResult(
            checkpoint=Checkpoint.from_directory(str(directory / f"c{index}")),
            metrics={"step": index}))
    shutil.rmtree(directory / "c0")
    (directory / "c2").mkdir()
    return trial


def test_checkpoints_a_killed_driver_deleted_are_not_deleted_again(tmp_path):
    c2 = _TrainingResult(checkpoint=Checkpoint.from_directory(str(tmp_path / "a" / "c2")),
                         metrics={"step": 2})
    as_resumed = checkpointed_trial(tmp_path / "a", "a")
    forget_deleted_checkpoints(as_resumed)
    as_resumed.run_metadata.checkpoint_manager.register_checkpoint(c2)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["c1", "c2"]  # two kept
    assert len(as_resumed.run_metadata.checkpoint_manager.best_checkpoint_results) == 2
    # the control: Tune alone deletes c0 again, and raises
    unpruned = checkpointed_trial(tmp_path / "b", "b")
    with pytest.raises(FileNotFoundError):
        unpruned.run_metadata.checkpoint_manager.register_checkpoint(_TrainingResult(
            checkpoint=Checkpoint.from_directory(str(tmp_path / "b" / "c2")),
            metrics={"step": 2}))


def test_two_studies_starting_at_once_on_a_new_database_both_start(tmp_path):
    """Before: one of them died in MLflow's migration ("Online migration expected to match
    one row"), every time here: both made the new database's tables."""
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    starts = [subprocess.Popen(
        [sys.executable, "-c", "from sigdist.study.tracking import start_study_run; "
         f"start_study_run({uri!r}, 'exp', {name!r}, {{}})"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in starts]
    assert all(code == 0 for code, _ in results), results
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("exp").experiment_id
    assert sorted(r.info.run_name for r in client.search_runs([experiment])) == ["a", "b"]
