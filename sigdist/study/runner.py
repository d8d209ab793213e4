"""Run a study: Ray Tune over the trainable, Optuna proposing lam / K / size, ASHA stopping
collapsed trials early, every trial tracked in MLflow. Flags are parsed and validated here, and
the tracking server is checked, before Ray starts: bad input starts nothing."""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import itertools
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sigdist.config import MAX_SEEDS, ConfigError, from_flat, parse_assignment
from sigdist.metrics.members import WORST_SUFFIX
from sigdist.metrics.names import OBJECTIVES, modes_of
from sigdist.sizes import WIDTH_KEYS

SpaceFn = Any  # sigdist.study.search.SpaceFn (imported lazily: Optuna loads with Ray)


@dataclass(frozen=True)
class StudyOptions:
    name: str  # the study: its Ray Tune experiment directory and its MLflow parent run
    experiment: str  # the MLflow experiment that holds every study of one script
    base: dict[str, Any]  # the flat config every trial starts from
    num_samples: int
    max_concurrent: int
    cpus_per_trial: float
    gpus_per_trial: float
    seed: int
    address: str | None
    storage_path: str
    tracking_uri: str
    objective: str = "kl"
    resume: bool = False
    space: SpaceFn | None = None  # the study's define-by-run search space (None: a grid)
    pinned: tuple[str, ...] = ()  # keys the user set: never searched, never a grid axis
    # A grid study (no Optuna, no early stopping): every combination of these values, each
    # once; a ``tied`` key takes the value of another key of the same trial.
    grid: dict[str, tuple] = field(default_factory=dict)
    tied: dict[str, str] = field(default_factory=dict)
    objectives: dict[str, tuple] = field(default_factory=lambda: OBJECTIVES)
    # keys that follow a grid key's value (StudyScript.per_value), the user's pins left out
    per_value: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    profile: str = "cpu"  # the StudyScript profile it was built from: smoke, cpu or gpu
    # a trial of several seeds (run.seeds > 1) is scored by its members' mean or its worst
    member_objective: str = "mean"

    @property
    def metrics(self) -> list[str]:
        """The objective's metrics, as the registry names them."""
        return list(self.objectives[self.objective])

    @property
    def objective_keys(self) -> list[str]:
        """What Optuna, ASHA and the ranking read of each trial's results: the objective's
        metrics, or their worst members' (``--member-objective worst``)."""
        suffix = WORST_SUFFIX if self.member_objective == "worst" else ""
        return [name + suffix for name in self.metrics]

    @property
    def modes(self) -> list[str]:
        return modes_of(self.metrics)

    @property
    def scheduler_metric(self) -> tuple[str, str]:
        return self.objective_keys[-1], self.modes[-1]

    @property
    def study_dir(self) -> str:
        return os.path.join(self.storage_path, self.name)


def study_parser(description: str, objectives: dict[str, tuple] = OBJECTIVES
                 ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--address", default=None, help="an existing Ray cluster ('auto')")
    parser.add_argument("--num-samples", type=int, default=None, help="trials")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials at once")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--gpus-per-trial", type=float, default=None,
                        help="a fraction lets several small trials share one GPU (default: "
                        "0.25 where this machine has a GPU, else 0)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the search and the trials")
    parser.add_argument("--seeds-per-trial", type=int, default=None, metavar="P",
                        help="seeds trained together in each trial (run.seeds: one model of P "
                        "members; the trial reports their mean, standard error, worst member "
                        "and each one); default: the profile's (the smoke test: 2)")
    parser.add_argument("--member-objective", choices=("mean", "worst"), default="mean",
                        help="with P > 1 seeds per trial: optimise and stop trials on the "
                        "members' mean (default) or on the worst member")
    parser.add_argument("--objective", choices=sorted(objectives), default=next(iter(objectives)),
                        help=", ".join(f"{name}: {' vs '.join(metrics)}" for name, metrics
                                       in objectives.items()) + " (two: a Pareto front)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow: sqlite:///PATH or http://HOST:PORT (default: "
                        "sqlite:///mlflow.db here)")
    parser.add_argument("--storage-path", default="runs/ray",
                        help="Ray Tune's results; on a multi-node cluster a path every node "
                        "reaches (shared disk or s3://...)")
    parser.add_argument("--name", default=None, help="the study's name (default: "
                        "script name and time; with --resume: the latest study)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted study: finished trials are kept, "
                        "unfinished ones go on from their checkpoints, Optuna's history is kept")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for every trial (`sigdist keys` lists them)")
    parser.add_argument("--smoke-test", action="store_true", help="a few tiny trials (seconds)")
    return parser


