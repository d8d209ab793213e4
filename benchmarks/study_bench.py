"""What the study benchmarks share: flags that size a trial, the flat config they give
(validated), the part of it worth printing, and a timed Tune run tracked in MLflow as studies
are: through the study runner's own Tuner builder."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from sigdist.config import Config, from_flat, parse_assignment

SIZING = ("data.name", "method", "train.steps", "run.eval_every", "run.eval_samples")


def add_trial_flags(parser: argparse.ArgumentParser, *, steps: int, eval_every: int) -> None:
    parser.add_argument("--data", default="gmm25")
    parser.add_argument("--method", default="gan_si")
    parser.add_argument("--steps", type=int, default=steps, help="train.steps")
    parser.add_argument("--eval-every", type=int, default=eval_every, help="run.eval_every")
    parser.add_argument("--eval-samples", type=int, default=50_000, help="run.eval_samples")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other config value")


def flat_config(args: argparse.Namespace) -> dict:
    """Raises :class:`sigdist.config.ConfigError` for a bad value."""
    chosen = {"data.name": args.data, "method": args.method, "train.steps": args.steps,
              "run.eval_every": args.eval_every, "run.eval_samples": args.eval_samples,
              "run.device": "cpu", **dict(parse_assignment(text) for text in args.set)}
    cfg = from_flat(chosen)
    return cfg.replace(**{"data.root": os.path.abspath(cfg.data.root)}).to_flat()


def shown_config(flat: dict) -> dict:
    """The keys that size the run, and every other key that differs from the defaults."""
    defaults = Config().to_flat()
    return {k: v for k, v in flat.items()
            if k in SIZING or (defaults.get(k) != v and k != "data.root")}


def fit_tracked(param_space: dict, *, name: str, workdir: str, uri: str, experiment: str,
                max_concurrent: int | None = None, reuse_actors: bool = False):
    """The study scripts' own options (``build_options``) and Tuner (``build_tuner``: 1 CPU a
    trial, checkpoints, the MLflow callback) over ``param_space``, whose ``tune.grid_search``
    entries make a grid study: (results, wall s)."""
    from sigdist.study.runner import build_tuner, open_study_run
    from sigdist.study.script import Profile, StudyScript, build_options, parse_args

    base = {k: v for k, v in param_space.items() if not isinstance(v, dict)}
    grid = {k: tuple(v["grid_search"]) for k, v in param_space.items() if isinstance(v, dict)}
    if not grid:  # one trial: a grid of its seed
        grid = {"seed": (base.pop("seed", 0),)}
    profile = Profile(base=base, num_samples=1, max_concurrent=max_concurrent or 0, grid=grid)
    script = StudyScript(prefix=experiment, description=name, data_name=base["data.name"],
                         smoke=profile, cpu=profile, gpu=profile)
    parser, args = parse_args(script, [
        "--name", name, "--tracking-uri", uri, "--storage-path", os.path.join(workdir, "ray"),
        "--cpus-per-trial", "1", "--gpus-per-trial", "0"])
    options, _lock = build_options(script, args, parser)
    tuner = build_tuner(options, open_study_run(options), verbose=0, reuse_actors=reuse_actors)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Tune's own tables: keep stdout the report
        grid_results = tuner.fit()
    return grid_results, time.perf_counter() - start
