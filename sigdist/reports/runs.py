"""A study's runs read back from MLflow: its child runs (one per trial), a table of them, and a
run's final model, rebuilt from the checkpoint logged on it."""

from __future__ import annotations

from sigdist.metrics.members import SE_SUFFIX, WORST_SUFFIX
from sigdist.metrics.names import metrics_of

FINAL_CHECKPOINT = "final_checkpoint"  # the artifact folder of a run's last checkpoint


def trial_runs(tracking_uri: str, parent_run_id: str):
    """(experiment id, the study's child runs in start order)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=10_000)
    return experiment_id, runs


def run_config(run) -> dict:
    """A trial run's flat config, typed again from its MLflow params."""
    from sigdist.config import allowed_keys, parse_assignment

    known = set(allowed_keys())
    return dict(parse_assignment(f"{key}={value}")
                for key, value in run.data.params.items() if key in known)


def trials_frame(runs):
    """One row per trial run: its name, status, lam, K, size, width, seeds and the last value
    of each metric its data set has (and, for several seeds, its standard error and worst
    member), for ``mlflow.log_table`` and the lam figure."""
    import pandas as pd

    rows = []
    for run in runs:
        params, metrics = run.data.params, run.data.metrics
        rows.append({"run": run.info.run_name, "run_id": run.info.run_id,
                     "status": run.info.status,
                     "stopped_early": run.data.tags.get("sigdist.stopped_early", ""),
                     "method": params.get("method"),
                     "lam": float(params.get("loss.lam", "nan")),
                     "k": int(params.get("loss.k", 0)), "size": params.get("model.size"),
                     "width": float(params.get("model.width_g", "nan")),
                     "seeds": int(params.get("run.seeds", 1)),
                     **{key: metrics.get(key) for name in metrics_of(params.get("data.name"))
                        for key in (name, name + SE_SUFFIX, name + WORST_SUFFIX)
                        if key == name or key in metrics},
                     "step": metrics.get("step")})
    return pd.DataFrame(rows)


def child_runs(client, parent_run_ids: list[str], key: str) -> list:
    """The studies' child runs (one per training run); where two studies ran the same value
    of ``key`` (a method, a data set), the later study's runs replace the earlier's."""
    chosen: dict[str, list] = {}
    for parent_run_id in parent_run_ids:
        parent = client.get_run(parent_run_id)
        runs: dict[str, list] = {}
        for run in client.search_runs([parent.info.experiment_id],
                                      f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                      max_results=10_000):
            runs.setdefault(run.data.params.get(key), []).append(run)
        chosen.update(runs)
    return [run for runs in chosen.values() for run in runs]


def load_final_trainer(client, run_id: str, scratch: str):
    """The trainer of a child run, rebuilt from its final checkpoint in MLflow."""
    from sigdist.train import CHECKPOINT_FILE, Trainer

    path = client.download_artifacts(run_id, f"{FINAL_CHECKPOINT}/{CHECKPOINT_FILE}", scratch)
    return Trainer.from_checkpoint(path, device="cpu")
