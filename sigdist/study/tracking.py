"""MLflow tracking of a study: one parent run per study, one child run per trial.

Everything is logged from the driver, by a Ray Tune callback, so workers need no route to the
tracking server and the run status follows what Tune decided: FINISHED for a trial that trained
all its steps, KILLED for one the scheduler stopped early, FAILED (with the reason as the tag
``sigdist.failure``) for one that raised. A trial is found again by its Tune trial id, so a trial
restored from a checkpoint, after a worker or driver crash, continues its own run."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from ray import tune
from sqlalchemy.exc import SQLAlchemyError

from sigdist.config import has_width
from sigdist.reports.runs import FINAL_CHECKPOINT
from sigdist.study.trainable import METRICS_FILE
from sigdist.train import CHECKPOINT_FILE

TRIAL_TAG = "sigdist.trial_id"
STUDY_TAG = "sigdist.study"
PARENT_TAG = "mlflow.parentRunId"
FAILURE_TAG = "sigdist.failure"
LOST_TAG = "sigdist.lost"
INTERRUPTED_TAG = "sigdist.interrupted"
STOPPED_EARLY_TAG = "sigdist.stopped_early"
STOPPED_EARLY_METRIC = "stopped_early_at"
ENDED_TAG = "sigdist.ended"
DESCRIPTION_TAG = "mlflow.note.content"  # the run's description in the MLflow UI (markdown)
# MLflow 3 opens an experiment of this kind on its runs table (the classic, model-training
# view); without it, on the GenAI traces overview
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# Ray's bookkeeping in every result; not curves worth plotting.
_NOT_METRICS = {"done", "training_iteration", "timestamp", "pid", "iterations_since_restore",
                "time_since_restore", "time_this_iter_s"}


class TrackingError(ValueError):
    """The tracking URI cannot be used: says which URI, why, and what is allowed."""


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri``, or MLflow's own default (``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``);
    a relative sqlite path is made absolute, so the printed UI command works from anywhere."""
    uri = uri or mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + os.path.abspath(uri[len("sqlite:///"):])
    return uri


def check_tracking_uri(uri: str, *, timeout: float = 5.0) -> None:
    """Fail fast, before any trial starts: an unreachable server or unusable database raises
    :class:`TrackingError`. MLflow itself would retry a dead server for minutes."""
    allowed = "allowed: sqlite:///PATH or http(s)://HOST:PORT of an `mlflow server`"
    try:
        scheme = urllib.parse.urlparse(uri).scheme
    except ValueError as err:  # "http://[::1": an unclosed IPv6 address
        raise TrackingError(f"--tracking-uri {uri}: {err}; {allowed}") from None
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///"):
            raise TrackingError(f"--tracking-uri {uri}: a sqlite URI has three slashes before "
                                f"its path; {allowed}")
        path = uri[len("sqlite:///"):]
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            raise TrackingError(f"--tracking-uri {uri}: directory {directory!r} does not exist "
                                f"or is not writable; {allowed}")
        if os.path.isdir(path):
            raise TrackingError(f"--tracking-uri {uri}: {path} is a directory; {allowed}")
        if os.path.exists(path):
            import sqlite3

            try:  # MLflow would retry a file that is no database for minutes
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                    db.execute("PRAGMA schema_version").fetchone()
            except sqlite3.DatabaseError as err:
                raise TrackingError(f"--tracking-uri {uri}: {path} is not an SQLite database "
                                    f"({err}); {allowed}") from None
        return
    if scheme not in ("http", "https"):
        raise TrackingError(f"--tracking-uri {uri}: unsupported scheme {scheme!r}; {allowed}")
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status != 200:
                raise TrackingError(f"--tracking-uri {uri}: /health answered {response.status}")
    except (urllib.error.URLError, OSError, ValueError) as err:  # ValueError: a bad port
        reason = getattr(err, "reason", err)
        raise TrackingError(f"--tracking-uri {uri}: MLflow server unreachable ({reason}); start "
                            "it (`mlflow server --host 127.0.0.1 --port 5000`) or name another"
                            ) from err


