"""`studies/cifar10_sweep.py` as a user runs it: the offline smoke sweep end to end on a real
local Ray with Optuna and MLflow, and the missing-data / missing-weights stops before Ray."""

import json
import os
from pathlib import Path

import pytest
from studyrun import TERMINAL, progress_header, run_script, smoke_study, study_runs

# end to end (real Ray, MLflow, study scripts): left out of the fast loop
pytestmark = pytest.mark.slow

METHODS = {"gan", "gan_si", "wgan_gp", "wgan_gp_si"}


@pytest.fixture(scope="module")
def cifar10_smoke(tmp_path_factory):
    return smoke_study(tmp_path_factory.mktemp("cifar10_smoke"), "cifar10_sweep.py")


def test_smoke_sweep_says_it_uses_the_stand_ins(cifar10_smoke):
    result, _, tmp = cifar10_smoke
    assert "stand-in feature extractor, not Inception" in result.stdout
    assert f"CIFAR-10 is not under {tmp / 'data'}" in result.stdout
    assert (tmp / "data" / "cifar-10-stand-in-batches-py" / "batches.meta").is_file()
    lines = result.stdout.split("best trials (lowest FID):")[1].strip().splitlines()
    assert lines[0].split() == ["method", "lam", "k", "size", "width", "seeds",
                                "inception_score", "fid", "step"]  # as MLflow names them
    assert "searching: method, loss.lam, loss.k, model.width_g; pinned: nothing" in result.stdout
    header = progress_header(result.stdout)  # Ray's table: the searched values, IS and FID
    assert {"method", "lam", "K", "width", "step", "IS", "FID"} <= set(header), header
    assert not {"modes", "KL", "HQ"} & set(header), header
    rows = lines[1:lines.index("")] if "" in lines else lines[1:]
    # two seeds a trial: "mean ± s.e." cells
    fids = [float(row.replace(" ± ", "±").split()[7].split("±")[0]) for row in rows]
    assert fids == sorted(fids) and 1 <= len(fids) <= 4


def test_smoke_sweep_tracks_is_fid_and_samples_per_evaluation(cifar10_smoke):
    _, uri, _ = cifar10_smoke
    client, parent, children = study_runs(uri, "cifar10_sweep_smoke")
    assert len(children) == 4 and parent.info.status == "FINISHED"
    best = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "best_trial.json")).read_text())
    assert best["metrics"]["fid"] == min(c.data.metrics["fid"] for c in children)
    assert parent.data.metrics["best_trial.fid"] == best["metrics"]["fid"]
    # the parent's trials at a glance: FID, the study's metric, against lam (no KL here)
    assert {"trials/lam_vs_fid.png"} == {
        a.path for a in client.list_artifacts(parent.info.run_id, "trials")}
    table = json.loads(Path(client.download_artifacts(parent.info.run_id,
                                                      "trials.json")).read_text())
    rows = {row[table["columns"].index("run_id")]: dict(zip(table["columns"], row, strict=True))
            for row in table["data"]}
    for child in children:
        fid = rows[child.info.run_id]["fid"]  # (MLflow's table keeps 10 significant digits)
        assert fid == pytest.approx(child.data.metrics["fid"], rel=1e-9)
    for child in children:
        params = child.data.params
        assert params["data.name"] == "cifar10" and params["data.stand_in"] == "True"
        assert params["metrics.extractor"] == "stand-in" and params["method"] in METHODS
        # the plain arms' weight of L_K is 0, the -SI arms' as searched
        assert (float(params["loss.lam"]) == 0.0) == (not params["method"].endswith("_si"))
        assert child.info.status in TERMINAL
        fid = client.get_metric_history(child.info.run_id, "fid")
        score = client.get_metric_history(child.info.run_id, "inception_score")
        steps = [m.step for m in fid]
        assert steps in ([4], [4, 8]) and [m.step for m in score] == steps
        assert all(m.value > 0 for m in fid) and all(m.value >= 1 - 1e-9 for m in score)
        counts = [m.value for m in client.get_metric_history(child.info.run_id, "num_samples")]
        assert counts == [100, 200][:len(steps)]  # fewer samples before the last evaluation
        pictures = [a.path for a in client.list_artifacts(child.info.run_id, "samples")]
        assert pictures == [f"samples/samples_step_{s:07d}.png" for s in steps]


def test_a_real_study_without_the_data_stops_before_ray(tmp_path):
    result = run_script("cifar10_sweep.py", "--set", f"data.root={tmp_path / 'data'}",
                        "--set", "data.download=false", "--tracking-uri",
                        f"sqlite:///{tmp_path}/mlflow.db", "--storage-path",
                        str(tmp_path / "ray"), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "cifar-10-python.tar.gz" in result.stderr and "Trial" not in result.stdout
    assert os.listdir(tmp_path) == []


def test_a_real_study_without_the_weights_stops_before_ray(tmp_path, monkeypatch):
    from sigdist.data.cifar10 import write_stand_in

    write_stand_in(str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty cache
    result = run_script("cifar10_sweep.py", "--set", f"data.root={tmp_path / 'data'}",
                        "--set", "data.stand_in=true", "--set", "data.download=false",
                        "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                        "--storage-path", str(tmp_path / "ray"), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "metrics.inception_weights=PATH" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["data"]