def check_name(flag: str, name: str, parser: argparse.ArgumentParser) -> None:
    """A study's name: a folder under the storage path and a value in MLflow's filters."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name) or ".." in name:
        parser.error(f"{flag}: got {name!r}; allowed: 1 to 100 letters, digits, '.', '_' or "
                     "'-', starting with a letter or digit, without '..' (the name is a folder "
                     "under --storage-path)")


def check_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Bad flags end the program with status 2 and a message before anything starts."""
    for flag, value, low in (("--num-samples", args.num_samples, 1),
                             ("--max-concurrent", args.max_concurrent, 1),
                             ("--cpus-per-trial", args.cpus_per_trial, 0.01),
                             ("--gpus-per-trial", args.gpus_per_trial, 0.0),
                             ("--seed", args.seed, 0)):
        # not (value >= low): NaN compares false both ways; inf resources keep trials PENDING
        if value is not None and (not value >= low or value == math.inf):
            parser.error(f"{flag}: got {value}; allowed: a finite number >= {low}")
    if args.address is None and args.cpus_per_trial > (os.cpu_count() or 1):
        # Ray would keep every trial PENDING on a machine of fewer CPUs, warning each minute
        parser.error(f"--cpus-per-trial: got {args.cpus_per_trial:g}, but this machine has "
                     f"{os.cpu_count()} CPUs; allowed here: at most {os.cpu_count()} (a cluster "
                     "started with `ray up` takes --address auto)")
    if args.address not in (None, "auto", "local"):
        check_ray_address(args.address, parser)
    if args.seeds_per_trial is not None and not 1 <= args.seeds_per_trial <= MAX_SEEDS:
        parser.error(f"--seeds-per-trial: got {args.seeds_per_trial}; allowed: 1 to {MAX_SEEDS}")
    if args.gpus_per_trial is not None and args.gpus_per_trial > 1 and (
            args.gpus_per_trial != int(args.gpus_per_trial)):
        parser.error(f"--gpus-per-trial: got {args.gpus_per_trial}; allowed: a fraction "
                     "<= 1 or a whole number of GPUs")
    if args.name is not None:
        check_name("--name", args.name, parser)
    if args.address is None and args.gpus_per_trial is not None and args.gpus_per_trial > 0:
        import torch

        have = torch.cuda.device_count()
        if have < max(1, args.gpus_per_trial):
            parser.error(f"--gpus-per-trial: got {args.gpus_per_trial:g}, but this machine "
                         f"has {have} GPU(s); allowed here: at most {have} (0 runs on the CPU)"
                         "; a cluster started with `ray up` takes --address auto")


def check_ray_address(address: str, parser: argparse.ArgumentParser) -> None:
    """A Ray address HOST:PORT answers, or exit 2: ``ray.init`` would retry a dead one for
    minutes, with the study's MLflow run already open."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--address: got {address!r}; allowed: auto, or HOST:PORT of a Ray head "
                     "(`ray start --head` prints it)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as err:
        parser.error(f"--address: no Ray cluster answers at {address} ({err.strerror or err});"
                     " start one (`ray start --head`, or `ray up cluster.yaml`) or give another")


def validated_base(flat: dict[str, Any], assignments: list[str],
                   parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The trials' common flat config: ``flat`` with the ``--set`` assignments, validated.
    ``data.root`` becomes absolute: Tune runs each trial in its own directory."""
    try:
        base = from_flat(flat).replace(**dict(parse_assignment(text) for text in assignments))
    except ConfigError as err:
        parser.error(str(err))
    return base.replace(**{"data.root": os.path.abspath(base.data.root)}).to_flat()


def pinned_keys(assignments: list[str]) -> tuple[str, ...]:
    """The keys of the ``--set`` assignments. The size and the two widths are one group: pinning
    one pins all three, as their validated values in the base config (they must agree)."""
    keys = {parse_assignment(text)[0] for text in assignments}
    if keys & {"model.size", *WIDTH_KEYS}:
        keys |= {"model.size", *WIDTH_KEYS}
    return tuple(sorted(keys))


def pinned_values(options: StudyOptions) -> dict[str, Any]:
    return {key: options.base[key] for key in options.pinned}