def find_study_runs(client: MlflowClient, experiment_ids: list[str], study: str,
                    max_results: int = 1000) -> list:
    """The parent runs of the study named ``study`` in these experiments."""
    return client.search_runs(experiment_ids, f"tags.`{STUDY_TAG}` = '{study}'",
                              max_results=max_results)


def sqlite_path(uri: str) -> str | None:
    """The database file of a ``sqlite:///PATH`` URI (None for a server)."""
    return uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: for ``sqlite:///DIR/NAME.db``, the folder
    ``DIR/NAME-artifacts`` beside the database (MLflow's default is ``./mlruns`` of whatever
    directory the driver runs in, shared by every database there); a server keeps its own."""
    database = sqlite_path(uri)
    if database is None:
        return None
    return Path(os.path.splitext(database)[0] + "-artifacts").as_uri()


SETTINGS_ARTIFACT = "study_settings.json"


@contextlib.contextmanager
def one_at_a_time(uri: str):
    """For a sqlite URI, hold an exclusive lock on the database's folder: two studies that
    start at once on a new database both made its tables, and MLflow's migration failed in
    one of them. The folder, not a file beside the database: nothing is left behind."""
    database = sqlite_path(uri)
    if database is None:
        yield
        return
    folder = os.open(os.path.dirname(database) or ".", os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


def start_study_run(uri: str, experiment: str, study: str, params: dict[str, Any],
                    settings: dict[str, Any] | None = None) -> str:
    """The parent run of ``study`` (created, or found again when the study is resumed); a new
    one keeps ``settings`` as :data:`SETTINGS_ARTIFACT`, which a resumed study reads back."""
    # the first use makes a new database's tables; two studies of one script at once would
    # both create its experiment
    with one_at_a_time(uri):
        client = MlflowClient(uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            experiment_id = client.create_experiment(
                experiment, artifact_location=artifact_location(uri),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        else:
            experiment_id = found.experiment_id
            if EXPERIMENT_KIND_TAG not in found.tags:  # made before studies set the kind
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    runs = find_study_runs(client, [experiment_id], study)
    if runs:  # resumed: running again, no longer marked as ended
        run_id = runs[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        for tag in (ENDED_TAG, INTERRUPTED_TAG):
            if tag in runs[0].data.tags:
                client.delete_tag(run_id, tag)
        return run_id
    run = client.create_run(experiment_id, run_name=study, tags={STUDY_TAG: study})
    client.log_batch(run.info.run_id,
                     params=[Param(k, str(v)) for k, v in sorted(params.items())])
    if settings is not None:
        client.log_dict(run.info.run_id, settings, SETTINGS_ARTIFACT)
    return run.info.run_id


def saved_study_settings(uri: str, experiment: str, study: str) -> dict[str, Any] | None:
    """The settings a study was started with (None: no such study, or one started before
    studies kept them)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = find_study_runs(client, [found.experiment_id], study, max_results=1) if found else []
    if not runs or SETTINGS_ARTIFACT not in {
            a.path for a in client.list_artifacts(runs[0].info.run_id)}:
        return None
    with open(client.download_artifacts(runs[0].info.run_id, SETTINGS_ARTIFACT)) as fh:
        return json.load(fh)


def numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in result.items() if k not in _NOT_METRICS
            and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def forget_deleted_checkpoints(trial) -> None:
    """Drop, from the checkpoints Tune keeps of ``trial``, those gone from storage. A driver
    killed after deleting its oldest checkpoints but before saving the study lists them still
    when resumed, and Tune, keeping two, would delete them again: a FileNotFoundError
    traceback at the trial's next checkpoint (ray-project/ray#27790 is its restore side)."""
    from pyarrow.fs import FileType

    manager = getattr(trial.run_metadata, "checkpoint_manager", None)
    kept = getattr(manager, "_checkpoint_results", None)  # Ray 2.x's own list; else nothing
    if not kept:
        return
    manager._checkpoint_results = [
        result for result in kept
        if result.checkpoint is None or result.checkpoint.filesystem.get_file_info(
            result.checkpoint.path).type != FileType.NotFound]


