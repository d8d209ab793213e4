"""The one-trial config the study benchmarks share: flags that size a run, the flat config they
give (validated), and the part of it worth printing."""

from __future__ import annotations

import argparse
import os

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