def study_name(args: argparse.Namespace, prefix: str, storage_path: str,
               parser: argparse.ArgumentParser) -> str:
    """A new study gets a fresh name; ``--resume`` takes ``--name`` or the latest study of this
    script (``prefix``) under ``storage_path``."""
    if not args.resume:
        return args.name or f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    if "://" in storage_path:  # Tune finds it there; a cloud folder is not listed from here
        if args.name is None:
            parser.error(f"--resume: give --name for a study under {storage_path} (the latest "
                         "study is found only under a local --storage-path)")
        return args.name
    pattern = os.path.join(storage_path, args.name or f"{prefix}-*", "tuner.pkl")
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not found:
        parser.error(f"--resume: no study to resume matches {pattern}")
    return os.path.basename(os.path.dirname(found[-1]))


def prepare_storage(storage_path: str, name: str, parser: argparse.ArgumentParser):
    """A local storage path is created and checked writable before Ray starts, and the study's
    name is locked there for this process's lifetime: a second study of the same name at once
    is refused (exit 2) instead of merging with this one. Returns the lock's open file."""
    if "://" in storage_path:  # a cloud path: reached now, or Tune fails mid-start
        import pyarrow.fs

        try:
            filesystem, path = pyarrow.fs.FileSystem.from_uri(storage_path)
            filesystem.get_file_info(path)
        except (OSError, ValueError) as err:  # ValueError: pyarrow's unknown scheme
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            parser.error(f"--storage-path: cannot reach {storage_path} ({reason}); allowed: a "
                         "local folder, or a cloud path this machine can reach")
        return None
    try:
        os.makedirs(storage_path, exist_ok=True)
    except OSError as err:
        parser.error(f"--storage-path: cannot create {storage_path}: {err.strerror}")
    if not os.access(storage_path, os.W_OK):
        parser.error(f"--storage-path: {storage_path} is not writable")
    from sigdist.locks import LockHeld, hold_lock

    try:
        return hold_lock(os.path.join(storage_path, f".{name}.lock"), f"study {name}")
    except LockHeld as held:
        parser.error(f"--name: the study {name!r} under {storage_path} is running in "
                     f"{held.holder}; wait for it, or choose another --name")
    except OSError as err:
        parser.error(f"--storage-path: cannot write in {storage_path}: {err.strerror}")


def refuse_existing_study(name: str, storage_path: str, tracking_uri: str, experiment: str,
                          parser: argparse.ArgumentParser) -> None:
    """A new study may not take the name of one that exists (its results under the storage
    path, or its parent run in MLflow): it would merge into it. Exit 2, nothing touched."""
    from mlflow import MlflowClient

    from sigdist.study.tracking import find_study_runs, sqlite_path

    where = None
    database = sqlite_path(tracking_uri)
    if "://" not in storage_path and os.path.exists(os.path.join(storage_path, name)):
        where = os.path.join(storage_path, name)
    elif database is None or os.path.exists(database):  # no database yet: none is made here
        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found and find_study_runs(client, [found.experiment_id], name, max_results=1):
            where = f"{tracking_uri} (experiment {experiment!r})"
    if where:
        parser.error(f"--name: a study named {name!r} already exists in {where}; continue it "
                     f"with --resume --name {name}, or choose another --name")