def run_description(config: dict[str, Any], metrics: dict[str, float], metric: str) -> str:
    """What a trial was and its result, in one line: "gan_si, lam 0.1, K 64, width 0.72 ->
    final evaluation: modes 914, KL 0.600" (the metrics shown beside ``metric``)."""
    from sigdist.metrics.members import base_metric
    from sigdist.metrics.names import METRICS, table_metrics

    parts = [str(config.get("method")), f"lam {float(config.get('loss.lam', 0)):.3g}",
             f"K {config.get('loss.k')}"]
    if has_width(config.get("data.name")):
        parts.append(f"width {float(config.get('model.width_g', 0)):.3g}")
    scores = [f"{METRICS[name].label} {METRICS[name].format(metrics[name])}"
              for name in table_metrics(base_metric(metric))[:2] if name in metrics]
    return ", ".join(parts) + (" -> final evaluation: " + ", ".join(scores) if scores else "")


def _failure_reason(trial) -> str:
    try:
        with open(trial.error_file) as fh:
            text = fh.read().strip()
    except (OSError, TypeError):
        return "trial failed (no error file)"
    # The last line of the traceback names the error; keep some context before it.
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-3:])[-4000:]


# What tracking raises when its database or server is gone: MLflow's errors (a server's
# connection errors too, after its retries) and SQLAlchemy's unwrapped ones.
TRACKING_ERRORS = (MlflowException, SQLAlchemyError)
# parent run id -> why its tracking stopped; the driver process runs the callback and the
# stopper, which read it, and the study's driver reports it
_TRACKING_FAILURES: dict[str, str] = {}


def tracking_failure(parent_run_id: str) -> str | None:
    """Why the study under ``parent_run_id`` stopped tracking (None: it did not)."""
    return _TRACKING_FAILURES.get(parent_run_id)


def _tracked(hook):
    """A callback hook that, on the study's first tracking error, records it and stops
    tracking: the stopper then ends the study with that one reason, instead of a traceback per
    hook and trial."""
    @functools.wraps(hook)
    def guarded(self, *args, **kwargs):
        if self.parent_run_id in _TRACKING_FAILURES:
            return None
        try:
            return hook(self, *args, **kwargs)
        except (*TRACKING_ERRORS, OSError) as err:  # OSError: an artifact store's disk
            while err.__cause__ is not None or err.__context__ is not None:
                err = err.__cause__ or err.__context__  # the database's own words
            reason = (str(err).strip().splitlines() or [""])[0][:300]
            _TRACKING_FAILURES[self.parent_run_id] = (
                f"{self.tracking_uri}: {type(err).__name__}: {reason}")
            return None
    return guarded


class TrackingStopper(tune.Stopper):
    """Ends every trial of a study whose tracking failed: nothing would record them."""

    def __init__(self, parent_run_id: str):
        self.parent_run_id = parent_run_id

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.parent_run_id in _TRACKING_FAILURES


