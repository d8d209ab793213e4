"""The sigdist command line: train a run, sample from its checkpoint, score samples.

Bad input (an unknown key, a bad value, a missing file) prints one clear message and exits with
status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys

USAGE_ERROR = 2
RUN_FAILED = 1


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigdist", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one run and write it to --out")
    train.add_argument("--set", dest="assignments", metavar="KEY=VALUE", action="append",
                       default=[], help="a config key (dotted), e.g. --set loss.lam=1.0; "
                       "repeatable; `sigdist keys` lists them")
    train.add_argument("--out", required=True, help="run directory (created)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint.pt; --set may only "
                       "change train.steps and run.* keys")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    sample = commands.add_parser("sample", help="draw samples from a trained generator")
    sample.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train")
    sample.add_argument("--n", type=int, required=True, help="number of samples")
    sample.add_argument("--out", required=True, help="output .npy file")
    sample.add_argument("--member", type=int, default=0, help="a seed population's member "
                        "(run.seeds > 1): 0 to P - 1 (default 0, the run's own seed)")
    sample.add_argument("--seed", type=int, default=None, help="sampling seed (default: the "
                        "run's evaluation seed)")

    score = commands.add_parser("score", help="the project's metrics on any array of samples")
    score.add_argument("--data", required=True, help="the data set the samples imitate, e.g. "
                       "mnist3 (samples (n, 3, 28, 28) in [0, 1] or uint8), cifar10 (n, 3, "
                       "32, 32) or gmm25 (n, 2)")
    score.add_argument("--samples", required=True, help="a .npy file of samples; images as "
                       "(n, C, H, W) or (n, H, W, C)")
    score.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    score.add_argument("--data-root", default="data", help="data, and the cached classifiers "
                       "(mnist3) or FID statistics (cifar10)")
    score.add_argument("--source", default="auto", help="MNIST source for the classifiers: "
                       "auto, mnist-60k or mnist-5k")
    score.add_argument("--set", dest="assignments", metavar="KEY=VALUE", action="append",
                       default=[], help="a data.* or metrics.* key, e.g. "
                       "--set metrics.inception_weights=PATH (cifar10); repeatable")

    keys = commands.add_parser("keys", help="list the config keys with their defaults and "
                               "meanings")
    keys.add_argument("--markdown", action="store_true",
                      help="as the table of docs/configuration.md")
    return parser


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sigdist.config import from_assignments, parse_assignment, save_json
    from sigdist.metrics.members import PM_SUFFIX, WORST_SUFFIX, mean_se_texts
    from sigdist.reports.figures import save_trainer_samples
    from sigdist.train import CheckpointError, DivergenceError, Trainer, remove_stale_temps

    out = args.out
    if not out.strip():  # "" would train into the current directory
        raise UsageError(f"--out: got {out!r}; allowed: a directory path (created if missing)")
    checkpoint_path = os.path.join(out, "checkpoint.pt")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out: {out} is a file; allowed: a directory (created if missing)")
    if args.resume:
        if not os.path.isfile(checkpoint_path):
            raise UsageError(f"--resume: no checkpoint at {checkpoint_path}")
        updates = dict(parse_assignment(text) for text in args.assignments)
        fixed = [k for k in updates if not (k == "train.steps" or k.startswith("run."))
                 or k == "run.seeds"]  # the checkpoint holds its members
        if fixed:
            raise UsageError(f"--resume: key '{fixed[0]}' cannot change in a resumed run; "
                             "allowed: train.steps, run.* but run.seeds")
    else:
        cfg = from_assignments(args.assignments)
        if os.path.exists(checkpoint_path):
            raise UsageError(f"{out} already holds a run (checkpoint.pt); pass --resume to "
                             "continue it, or choose another --out")
        trainer = Trainer(cfg)  # validates the device before anything is written
    try:
        os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out: cannot create {out}: {err.strerror}") from None
    _lock = _lock_run_directory(out)  # noqa: F841 (held until the process ends)
    remove_stale_temps(checkpoint_path)  # the lock is ours: no other writer is mid-write
    if args.resume:
        try:
            trainer = Trainer.from_checkpoint(checkpoint_path, overrides=updates)
        except CheckpointError as err:
            raise UsageError(f"--resume: {err}") from None
        done, steps = trainer.step, trainer.cfg.train.steps
        if steps < done:
            raise UsageError(f"--resume: train.steps={steps} is below the {done} steps the run "
                             "has done; allowed: at least that many")
        if steps == done and os.path.isfile(os.path.join(out, "metrics.json")):
            print(f"{out}: the run has done its {done} steps; nothing to resume "
                  "(give a larger train.steps to continue it)", file=sys.stderr)
            return 0
        if steps == done:  # killed after its last checkpoint, before its final outputs
            print(f"{out}: the run has done its {done} steps but has no metrics.json; "
                  "evaluating its last checkpoint (the final losses were not saved)",
                  file=sys.stderr)
            return _write_final_outputs(trainer, out, {**trainer.evaluate(), "step": done})
    else:
        if os.path.exists(checkpoint_path):  # another writer won the race to this folder
            raise UsageError(f"{out} already holds a run (checkpoint.pt); choose another --out")
    cfg = trainer.cfg  # as resolved by the run, e.g. data.source=auto -> the source used
    save_json(cfg, os.path.join(out, "config.json"))

    bar = tqdm(total=cfg.train.steps, initial=trainer.step, disable=args.quiet,
               desc=f"{cfg.method} on {cfg.data.name}", unit="step", dynamic_ncols=True)

    def on_step(_trainer: Trainer, step_losses: dict[str, float]) -> None:
        bar.update(1)
        if _trainer.step % 50 == 0:
            bar.set_postfix({k: f"{v:.3g}" for k, v in step_losses.items()}, refresh=False)

    def report(_trainer: Trainer, metrics: dict[str, float]) -> None:
        _trainer.save(checkpoint_path)
        save_trainer_samples(_trainer,
                             os.path.join(out, "samples", f"step_{_trainer.step:07d}.png"))
        if _trainer.population:  # the metrics' mean ± s.e. over the members
            shown = {k.removesuffix(PM_SUFFIX): v for k, v in mean_se_texts(metrics).items()
                     if not k.endswith(WORST_SUFFIX + PM_SUFFIX)}
        else:
            shown = {k: f"{v:.4g}" for k, v in metrics.items() if not k.startswith("loss")}
        bar.write(f"step {_trainer.step}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))

    try:
        metrics = trainer.fit(report=report, on_step=on_step)
    except DivergenceError as err:
        bar.close()
        print(f"sigdist: run failed: {err}", file=sys.stderr)
        return RUN_FAILED
    except OSError as err:  # a full disk or a folder that went away, mid-run
        bar.close()
        print(f"sigdist: run stopped at step {trainer.step}: cannot write "
              f"{err.filename or out}: {err.strerror}; its last complete checkpoint is kept "
              f"(make room, then sigdist train --out {out} --resume)", file=sys.stderr)
        return RUN_FAILED
    bar.close()
    return _write_final_outputs(trainer, out, metrics)


def _write_final_outputs(trainer, out: str, metrics: dict[str, float]) -> int:
    """A finished run's metrics.json and samples.png, and its metrics on stdout."""
    from sigdist.reports.figures import save_trainer_samples

    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
    save_trainer_samples(trainer, os.path.join(out, "samples.png"))
    print(json.dumps(metrics))
    return 0