def prepare_tracking(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The tracking URI, checked (reachable server, writable database) before Ray starts."""
    from sigdist.study.tracking import TrackingError, check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    try:
        check_tracking_uri(uri)
    except TrackingError as err:
        parser.error(str(err))
    return uri


def optuna_storage_url(options: StudyOptions) -> str:
    """Optuna's own sqlite history of the study, beside Ray's results where they are local."""
    local = options.storage_path if "://" not in options.storage_path else os.path.abspath(
        "runs/optuna")
    os.makedirs(local, exist_ok=True)
    return f"sqlite:///{os.path.join(local, options.name + '.optuna.db')}"


# What a resumed study keeps from its start, whatever its command line says: the trials' config
# and what the search optimises. A flag given on --resume that differs is refused.
SETTINGS = ("profile", "num_samples", "max_concurrent", "objective", "member_objective",
            "pinned", "base")


def study_settings(options: StudyOptions) -> dict[str, Any]:
    return {key: list(value) if key == "pinned" else value
            for key, value in asdict(options).items() if key in SETTINGS}


def open_study_run(options: StudyOptions) -> str:
    """The study's MLflow parent run (created, or found again on --resume): its id."""
    from sigdist.study.tracking import start_study_run

    # the parent's params are the study's settings; the base config is its artifact (a
    # trial's params in the parent's columns made it look like one more trial)
    shown = {"profile", "num_samples", "max_concurrent", "objective", "member_objective",
             "seed", "cpus_per_trial", "gpus_per_trial", "grid", "pinned"}
    params = {f"study.{k}": v for k, v in asdict(options).items() if k in shown}
    params["study.pinned"] = ", ".join(f"{k}={options.base[k]}" for k in options.pinned) or "-"
    params["study.trial_steps"] = options.base["train.steps"]
    params["study.data"] = options.base["data.name"]
    return start_study_run(options.tracking_uri, options.experiment, options.name, params,
                           settings=study_settings(options))


def resolve_grid(base: dict[str, Any], grid: dict[str, tuple], *,
                 tied: dict[str, str] | None = None,
                 per_value: dict[str, dict[Any, dict[str, Any]]] | None = None,
                 pins: dict[str, Any] | None = None) -> dict[tuple, dict[str, Any]]:
    """Every cell of a grid resolved once into its trial's flat config, keyed by the cell's
    grid values (in ``grid``'s key order): ``base`` with the cell's values, its tied and
    per-value keys, and what follows them (a preset's widths, a data set's defaults, the lam
    of a method), the user's ``pins`` kept. A cell that is no valid config raises
    :class:`ConfigError` naming it."""
    common, keys = from_flat(base), list(grid)
    cells = {}
    for values in itertools.product(*grid.values()):
        cell = dict(zip(keys, values, strict=True))
        for key, source in (tied or {}).items():
            cell[key] = cell.get(source, base[source])
        for key, value in list(cell.items()):
            cell = {**(per_value or {}).get(key, {}).get(value, {}), **cell}
        try:
            cells[values] = common.replace(**{**cell, **(pins or {})}).to_flat()
        except ConfigError as err:
            shown = ", ".join(f"{k}={v}" for k, v in cell.items())
            raise ConfigError(f"grid cell {shown}: {err}") from None
    return cells


def _cell_value(grid_keys: tuple[str, ...], table: dict[tuple, Any], config: dict[str, Any]
                ) -> Any:
    return table[tuple(config[key] for key in grid_keys)]


def param_space(options: StudyOptions) -> dict[str, Any]:
    """The trials' common config; for a grid study, its grid, and every key whose resolved
    value differs between cells read from the cells resolved once (:func:`resolve_grid`)."""
    from ray import tune

    space: dict[str, Any] = dict(options.base)
    if not options.grid:
        return space
    cells = resolve_grid(options.base, options.grid, tied=options.tied,
                         per_value=options.per_value, pins=pinned_values(options))
    grid_keys = tuple(options.grid)
    for key, values in options.grid.items():
        space[key] = tune.grid_search(list(values))
    for key, value in options.base.items():
        table = {cell: flat[key] for cell, flat in cells.items()}
        if key not in options.grid and any(v != value for v in table.values()):
            # a partial of a module-level function pickles with the study's state
            space[key] = tune.sample_from(functools.partial(_cell_value, grid_keys, table))
    return space


def build_tuner(options: StudyOptions, parent_run_id: str, *, verbose: int = 1,
                reuse_actors: bool = True):
    """The study's Ray Tune ``Tuner``: the trainable with its resources, Optuna and ASHA (none
    for a grid study), checkpoints, failure retries and the MLflow callback under
    ``parent_run_id``. Ray must be initialised. The study scripts and the benchmarks use this
    one builder, so what a benchmark times is what a study runs."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from sigdist.study.progress import progress_reporter
    from sigdist.study.search import optuna_searcher
    from sigdist.study.tracking import MlflowTrialCallback, TrackingStopper
    from sigdist.study.trainable import train_sigdist

    trainable = tune.with_resources(
        train_sigdist, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})
    if options.resume:
        # The searcher (Optuna's history), scheduler and callbacks come back from the study
        # directory; unfinished trials continue from their last checkpoints.
        return tune.Tuner.restore(options.study_dir, trainable, resume_unfinished=True,
                                  resume_errored=False, param_space=param_space(options))
    searcher = scheduler = None  # a grid study runs every cell to its last step
    if options.space is not None and not options.grid:
        searcher = optuna_searcher(options.space, options.objective_keys, options.modes,
                                   seed=options.seed, storage_url=optuna_storage_url(options),
                                   study_name=options.name, base=options.base,
                                   pinned=pinned_values(options))
        # Each report is one evaluation; ASHA compares trials at equal numbers of evaluations.
        steps, every = options.base["train.steps"], options.base["run.eval_every"]
        max_t = max(1, -(-steps // every))
        scheduler = ASHAScheduler(metric=options.scheduler_metric[0],
                                  mode=options.scheduler_metric[1],
                                  max_t=max_t, grace_period=max(1, max_t // 4),
                                  reduction_factor=2)
    return tune.Tuner(
        trainable,
        param_space=param_space(options),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=options.num_samples,
                                    max_concurrent_trials=options.max_concurrent or None,
                                    # a finished trial's worker takes the next trial: no new
                                    # process, no torch import (benchmarks/bench_concurrency.py)
                                    reuse_actors=reuse_actors),
        run_config=tune.RunConfig(
            name=options.name, storage_path=options.storage_path, verbose=verbose,
            progress_reporter=progress_reporter(options) if verbose else None,
            # a crashed worker or node: the trial goes on from its last checkpoint
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # the study's state reaches the storage path every 20 s (Ray's default is 5 min),
            # so a driver killed mid-study resumes close to where it stopped
            sync_config=tune.SyncConfig(sync_period=20),
            stop=TrackingStopper(parent_run_id),  # the tracking failed: nothing records them
            callbacks=[MlflowTrialCallback(options.tracking_uri, parent_run_id,
                                           metric=options.scheduler_metric[0],
                                           mode=options.scheduler_metric[1])]),
    )


def end_on_sigterm_as_on_ctrl_c() -> None:
    """SIGTERM (``kill``, a scheduler's stop) takes Ctrl-C's path: Tune stops the running trials
    and saves the study, every open run is closed KILLED, ``--resume`` continues. ``ray.init``
    installs a C++ handler that would instead abort the driver with a stack dump, leaving the
    trials' runs RUNNING, so this is called again after it."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))


def init_ray(address: str | None, *, verbose: int = 1) -> None:
    """Join the cluster at ``address``, or start a private Ray for this study alone ("local":
    None would join whatever cluster this machine last started, as Ray records it in
    /tmp/ray). A private Ray always takes token authentication, even where the environment
    says ``RAY_AUTH_MODE=disabled``: its ports listen on the machine's address."""
    import ray

    if address is None and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        if os.environ.get("RAY_AUTH_MODE"):
            print(f"RAY_AUTH_MODE={os.environ['RAY_AUTH_MODE']} ignored: the study's own Ray "
                  "takes token authentication", flush=True)
        _enable_token_auth()  # what ray.init does when the mode is unset: env and Ray's config
    if address is None:
        with ray_processes_in_their_own_group():
            ray.init(address="local", ignore_reinit_error=True, include_dashboard=False,
                     log_to_driver=verbose > 1)
    else:
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                 log_to_driver=verbose > 1)
    end_on_sigterm_as_on_ctrl_c()


@contextlib.contextmanager
def ray_processes_in_their_own_group():
    """The processes ``ray.init`` starts (GCS, raylet, their workers) in a process group of
    their own: a SIGTERM to the driver's group (``timeout``, systemd, Slurm) then reaches the
    driver alone, which stops the study as on Ctrl-C and ends Ray itself. In the driver's
    group they died first, and the study hung on its lost GCS with its runs RUNNING. Ray
    shields them from a group's SIGINT, not its SIGTERM; they still die with the driver
    (Ray's kill-on-parent-death)."""
    import subprocess

    start = subprocess.Popen.__init__

    def in_own_group(self, *args, **kwargs):
        if not kwargs.get("start_new_session") and kwargs.get("process_group") is None:
            kwargs["process_group"] = 0
        start(self, *args, **kwargs)

    subprocess.Popen.__init__ = in_own_group
    try:
        yield
    finally:
        subprocess.Popen.__init__ = start


def run_study(options: StudyOptions, *, parent_run_id: str | None = None, verbose: int = 1):
    """Run (or resume) the study under ``parent_run_id`` (default: :func:`open_study_run`);
    return Ray Tune's ResultGrid."""
    parent = parent_run_id or open_study_run(options)
    init_ray(options.address, verbose=verbose)
    return build_tuner(options, parent, verbose=verbose).fit()
