"""benchmarks/gpu_check.py, the prepared GPU check, run on the CPU (its --cpu-fallback): the same
code a lent GPU runs, so the check is known to work before the device time is spent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two studies on real Ray and MLflow, and timed runs


def test_the_cpu_fallback_runs_every_part_and_writes_json_and_markdown(tmp_path, mnist_root):
    out = tmp_path / "gpu"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                           "--cpu-fallback", "--out", str(out), "--data-root", mnist_root,
                           "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check_cpu_fallback.json").read_text())
    assert report["cpu_fallback"] and [s["name"] for s in report["studies"]] == [
        "gpu_check_smoke", "gpu_check_short"]
    for entry in report["studies"]:  # (a): every trial FINISHED, with metrics and sample grids
        assert entry["returncode"] == 0 and entry["all_finished"], entry
    assert [len(s["trials"]) for s in report["studies"]] == [3, 2]
    rows = report["throughput"]  # (b): one process, four at once, seed populations
    assert [(r["processes"], r["members_per_process"], r["kernels"]) for r in rows] == [
        (1, 1, "-"), (4, 1, "-"), (1, 2, "loop"), (1, 2, "vmap")]
    assert all(r["member_steps_per_s"] > 0 and r["peak_mib_per_member"] == 0 for r in rows)
    assert report["table2_projected_min"] == pytest.approx(
        3_000_000 / report["best_member_steps_per_s"] / 60, rel=0.01)
    text = (out / "gpu_check_cpu_fallback.md").read_text()
    assert "## (a) Studies through Ray Tune and MLflow" in text and "is not built" in text
    # the smoke profile and the short study train two seeds a trial
    assert all(t["seeds"] == 2 for entry in report["studies"] for t in entry["trials"])
