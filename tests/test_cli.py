"""The command line, run as a user runs it: a real subprocess, its files and exit codes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

QUICK = ["--set", "train.steps=20", "--set", "run.eval_every=10", "--set", "run.eval_samples=3000",
         "--set", "train.batch_size=64", "--set", "loss.k=64", "--quiet"]


def sigdist(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sigdist", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gan_si"
    result = sigdist("train", "--set", "method=gan_si", *QUICK, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_train_writes_config_metrics_checkpoint_and_picture(trained_run):
    assert sorted(os.listdir(trained_run)) == [".lock", "checkpoint.pt", "config.json",
                                               "metrics.json", "samples", "samples.png"]
    assert sorted(os.listdir(trained_run / "samples")) == ["step_0000010.png", "step_0000020.png"]
    config = json.loads((trained_run / "config.json").read_text())
    assert config["method"] == "gan_si" and config["train.steps"] == 20
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {"modes", "high_quality", "kl"} <= set(metrics) and metrics["step"] == 20
    assert (trained_run / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_writes_an_array(trained_run, tmp_path):
    out = tmp_path / "s.npy"
    result = sigdist("sample", "--checkpoint", str(trained_run / "checkpoint.pt"), "--n", "123",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    samples = np.load(out)
    assert samples.shape == (123, 2) and np.isfinite(samples).all()
    assert os.listdir(tmp_path) == ["s.npy"]  # written under a temporary name, then renamed


def test_sample_refuses_more_than_the_disk_holds_and_writes_nothing(trained_run, tmp_path):
    # 10^13 samples of 2 floats: 80 TB. A memory map onto a disk that fills up dies of SIGBUS
    # and leaves a complete-looking .npy whose tail is zeros; the space is checked first.
    out = tmp_path / "s.npy"
    result = sigdist("sample", "--checkpoint", str(trained_run / "checkpoint.pt"), "--n",
                     str(10**13), "--out", str(out))
    assert result.returncode == 2 and "MiB free; allowed: a smaller --n" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and os.listdir(tmp_path) == []


def test_resume_continues_to_more_steps(trained_run, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("checkpoint.pt", "config.json"):
        (copy / name).write_bytes((trained_run / name).read_bytes())
    result = sigdist("train", "--out", str(copy), "--resume", "--set", "train.steps=30", "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads((copy / "metrics.json").read_text())["step"] == 30


def test_an_empty_out_is_refused_and_nothing_is_written_here(tmp_path):
    before = sorted(os.listdir(tmp_path))
    result = sigdist("train", "--out", "", "--set", "train.steps=2", cwd=tmp_path)
    assert result.returncode == 2 and "--out: got ''" in result.stderr, result.stderr
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--set", "loss.lam=-1"],
         "config key 'loss.lam': got -1.0; allowed: a finite number >= 0"),
        (["train", "--set", "loss.lamda=1"], "unknown config key 'loss.lamda'"),
        # Adam's float32 step overflowed: a traceback and a run directory without a checkpoint
        (["train", "--set", "train.lr=1e300"], "config key 'train.lr': got 1e+300"),
        (["train", "--set", "method=vae9"],
         "allowed: one of sig, gan, gan_si, wgan_gp, wgan_gp_si"),
        (["train", "--set", "loss.k=zero"], "config key 'loss.k': got 'zero'"),
        (["train", "--resume"], "no checkpoint"),
        (["sample", "--checkpoint", "missing.pt", "--n", "5"], "no such file missing.pt"),
    ],
)
def test_bad_input_exits_2_with_one_message_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    target = str(out / "x.npy") if args[0] == "sample" else str(out)
    if args[0] == "sample":
        out.mkdir()
    result = sigdist(*args, "--out", target)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_existing_run_is_not_overwritten(trained_run):
    before = (trained_run / "checkpoint.pt").read_bytes()
    result = sigdist("train", *QUICK, "--out", str(trained_run))
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert (trained_run / "checkpoint.pt").read_bytes() == before


def test_score_rates_real_grid_samples_as_perfect(tmp_path):
    import torch

    from sigdist.data import toy_data

    samples = toy_data("gmm25").sample(50_000, torch.Generator().manual_seed(0)).numpy()
    path, out = tmp_path / "real.npy", tmp_path / "metrics.json"
    np.save(path, samples)
    result = sigdist("score", "--data", "gmm25", "--samples", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.read_text())
    assert metrics["modes"] == 25 and metrics["kl"] < 0.005 and metrics["n"] == 50_000


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_score_onto_a_full_disk_says_so_in_one_line(tmp_path):
    import torch

    from sigdist.data import toy_data

    path = tmp_path / "real.npy"
    np.save(path, toy_data("gmm25").sample(2000, torch.Generator().manual_seed(0)).numpy())
    result = sigdist("score", "--data", "gmm25", "--samples", str(path), "--out", "/dev/full")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "sigdist score: cannot write --out /dev/full: No space left on device" in \
        result.stderr
    assert json.loads(result.stdout)["n"] == 2000  # the scores still printed


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((10, 3)), "got shape (10, 3); allowed for gmm25: (n, 2)"),
        (np.array(["a", "b"]), "allowed: real numbers"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "1 values are NaN or infinite"),
        (np.array([[0.0, np.inf]]), "1 values are NaN or infinite"),
        (np.array([[1 + 2j, 0.0]]), "got dtype complex128; allowed: real numbers"),
        (np.zeros((0, 2)), "no samples; allowed: n >= 1 rows"),
        (np.array(3.0), "got a single number (shape ())"),
    ],
)
def test_score_refuses_bad_arrays(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    result = sigdist("score", "--data", "gmm25", "--samples", str(path))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.slow  # several CLI runs in a row
def test_score_refuses_bad_files_before_computing(tmp_path):
    empty, archive = tmp_path / "empty.npy", tmp_path / "a.npz"
    empty.write_bytes(b"")
    np.savez(archive, x=np.zeros((4, 2)))
    picture = tmp_path / "img.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((4, 2)))
    huge = tmp_path / "huge.npy"  # its header claims 16 TB, its body is 64 bytes
    with open(huge, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 2)})
        fh.write(bytes(64))
    for args, message in (
            ((str(empty),), "not a .npy file"),
            ((str(huge),), "a torn or malformed file"),
            ((str(archive),), "not a .npy file"),
            ((str(picture),), "not a .npy file"),
            ((str(good), "--out", str(tmp_path)), "is a directory"),
            ((str(good), "--out", str(tmp_path / "missing" / "m.json")), "does not exist")):
        result = sigdist("score", "--data", "gmm25", "--samples", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "pickle" not in result.stderr


def test_score_reads_a_big_endian_array_as_its_native_twin(tmp_path):
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(2000, 2))
    native, swapped = tmp_path / "native.npy", tmp_path / "big.npy"
    np.save(native, samples.astype("<f8"))
    np.save(swapped, samples.astype(">f8"))
    results = [sigdist("score", "--data", "gmm25", "--samples", str(p)) for p in (native, swapped)]
    assert all(r.returncode == 0 for r in results), results[1].stderr[-2000:]
    assert json.loads(results[0].stdout) == json.loads(results[1].stdout)


def test_score_refuses_unknown_data(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 2)))
    result = sigdist("score", "--data", "cifar100", "--samples", str(path))
    assert result.returncode == 2 and "config key 'data.name': got 'cifar100'" in result.stderr


def _copy_run(trained_run, where):
    where.mkdir()
    for name in ("checkpoint.pt", "config.json", "metrics.json"):
        (where / name).write_bytes((trained_run / name).read_bytes())
    return where


@pytest.mark.slow  # several CLI runs in a row
def test_resume_of_a_finished_run_keeps_it_and_fewer_steps_are_refused(trained_run, tmp_path):
    copy = _copy_run(trained_run, tmp_path / "copy")
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    done = json.loads(before["metrics.json"])["step"]
    result = sigdist("train", "--out", str(copy), "--resume", "--quiet")
    assert result.returncode == 0 and "nothing to resume" in result.stderr
    fewer = sigdist("train", "--out", str(copy), "--resume", "--set",
                    f"train.steps={done - 1}", "--quiet")
    assert fewer.returncode == 2 and f"below the {done} steps" in fewer.stderr
    after = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before  # metrics, config and checkpoint untouched


def test_resume_removes_the_temp_file_a_killed_checkpoint_write_left(trained_run, tmp_path):
    copy = _copy_run(trained_run, tmp_path / "killed")
    done = json.loads((copy / "metrics.json").read_text())["step"]
    stale = copy / "checkpoint.pt.99999.tmp"  # what a writer killed mid-save leaves
    stale.write_bytes(b"half a checkpoint")
    result = sigdist("train", "--out", str(copy), "--resume", "--set",
                     f"train.steps={done + 2}", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not stale.exists() and not list(copy.glob("*.tmp"))
    assert json.loads((copy / "metrics.json").read_text())["step"] == done + 2


def test_resume_writes_the_final_outputs_a_run_killed_before_them_lacks(trained_run, tmp_path):
    copy = _copy_run(trained_run, tmp_path / "no_metrics")
    final = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").unlink()  # killed between the last checkpoint and metrics.json
    checkpoint = (copy / "checkpoint.pt").read_bytes()
    result = sigdist("train", "--out", str(copy), "--resume", "--quiet")
    assert result.returncode == 0 and "has no metrics.json" in result.stderr, result.stderr
    completed = json.loads((copy / "metrics.json").read_text())
    assert completed["step"] == final["step"] and (copy / "samples.png").is_file()
    # the same evaluation of the same checkpoint: every metric as the run wrote it
    assert {k: completed[k] for k in ("modes", "kl", "high_quality")} == {
        k: final[k] for k in ("modes", "kl", "high_quality")}
    assert (copy / "checkpoint.pt").read_bytes() == checkpoint
    again = sigdist("train", "--out", str(copy), "--resume", "--quiet")
    assert again.returncode == 0 and "nothing to resume" in again.stderr


def test_a_picture_that_cannot_be_written_stops_the_run_with_one_line(tmp_path):
    out = tmp_path / "run"
    (out / "samples" / "step_0000020.png").mkdir(parents=True)  # the PNG's path: unwritable
    result = sigdist("train", "--set", "method=gan_si", *QUICK, "--out", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("sigdist: run stopped at step 20: cannot write ") and (
        "step_0000020.png" in line and "--resume" in line)
    # the checkpoint of step 20 was written before the picture: resume finishes the run
    again = sigdist("train", "--out", str(out), "--resume", "--quiet")
    assert again.returncode == 0 and (out / "metrics.json").is_file()


def test_a_run_directory_in_use_is_refused_naming_the_holder(trained_run, tmp_path):
    import fcntl

    copy = _copy_run(trained_run, tmp_path / "busy")
    with open(copy / ".lock", "a+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("sigdist train (pid 4242)")
        holder.flush()
        result = sigdist("train", "--out", str(copy), "--resume", "--set", "train.steps=40",
                         "--quiet")
    assert result.returncode == 2
    assert "is in use by sigdist train (pid 4242)" in result.stderr
    assert json.loads((copy / "metrics.json").read_text())["step"] < 40


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    result = sigdist("train", "--out", str(target), "--set", "train.steps=2")
    assert result.returncode == 2 and "is a file" in result.stderr
    assert "Traceback" not in result.stderr and target.read_text() == "keep me"


@pytest.mark.slow  # several CLI runs in a row
def test_sample_streams_into_the_file(trained_run, tmp_path):
    out = tmp_path / "many.npy"
    result = sigdist("sample", "--checkpoint", str(trained_run / "checkpoint.pt"), "--n",
                     "25001", "--out", str(out))
    assert result.returncode == 0, result.stderr
    samples = np.load(out, mmap_mode="r")
    assert samples.shape == (25001, 2) and samples.dtype == np.float32
    again = tmp_path / "again.npy"  # chunked writing gives the same samples as one batch
    sigdist("sample", "--checkpoint", str(trained_run / "checkpoint.pt"), "--n", "25001",
            "--out", str(again))
    assert np.array_equal(np.load(again), np.asarray(samples))


def _broken_checkpoint(trained_run, tmp_path, kind: str):
    """A run directory whose checkpoint is empty, lacks a part, or holds weights that do not
    fit its own config."""
    import torch

    run = _copy_run(trained_run, tmp_path / kind)
    path = run / "checkpoint.pt"
    if kind == "empty":
        path.write_bytes(b"")
        return run
    if kind == "png":  # torch's own message would advise weights_only=False
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
        return run
    state = torch.load(path, weights_only=True)
    if kind == "no_generator":
        del state["generator"]
    elif kind == "no_config":
        del state["config"]
    elif kind == "negative_step":
        state["step"] = -50
    else:  # weights of 100-unit layers under a config of 50-unit layers
        state["config"] = {**state["config"], "model.hidden": 50}
    torch.save(state, path)
    return run


@pytest.mark.slow  # several CLI runs in a row
@pytest.mark.parametrize("kind", ["empty", "no_generator", "no_config", "mismatched", "png",
                                  "negative_step"])
def test_unusable_checkpoints_are_refused_by_sample_and_resume(trained_run, tmp_path, kind):
    run = _broken_checkpoint(trained_run, tmp_path, kind)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    out = tmp_path / "samples.npy"
    sampled = sigdist("sample", "--checkpoint", str(run / "checkpoint.pt"), "--n", "10",
                      "--out", str(out))
    resumed = sigdist("train", "--out", str(run), "--resume", "--set", "train.steps=40",
                      "--quiet")
    for result in (sampled, resumed):
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1 and "checkpoint" in result.stderr
        assert "weights_only" not in result.stderr and "unsafe" not in result.stderr
    if kind == "negative_step":
        assert "holds step -50" in sampled.stderr
    assert not out.exists()
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before


@pytest.mark.slow  # several CLI runs in a row
def test_names_too_long_and_seeds_out_of_range_are_refused(trained_run, tmp_path):
    long_name = "x" * 300
    train = sigdist("train", *QUICK, "--out", str(tmp_path / long_name))
    sample = sigdist("sample", "--checkpoint", str(trained_run / "checkpoint.pt"), "--n", "5",
                     "--out", str(tmp_path / (long_name + ".npy")))
    seed = sigdist("sample", "--checkpoint", str(trained_run / "checkpoint.pt"), "--n", "5",
                   "--seed", str(2**40), "--out", str(tmp_path / "s.npy"))
    for result, says in ((train, "File name too long"), (sample, "File name too long"),
                         (seed, "--seed: got 1099511627776")):
        assert result.returncode == 2 and says in result.stderr, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # several CLI runs in a row
def test_a_read_only_file_system_is_refused_before_any_work(trained_run, tmp_path):
    """A real read-only mount (a mount namespace of the test's own): root's permission bits
    would not stop a write, the file system does."""
    from processes import namespaces_work

    if not namespaces_work():
        pytest.skip("needs `unshare --mount` (root or a privileged container)")
    ro = tmp_path / "ro"
    existing = ro / "existing_run"
    existing.mkdir(parents=True)
    python = f"{sys.executable} -m sigdist"
    quick = " ".join(QUICK)
    script = (f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
              f"{{ {python} train {quick} --out {ro}/new; echo rc=$?; "
              f"{python} train {quick} --out {existing}; echo rc=$?; "
              f"{python} sample --checkpoint {trained_run}/checkpoint.pt --n 5 "
              f"--out {ro}/s.npy; echo rc=$?; }}")
    result = subprocess.run(["unshare", "--mount", "bash", "-c", script], capture_output=True,
                            text=True, timeout=300)
    assert result.stdout.split() == ["rc=2"] * 3, result.stdout + result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert all("Read-only file system" in line or "not writable" in line for line in lines)
    assert sorted(p.name for p in ro.iterdir()) == ["existing_run"]
    assert list(existing.iterdir()) == []


def test_keys_prints_every_key_with_its_meaning_and_the_readme_table_is_its_output():
    from pathlib import Path

    from sigdist.config import allowed_keys

    plain = sigdist("keys")
    lines = plain.stdout.strip().splitlines()
    assert [line.split("=")[0] for line in lines] == allowed_keys()
    assert all("  # " in line and len(line.split("  # ")[1]) > 8 for line in lines)
    table = sigdist("keys", "--markdown").stdout.strip()
    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    assert table in page  # regenerate with `sigdist keys --markdown` when a key changes
    assert all(line.count("|") == 4 for line in table.splitlines())  # no stray | in a cell
    assert "``" not in sigdist("--help").stdout  # no reStructuredText markup in the help
