"""Every study script builds its options through the one driver (``sigdist.study.script``): the
same checks, names and paths for the sweeps, the grid studies and the paper's tables. Nothing
here starts Ray: the options are built as ``main`` builds them, before it starts anything."""

import importlib.util
import os
import time

import pytest
from studyrun import ROOT, run_script

from sigdist.study.script import StudyScript, build_options, parse_args


def load_scripts() -> dict[str, StudyScript]:
    """Each ``studies/*.py`` file's StudyScript, by file name."""
    scripts = {}
    for path in sorted((ROOT / "studies").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"study_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # not __main__: defines, runs nothing
        found = [v for v in vars(module).values() if isinstance(v, StudyScript)]
        if found:
            scripts[path.stem] = found[0]
    return scripts


SCRIPTS = load_scripts()


def test_every_study_is_a_study_script_of_the_one_driver():
    assert set(SCRIPTS) == {"cifar10_sweep", "figure1", "gmm25_push", "gmm25_sweep",
                            "mnist3_capacity_map", "mnist3_sweep", "mnist3_table2", "table1"}


def options_for(name: str, tmp_path, *flags: str):
    script = SCRIPTS[name]
    argv = ["--smoke-test", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
            "--set", f"data.root={tmp_path / 'data'}", *flags]
    if script.data_name == "mnist3":
        argv += ["--set", "data.source=mnist-5k"]
    parser, args = parse_args(script, argv)
    return build_options(script, args, parser)[0]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_cloud_storage_path_reaches_tune_as_it_is(name, tmp_path):
    cloud = f"file://{tmp_path}"  # a URI Tune takes as it is (s3://... is one too), reachable
    options = options_for(name, tmp_path, "--storage-path", cloud)
    assert options.storage_path == cloud
    assert options.study_dir == f"{cloud}/{options.name}"


def test_a_cloud_storage_path_out_of_reach_exits_2_before_ray(tmp_path, capsys):
    """Before: a pyarrow traceback once Tune started, the MLflow parent run already made."""
    unreachable = "s3://bucket/x?endpoint_override=127.0.0.1:1&scheme=http&region=us-east-1"
    with pytest.raises(SystemExit) as ended:
        options_for("gmm25_sweep", tmp_path, "--storage-path", unreachable)
    assert ended.value.code == 2
    assert f"--storage-path: cannot reach {unreachable} (" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_resume_without_a_name_takes_the_latest_study_of_that_script(name, tmp_path):
    storage = tmp_path / "ray"
    experiment = SCRIPTS[name].prefix + "_smoke"
    # two studies of this script, the second newer; a newer one of another script
    for index, study in enumerate((f"{experiment}-1", f"{experiment}-2", "other_smoke-3")):
        (storage / study).mkdir(parents=True)
        (storage / study / "tuner.pkl").write_bytes(b"")
        os.utime(storage / study / "tuner.pkl", (time.time() + index, time.time() + index))
    from sigdist.study.tracking import start_study_run

    start_study_run(f"sqlite:///{tmp_path}/mlflow.db", experiment, f"{experiment}-2", {})
    options = options_for(name, tmp_path, "--storage-path", str(storage), "--resume")
    assert options.resume and options.name == f"{experiment}-2"


def test_resume_without_a_name_under_a_cloud_path_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as ended:
        options_for("table1", tmp_path, "--storage-path", "s3://bucket/x", "--resume")
    assert ended.value.code == 2
    assert "--resume: give --name for a study under s3://bucket/x" in capsys.readouterr().err


@pytest.mark.parametrize(("script", "flags"), [
    ("mnist3_sweep.py", ["--set", "method=vae"]),  # an Optuna study, the method pinned
    ("mnist3_table2.py", ["--set", "method=veegan"]),  # a grid study, the method pinned
])
def test_a_method_the_data_set_cannot_take_exits_2_before_ray(tmp_path, script, flags):
    result = run_script(script, "--smoke-test", *flags, "--storage-path", str(tmp_path / "ray"),
                        "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].endswith(
        "with data.name='mnist3'; allowed data for "
        f"{flags[1].split('=')[1]}: gmm25, ring, ring_noise")
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--set", "data.name=mnist3"],
     "grid cell method=vae, seed=0: config key 'method': got 'vae' with data.name='mnist3'"),
    # a population of a method that trains one seed per run
    (["--seeds-per-trial", "2"], "grid cell method=vae, seed=0: config key 'run.seeds': got 2 "
     "for method 'vae'; allowed: 1 (seed populations train sig, gan, gan_si, wgan_gp, "
     "wgan_gp_si)"),
])
def test_a_grid_cell_that_is_no_valid_run_exits_2_naming_the_cell(tmp_path, flags, message):
    result = run_script("table1.py", "--smoke-test", *flags,
                        "--storage-path", str(tmp_path / "ray"),
                        "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


def test_every_smoke_test_trains_two_seeds_a_trial_where_its_methods_can():
    for name, script in SCRIPTS.items():
        # Figure 1's count panels and Table 1's baselines keep one seed per run
        expected = 1 if name in ("figure1", "table1") else 2
        assert script.smoke.seeds_per_trial == expected, name
    for name in ("mnist3_table2", "mnist3_capacity_map"):  # grids: the seeds inside trials
        for profile in (SCRIPTS[name].cpu, SCRIPTS[name].gpu):
            assert "seed" not in profile.grid and profile.seeds_per_trial >= 2, name
    assert SCRIPTS["mnist3_table2"].cpu.seeds_per_trial == 5  # the paper's 5 runs a cell


def test_seeds_per_trial_sets_run_seeds_and_the_worst_member_becomes_the_objective(tmp_path):
    options = options_for("mnist3_sweep", tmp_path, "--seeds-per-trial", "3")
    # Stacked MNIST's objective is the classifier ensemble's KL (docs/classifiers.md)
    assert options.base["run.seeds"] == 3 and options.scheduler_metric == ("ensemble_kl", "min")
    worst = options_for("mnist3_sweep", tmp_path, "--seeds-per-trial", "3",
                        "--member-objective", "worst", "--objective", "pareto")
    assert worst.objective_keys == ["ensemble_high_quality_worst", "ensemble_kl_worst"]
    assert worst.scheduler_metric == ("ensemble_kl_worst", "min")  # ASHA, the MLflow callback
    toy = options_for("gmm25_sweep", tmp_path, "--seeds-per-trial", "3")
    assert toy.scheduler_metric == ("kl", "min")


def test_the_mean_and_the_worst_member_rank_trials_differently():
    """A trial with the better mean but one bad seed, against a steady one."""
    from sigdist.metrics.members import summarize_members
    from sigdist.study.report import best_trials_table

    def trial(kls):
        config = {"method": "gan_si", "loss.lam": 0.1, "loss.k": 64, "model.size": "M",
                  "model.width_g": 0.25, "data.name": "mnist3", "run.seeds": len(kls)}
        return config, summarize_members([{"kl": kl, "modes": 900.0, "high_quality": 0.5}
                                          for kl in kls], range(len(kls))) | {"step": 100}

    lucky, steady = trial([0.1, 0.9]), trial([0.55, 0.6])
    by_mean = best_trials_table([steady, lucky], "kl", "min").splitlines()
    by_worst = best_trials_table([lucky, steady], "kl_worst", "min").splitlines()
    assert "0.500 ± 0.400" in by_mean[1] and "0.575 ± 0.025" in by_mean[2]
    assert by_worst[0].split()[-2] == "kl_worst"  # the ranking's own column
    assert "0.575 ± 0.025" in by_worst[1] and by_worst[1].split()[-2] == "0.600"
    assert "0.500 ± 0.400" in by_worst[2] and by_worst[2].split()[-2] == "0.900"


def test_a_new_study_with_the_name_of_one_on_disk_exits_2_touching_nothing(tmp_path, capsys):
    study = tmp_path / "ray" / "done"
    study.mkdir(parents=True)
    (study / "tuner.pkl").write_bytes(b"state")
    with pytest.raises(SystemExit) as ended:
        options_for("gmm25_sweep", tmp_path, "--storage-path", str(tmp_path / "ray"),
                    "--name", "done")
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert f"a study named 'done' already exists in {study}" in err
    assert "--resume --name done" in err
    assert (study / "tuner.pkl").read_bytes() == b"state"
    # the same name with --resume is the way on (its parent run where it is tracked)
    from sigdist.study.tracking import start_study_run

    start_study_run(f"sqlite:///{tmp_path}/mlflow.db", "gmm25_sweep_smoke", "done", {})
    assert options_for("gmm25_sweep", tmp_path, "--storage-path", str(tmp_path / "ray"),
                       "--name", "done", "--resume").name == "done"


def test_a_new_study_with_the_name_of_one_in_mlflow_exits_2(tmp_path, capsys):
    """Another storage path, the same database: the parent run of that name would take both
    studies' trials."""
    from mlflow import MlflowClient

    from sigdist.study.tracking import start_study_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    start_study_run(uri, "gmm25_sweep_smoke", "done", {})
    with pytest.raises(SystemExit) as ended:
        options_for("gmm25_sweep", tmp_path, "--storage-path", str(tmp_path / "elsewhere"),
                    "--name", "done")
    assert ended.value.code == 2
    assert "a study named 'done' already exists in " + uri in capsys.readouterr().err
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("gmm25_sweep_smoke").experiment_id
    assert len(client.search_runs([experiment])) == 1
    # a name not taken passes
    assert options_for("gmm25_sweep", tmp_path, "--storage-path", str(tmp_path / "elsewhere"),
                       "--name", "fresh").name == "fresh"


def test_resume_keeps_the_studys_settings_and_refuses_flags_that_would_change_them(
        tmp_path, capsys):
    """A resumed study restores its trials and its search from disk: flags that would change
    them were shown as pinned but not used. Left out, the saved ones are taken; given and
    different, exit 2 naming each."""
    from sigdist.study.runner import open_study_run

    storage = ["--storage-path", str(tmp_path / "ray"), "--name", "kept"]
    started = options_for("gmm25_sweep", tmp_path, *storage, "--num-samples", "3",
                          "--seed", "4", "--set", "train.steps=40")
    open_study_run(started)  # keeps the settings on the study's parent run
    (tmp_path / "ray" / "kept").mkdir(parents=True)
    (tmp_path / "ray" / "kept" / "tuner.pkl").write_bytes(b"")

    resumed = options_for("gmm25_sweep", tmp_path, *storage, "--resume")
    assert (resumed.num_samples, resumed.seed, resumed.base["train.steps"]) == (3, 4, 40)
    assert resumed.base == started.base and resumed.pinned == started.pinned
    same = options_for("gmm25_sweep", tmp_path, *storage, "--resume", "--num-samples", "3",
                       "--set", "train.steps=40")
    assert same.base == started.base

    with pytest.raises(SystemExit) as ended:
        options_for("gmm25_sweep", tmp_path, *storage, "--resume", "--num-samples", "5",
                    "--seed", "1", "--set", "train.steps=80", "--set", "loss.lam=0.3")
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "--resume: the study 'kept' keeps the settings it was started with" in err
    for change in ("--num-samples makes num_samples 5, the study's is 3",
                   "--seed makes seed 1, the study's is 4",
                   "--set train.steps=80, the study's is 40",
                   "--set loss.lam: the study searches or varies it"):
        assert change in err, err


def test_flags_a_report_or_a_figure_cannot_take_exit_2_creating_nothing(tmp_path):
    """Before: --report-only took run flags in silence; figure1 pinned to a data set that is
    no panel trained gan_si on it and wrote an empty figure; reproduce.py --help exited 2."""
    for script, flags, message in (
            ("table1.py", ["--report-only", "t1", "--set", "foo=bar", "--resume"],
             "--report-only runs nothing; drop --resume, --set"),
            ("figure1.py", ["--smoke-test", "--set", "data.name=mnist3"],
             "--set data.name: got 'mnist3'; allowed for Figure 1: negbin, poisson_negbin")):
        result = run_script(script, *flags, "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
                            "--storage-path", str(tmp_path / "ray"), "--out",
                            str(tmp_path / "out"), cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database, folder or report
    helped = run_script("reproduce.py", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "{table1,figure1} [FLAGS]" in helped.stdout


def test_a_smoke_test_of_a_table_never_writes_into_docs_results():
    """Before: `table1.py --smoke-test` from the repository's root replaced the committed
    docs/results/table1.md with 30-step numbers."""
    script = SCRIPTS["table1"]
    assert parse_args(script, ["--smoke-test"])[1].out == os.path.join("runs", "smoke-report")
    assert parse_args(script, [])[1].out == "docs/results"
    assert parse_args(script, ["--smoke-test", "--out", "mine"])[1].out == "mine"