class MlflowTrialCallback(tune.Callback):
    """Logs each trial as a child run of the study's parent run (see the module docstring).

    Per trial: params = the full flat config; a metric curve per reported value against the
    training step; artifacts: the sample grid of every evaluation (``samples/``) and, once it
    ends, its last checkpoint (``final_checkpoint/``: the model whose final evaluation is the
    trial's result, as Optuna, ASHA and the ranking take it) and ``final_metrics.json``; a
    one-line description of what it was and how it ended."""

    def __init__(self, tracking_uri: str, parent_run_id: str, *, metric: str, mode: str):
        self.tracking_uri, self.parent_run_id = tracking_uri, parent_run_id
        self.metric, self.mode = metric, mode
        self._client: MlflowClient | None = None
        self._run_ids: dict[str, str] = {}
        self._last_step: dict[str, int] = {}  # the last step logged of each trial
        self._closed: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with the study
        return {**self.__dict__, "_client": None}

    # Tune saves this with its experiment state, so a resumed study knows the trials it closed.
    def get_state(self) -> dict[str, Any]:
        return {"closed": sorted(self._closed)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._closed = set(state["closed"])

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def run_id(self, trial) -> str:
        """The trial's child run: cached, found by its trial id tag, or created."""
        if trial.trial_id in self._run_ids:
            return self._run_ids[trial.trial_id]
        parent = self.client.get_run(self.parent_run_id)
        experiment_id = parent.info.experiment_id
        found = self.client.search_runs(
            [experiment_id], f"tags.`{TRIAL_TAG}` = '{trial.trial_id}' and "
            f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'")
        if found:  # a resumed trial's run: what it logged before the driver stopped
            run_id = found[0].info.run_id
            if "step" in found[0].data.metrics:
                self._last_step[trial.trial_id] = int(found[0].data.metrics["step"])
        else:
            config = trial.config
            name = (f"{trial.trial_id} {config.get('method')} lam={config.get('loss.lam'):.3g}"
                    f" k={config.get('loss.k')}")
            if has_width(config.get("data.name")):
                name += f" {config.get('model.size')} w={config.get('model.width_g', 0):.3g}"
            run_id = self.client.create_run(
                experiment_id, run_name=name,
                tags={TRIAL_TAG: trial.trial_id, PARENT_TAG: self.parent_run_id}).info.run_id
            # the trial's flat config as resolved at its proposal (plain GAN: loss.lam 0)
            params = [Param(k, str(v)) for k, v in sorted(config.items())]
            for start in range(0, len(params), 100):  # MLflow takes 100 params per batch
                self.client.log_batch(run_id, params=params[start:start + 100])
        self._run_ids[trial.trial_id] = run_id
        return run_id

    @_tracked
    def on_trial_start(self, iteration, trials, trial, **info):
        run_id = self.run_id(trial)
        self._closed.discard(trial.trial_id)
        self.client.update_run(run_id, status="RUNNING")
        if INTERRUPTED_TAG in self.client.get_run(run_id).data.tags:  # resumed
            self.client.delete_tag(run_id, INTERRUPTED_TAG)

    @_tracked
    def on_trial_result(self, iteration, trials, trial, result, **info):
        step = int(result.get("step", result.get("training_iteration", 0)))
        run_id = self.run_id(trial)
        if step <= self._last_step.get(trial.trial_id, -1):
            # A driver killed after logging this step but before saving the study resumes the
            # trial from the checkpoint before it: the step is trained again, to the same
            # values (resume is exact), and logged once.
            return
        self._last_step[trial.trial_id] = step
        metrics = [Metric(k, v, int(result.get("timestamp", 0) * 1000), step)
                   for k, v in numeric_metrics(result).items()]
        tags = [RunTag(f"sigdist.{key}", str(result[key]))
                for key in ("node_ip", "node_id", "data_source") if key in result]
        self.client.log_batch(run_id, metrics=metrics, tags=tags)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        forget_deleted_checkpoints(trial)
        self._log_checkpoint(trial, checkpoint)

    @_tracked
    def _log_checkpoint(self, trial, checkpoint) -> None:
        run_id = self.run_id(trial)
        with checkpoint.as_directory() as directory:
            for picture in sorted(os.listdir(directory)):
                if picture.startswith("samples_step_") and picture.endswith(".png"):
                    self.client.log_artifact(run_id, os.path.join(directory, picture), "samples")

    def _close(self, trial, status: str, ending: str, **tags: str) -> None:
        """End the trial's run: its final metrics, its description (what it was, its result,
        ``ending``: how it ended), ``tags`` and ``status``."""
        if trial.trial_id in self._closed:
            return
        run_id = self.run_id(trial)
        metrics = numeric_metrics(trial.last_result or {})
        if metrics:
            self.client.log_dict(run_id, metrics, "final_metrics.json")
        description = run_description(trial.config, metrics, self.metric) + "; " + ending
        for key, value in {**tags, DESCRIPTION_TAG: description}.items():
            self.client.set_tag(run_id, key, value)
        self.client.set_terminated(run_id, status=status)
        self._closed.add(trial.trial_id)

    def _log_final_checkpoint(self, trial) -> None:
        """The trial's last checkpoint: the model its result (its final evaluation) is of."""
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return
        with checkpoint.as_directory() as directory:
            self.client.log_artifact(self.run_id(trial), os.path.join(directory, CHECKPOINT_FILE),
                                     FINAL_CHECKPOINT)
            if os.path.exists(os.path.join(directory, METRICS_FILE)):
                self.client.log_artifact(self.run_id(trial),
                                         os.path.join(directory, METRICS_FILE), FINAL_CHECKPOINT)

    @_tracked
    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id in self._closed:
            return
        steps = int(trial.config.get("train.steps", 0))
        last = int((trial.last_result or {}).get("step", 0))
        self._log_final_checkpoint(trial)
        if last >= steps:
            self._close(trial, "FINISHED", f"finished all {steps:,} steps")
        else:
            # stopped by the scheduler before its last step: a normal end of a trial that
            # fell behind, FINISHED (not a failure) and marked as such
            self.client.log_metric(self.run_id(trial), STOPPED_EARLY_METRIC, last, step=last)
            self._close(trial, "FINISHED", f"stopped by ASHA at step {last:,} of {steps:,}",
                        **{STOPPED_EARLY_TAG: f"by the scheduler at step {last} of {steps}"})

    @_tracked
    def on_trial_recover(self, iteration, trials, trial, **info):
        self.client.set_tag(self.run_id(trial), "sigdist.last_restart_reason",
                            _failure_reason(trial))

    @_tracked
    def on_trial_error(self, iteration, trials, trial, **info):
        reason = _failure_reason(trial)
        last = int((trial.last_result or {}).get("step", 0))
        self._close(trial, "FAILED", f"failed at step {last:,}: {reason.splitlines()[-1]}",
                    **{FAILURE_TAG: reason})

    @_tracked
    def on_experiment_end(self, trials, **info):
        # A trial the scheduler stopped or that finished was closed by its hook. One Tune
        # ended without a hook was cut short by an interrupt (Ctrl-C: Tune stops every running
        # trial and saves the study): KILLED, tagged, continued by --resume. A study with
        # unfinished trials says so on its parent run, where the driver reads it.
        unfinished = [trial for trial in trials if trial.status not in ("TERMINATED", "ERROR")]
        for trial in trials:
            if trial.status == "ERROR":
                self.on_trial_error(0, trials, trial)
            elif trial.status == "TERMINATED" and trial.trial_id not in self._closed:
                steps = int(trial.config.get("train.steps", 0))
                last = int((trial.last_result or {}).get("step", 0))
                if last >= steps:
                    self._log_final_checkpoint(trial)
                    self._close(trial, "FINISHED", f"finished all {steps:,} steps")
                else:
                    unfinished.append(trial)
                    self._close(trial, "KILLED", f"interrupted at step {last:,} of {steps:,}; "
                                "--resume continues it",
                                **{INTERRUPTED_TAG: f"at step {last} of {steps}; --resume "
                                   "continues it"})
        if unfinished:
            self.client.set_tag(self.parent_run_id, INTERRUPTED_TAG,
                                f"{len(unfinished)} trial(s) unfinished")
        # A trial started after Tune last saved the study is unknown to a resumed study (its
        # proposal is made again, as a new trial): its run ends KILLED and says so.
        known = {trial.trial_id for trial in trials}
        experiment_id = self.client.get_run(self.parent_run_id).info.experiment_id
        for run in self.client.search_runs(
                [experiment_id], f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and "
                "attributes.status = 'RUNNING'"):
            if run.data.tags.get(TRIAL_TAG) not in known:
                self.client.set_tag(run.info.run_id, LOST_TAG, "the driver stopped before the "
                                    "study saved this trial; the resumed study ran it anew")
                self.client.set_terminated(run.info.run_id, status="KILLED")

