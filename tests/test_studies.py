"""Study scripts as a user runs them: smoke test end to end, and bad flags refused at once."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "studies" / "gmm25_sweep.py"), *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def test_gmm25_smoke_sweep_runs_and_prints_the_best_trials(tmp_path):
    result = run_script("--smoke-test", "--storage-path", str(tmp_path / "ray"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("best trials (lowest KL):")[1].strip().splitlines()
    assert table[0].split()[:4] == ["method", "lam", "k", "size"]
    assert 1 <= len(table) - 1 <= 4
    for row in table[1:]:
        method, lam, k = row.split()[:3]
        assert method in ("gan", "gan_si") and int(k) in (16, 32)
        assert (float(lam) == 0.0) == (method == "gan")


@pytest.mark.parametrize(("flags", "message"), [
    (["--num-samples", "0"], "--num-samples: got 0; allowed: a number >= 1"),
    (["--cpus-per-trial", "-1"], "--cpus-per-trial: got -1.0"),
    (["--seed", "x"], "invalid int value"),
])
def test_bad_flags_exit_2_before_anything_starts(tmp_path, flags, message):
    result = run_script(*flags, "--storage-path", str(tmp_path / "ray"), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "ray").exists()
