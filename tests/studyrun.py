"""Running the study scripts as a user does, and reading back the MLflow store they leave."""

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = {"FINISHED", "KILLED", "FAILED"}


def run_script(name: str, *args: str, cwd: Path, timeout: float = 600
               ) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, str(ROOT / "studies" / name), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def study_runs(uri: str, experiment: str):
    """The parent run and the child runs of the one study in ``experiment``."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(runs) - 1  # every other run is a child of the study's run
    return client, parents[0], children


def smoke_study(tmp: Path, script: str) -> tuple[subprocess.CompletedProcess, str, Path]:
    """``studies/SCRIPT --smoke-test`` run to its end in ``tmp``, tracked in a sqlite MLflow
    store there: (the finished process, its tracking URI, ``tmp``)."""
    uri = f"sqlite:///{tmp}/mlflow.db"
    result = run_script(script, "--smoke-test", "--tracking-uri", uri,
                        "--storage-path", str(tmp / "ray"), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, uri, tmp


def progress_table(stdout: str) -> list[dict[str, str]]:
    """Ray's last progress table (CLIReporter), which has every metric: a dict per trial row,
    keyed by the column titles."""
    tables = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "Trial name":
            tables.append((cells, []))
        elif tables and len(cells) == len(tables[-1][0]) and cells[0].startswith("train_"):
            tables[-1][1].append(dict(zip(tables[-1][0], cells, strict=True)))
    assert tables, "no progress table in the output:\n" + stdout[-2000:]
    return tables[-1][1]


def progress_header(stdout: str) -> list[str]:
    """The column titles of Ray's last progress table."""
    rows = progress_table(stdout)
    assert rows, "the last progress table has no rows:\n" + stdout[-2000:]
    return list(rows[0])