def _lock_run_directory(out: str):
    """An exclusive lock on the run directory for this process's lifetime: a second
    ``sigdist train`` on the same --out is refused, naming the holder."""
    from sigdist.locks import LockHeld, hold_lock

    try:
        return hold_lock(os.path.join(out, ".lock"), "sigdist train")
    except LockHeld as held:
        raise UsageError(f"--out: {out} is in use by {held.holder}; wait for it to end or "
                         "choose another --out") from None
    except OSError as err:  # e.g. an existing folder on a read-only file system
        raise UsageError(f"--out: cannot write in {out}: {err.strerror}") from None


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from sigdist.config import ConfigError
    from sigdist.train import CheckpointError, Trainer

    if args.n < 1:
        raise UsageError(f"--n: got {args.n}; allowed: an integer >= 1")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed: got {args.seed}; allowed: an integer in [0, 2^32 - 1]")
    if not os.path.isfile(args.checkpoint):
        raise UsageError(f"--checkpoint: no such file {args.checkpoint}")
    if not args.out.endswith(".npy"):
        raise UsageError(f"--out: got {args.out!r}; allowed: a path ending in .npy")
    _check_writable_file("--out", args.out)
    try:
        trainer = Trainer.from_checkpoint(args.checkpoint)
    except (CheckpointError, ConfigError) as err:  # ConfigError: its config, e.g. the device
        raise UsageError(f"--checkpoint {args.checkpoint}: {err}") from None
    members = len(trainer.seeds)
    if not 0 <= args.member < members:
        raise UsageError(f"--member: got {args.member}; allowed: 0 to {members - 1} (the "
                         f"checkpoint holds {members} member{'s' if members > 1 else ''})")
    shape = (args.n, *trainer.data_shape)
    # a memory map on a disk that fills up dies of SIGBUS: the space is checked first
    needed = 4 * math.prod(shape) + 4096  # float32 values and the .npy header
    folder = os.path.dirname(os.path.abspath(args.out))
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    if needed > free:
        raise UsageError(f"--out: {args.n} samples need {needed / 2**20:,.1f} MiB and "
                         f"{folder} has {free / 2**20:,.1f} MiB free; allowed: a smaller --n "
                         "or another disk")
    # written chunk by chunk under a temporary name, renamed when complete: memory stays
    # O(chunk) for any --n, and no file that looks complete is left half-written
    partial = f"{args.out}.{os.getpid()}.tmp"
    try:
        samples = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
        start = 0
        for chunk in trainer.iter_generate(args.n, seed=args.seed, member=args.member):
            samples[start:start + len(chunk)] = chunk.numpy()
            start += len(chunk)
        samples.flush()
        del samples
        os.replace(partial, args.out)
    except OSError as err:  # e.g. a name too long, a full or read-only disk
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise UsageError(f"--out: cannot write {args.out}: {err.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
    print(f"wrote {shape} samples to {args.out}")
    return 0


def _score(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from sigdist.config import from_flat, parse_assignment
    from sigdist.evaluation import build_data, build_scorer

    updates = dict(parse_assignment(text) for text in args.assignments)
    other = [key for key in updates if not key.startswith(("data.", "metrics."))]
    if other:
        raise UsageError(f"--set {other[0]}: score takes only data.* and metrics.* keys")
    cfg = from_flat({"data.name": args.data, "data.root": args.data_root,
                     "data.source": args.source, **updates})
    if not os.path.isfile(args.samples):
        raise UsageError(f"--samples: no such file {args.samples}")
    if args.out:
        _check_writable_file("--out", args.out)
    with open(args.samples, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":  # numpy's own message would suggest loading pickles unsafely
        raise UsageError(f"--samples {args.samples}: not a .npy file; allowed: one numeric "
                         ".npy array (numpy.save)")
    try:
        # memory-mapped: a header that claims more than the file holds fails here, at no
        # allocation (read whole, it asked for terabytes); then read into memory
        array = np.array(np.load(args.samples, allow_pickle=False, mmap_mode="r"))
    except (ValueError, EOFError, OSError):
        raise UsageError(f"--samples {args.samples}: not a numeric .npy array (an object "
                         "array, or a torn or malformed file)") from None
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise UsageError(f"--samples: got dtype {array.dtype}; allowed: real numbers")
    if array.ndim == 0:
        raise UsageError("--samples: got a single number (shape ()); allowed: an array of "
                         "n >= 1 samples")
    if not array.dtype.isnative:  # e.g. big-endian '>f4' from another machine
        array = array.astype(array.dtype.newbyteorder("="))
    if len(array) == 0:
        raise UsageError(f"--samples: got {array.shape}, no samples; allowed: n >= 1 rows")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    if not np.isfinite(array).all():
        raise UsageError(f"--samples: {int((~np.isfinite(array)).sum())} values are NaN or "
                         "infinite; allowed: finite numbers")
    data, cfg = build_data(cfg, torch.device("cpu"))
    if array.ndim == 4 and len(data.shape) == 3 and array.shape[1:] == (*data.shape[1:],
                                                                          data.shape[0]):
        array = array.transpose(0, 3, 1, 2)  # (n, H, W, C), as CIFAR-10's own arrays
    if array.ndim < 2 or tuple(array.shape[1:]) != tuple(data.shape):
        raise UsageError(f"--samples: got shape {array.shape}; allowed for {args.data}: "
                         f"(n, {', '.join(map(str, data.shape))})")
    if len(data.shape) == 3 and (array.min() < 0 or array.max() > 1):
        raise UsageError(f"--samples: values in [{array.min():.3g}, {array.max():.3g}]; allowed: "
                         "[0, 1] floats or uint8 images")
    metrics = build_scorer(cfg, data, torch.device("cpu"))(torch.as_tensor(array).float())
    text = json.dumps({"data": args.data, "n": int(len(array)), **metrics}, indent=2)
    if args.out:
        try:
            with open(args.out, "w") as fh:
                fh.write(text + "\n")
        except OSError as err:  # a full disk: one line, the scores still printed below
            print(text)
            print(f"sigdist score: cannot write --out {args.out}: {err.strerror}",
                  file=sys.stderr)
            return 1
    print(text)
    return 0


def _check_writable_file(flag: str, path: str) -> None:
    """A file can be written at ``path`` (its folder exists and is writable, and it is not a
    folder), checked before any work that would be lost."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{flag}: {path} is a directory; allowed: a file path")
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UsageError(f"{flag}: directory {parent} does not exist or is not writable")


def _keys(markdown: bool) -> int:
    from sigdist.config import key_help

    rows = key_help()
    if markdown:  # the table of docs/configuration.md
        from sigdist.reports.tables import table

        def shown(default):
            return str(default).lower() if isinstance(default, bool) else default

        print(table(["key", "default", "meaning"],
                    [[f"`{key}`", f"`{shown(default)}`", text]
                     for key, (default, text) in rows.items()], markdown=True))
        return 0
    width = max(len(f"{key}={default}") for key, (default, _) in rows.items())
    for key, (default, text) in rows.items():
        print(f"{f'{key}={default}':<{width}}  # {text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from sigdist.config import ConfigError

    try:
        if args.command == "train":
            return _train(args)
        if args.command == "sample":
            return _sample(args)
        if args.command == "score":
            return _score(args)
        return _keys(args.markdown)
    except (UsageError, ConfigError) as err:
        print(f"sigdist {args.command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
