"""How much the Stacked-MNIST metrics depend on the digit classifier (docs/classifiers.md).

Three stages, each reading what the one before wrote under --out:

  train   trains (or loads from the cache under --data-root) every classifier of CLASSIFIERS
          on the same mnist-5k training digits; writes their held-out accuracy, their pairwise
          label agreement on the held-out digits and their scoring time (classifiers.json);
  score   generates each member's 26,000 evaluation samples of the given run checkpoints (the
          samples its own evaluation drew) and the real held-out stacked digits, and stores
          every classifier's per-channel probabilities (probs/<name>.npz, float32);
  tables  prints the agreement tables: per-channel label agreement on generated digits, the
          metrics of each run under each classifier, and how often two classifiers rank a
          DCGAN / DCGAN-SI pair of the same size and seed differently;
  stability  the same for the ensemble metrics of several ensembles (disjoint ones among
          them), against the consensus of all seven classifiers (metrics.json).

  python experiments/classifier_agreement.py train --data-root /tmp/sigdata --out /tmp/agree
  python experiments/classifier_agreement.py score --data-root /tmp/sigdata --out /tmp/agree \
      RUN_DIR/*/checkpoint_000002/checkpoint.pt
  python experiments/classifier_agreement.py tables --out /tmp/agree
  python experiments/classifier_agreement.py stability --out /tmp/agree
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time

import numpy as np
import torch

from sigdist.data.mnist import load_mnist
from sigdist.data.stacked import StackedMNIST
from sigdist.metrics.classifier import ENSEMBLE, classify_channels, load_or_train_classifier
from sigdist.metrics.members import mean_se
from sigdist.metrics.stacked import ensemble_metrics, stacked_mnist_metrics

CLASSIFIERS = [("lenet", 0), ("lenet", 1), ("lenet", 2), ("wide", 0), ("wide", 1),
               ("mlp", 0), ("mlp", 1)]
SOURCE = "mnist-5k"


def _name(arch: str, seed: int) -> str:
    return f"{arch}{seed}"


def _classifiers(root: str) -> dict[str, tuple[torch.nn.Module, float]]:
    digits = load_mnist(root, SOURCE)
    return {_name(a, s): load_or_train_classifier(digits, root, seed=s, arch=a)
            for a, s in CLASSIFIERS}


def train(args: argparse.Namespace) -> None:
    digits = load_mnist(args.data_root, SOURCE)
    report: dict = {"classifiers": {}, "real_agreement": {}}
    labels = {}
    for arch, seed in CLASSIFIERS:
        start = time.perf_counter()
        classifier, accuracy = load_or_train_classifier(digits, args.data_root, seed=seed,
                                                        arch=arch)
        train_s = time.perf_counter() - start
        images = digits.test_images.float().div(255).reshape(-1, 1, 28, 28)
        with torch.no_grad():
            labels[_name(arch, seed)] = classifier(images).argmax(1).numpy()
        stacked = torch.rand(26_000, 3, 28, 28, generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        classify_channels(classifier, stacked)
        score_s = time.perf_counter() - start
        report["classifiers"][_name(arch, seed)] = {
            "arch": arch, "seed": seed, "accuracy": accuracy, "load_or_train_s": train_s,
            "score_26000_s": score_s,
            "parameters": sum(p.numel() for p in classifier.parameters())}
        print(_name(arch, seed), report["classifiers"][_name(arch, seed)], flush=True)
    for a, b in itertools.combinations(labels, 2):
        report["real_agreement"][f"{a}|{b}"] = float(np.mean(labels[a] == labels[b]))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "classifiers.json"), "w") as handle:
        json.dump(report, handle, indent=1)


def _save(path: str, probs: dict[str, torch.Tensor]) -> None:
    np.savez(path, **{k: v.float().numpy() for k, v in probs.items()})


def score(args: argparse.Namespace) -> None:
    from sigdist.train import Trainer

    classifiers = _classifiers(args.data_root)
    out = os.path.join(args.out, "probs")
    os.makedirs(out, exist_ok=True)
    digits = load_mnist(args.data_root, SOURCE)
    real = StackedMNIST.from_digits(digits.test_images, digits.test_labels, "cpu")
    images, _ = real.sample_with_labels(26_000, torch.Generator().manual_seed(2024))
    _save(os.path.join(out, "real.npz"),
          {n: classify_channels(c, images) for n, (c, _) in classifiers.items()})
    for path in args.checkpoints:
        trainer = Trainer.from_checkpoint(path)
        cfg = trainer.cfg
        for member, seed in enumerate(trainer.seeds):
            name = f"{cfg.method}_{cfg.model.size}_seed{seed}"
            target = os.path.join(out, f"{name}.npz")
            if os.path.exists(target):
                continue
            start = time.perf_counter()
            samples = torch.cat(list(trainer.iter_generate(26_000, batch_size=1000,
                                                           member=member)))
            probs = {n: classify_channels(c, samples) for n, (c, _) in classifiers.items()}
            _save(target, probs)
            print(f"{name}: step {trainer.step}, {time.perf_counter() - start:.0f} s", flush=True)


def _runs(out: str) -> dict[str, dict[str, np.ndarray]]:
    folder = os.path.join(out, "probs")
    return {f[:-4]: dict(np.load(os.path.join(folder, f))) for f in sorted(os.listdir(folder))}


def tables(args: argparse.Namespace) -> None:
    runs = _runs(args.out)
    names = list(next(iter(runs.values())))
    info = json.load(open(os.path.join(args.out, "classifiers.json")))
    print("## classifiers\n\n| classifier | held-out accuracy | parameters | s / 26,000 |")
    print("| --- | --- | --- | --- |")
    for n in names:
        c = info["classifiers"][n]
        print(f"| {n} | {c['accuracy']:.4f} | {c['parameters']:,} | {c['score_26000_s']:.1f} |")
    generated = [r for r in runs if r != "real"]
    print("\n## per-digit label agreement: held-out real digits / generated digits (all runs)\n")
    print("| pair | real | generated |\n| --- | --- | --- |")
    for a, b in itertools.combinations(names, 2):
        gen = np.mean([np.mean(runs[r][a].argmax(2) == runs[r][b].argmax(2)) for r in generated])
        print(f"| {a} / {b} | {info['real_agreement'][f'{a}|{b}']:.4f} | {gen:.3f} |")
    metrics = {r: {n: stacked_mnist_metrics(runs[r][n].astype(np.float64)) for n in names}
               for r in runs}
    print("\n## modes / KL of every run under every classifier\n")
    print("| run | " + " | ".join(names) + " |\n| --- |" + " --- |" * len(names))
    for r in runs:
        cells = [f"{metrics[r][n]['modes']} / {metrics[r][n]['kl']:.2f}" for n in names]
        print(f"| {r} | " + " | ".join(cells) + " |")
    pairs = sorted({re.sub(r"^gan(_si)?_", "", r) for r in generated})
    pairs = [p for p in pairs if f"gan_{p}" in runs and f"gan_si_{p}" in runs]
    print(f"\n## DCGAN / DCGAN-SI pairs ({len(pairs)}) ranked differently by two classifiers\n")
    print("| pair | modes | KL |\n| --- | --- | --- |")
    for a, b in itertools.combinations(names, 2):
        flips = {m: 0 for m in ("modes", "kl")}
        for p in pairs:
            for m in flips:
                da = metrics[f"gan_si_{p}"][a][m] - metrics[f"gan_{p}"][a][m]
                db = metrics[f"gan_si_{p}"][b][m] - metrics[f"gan_{p}"][b][m]
                flips[m] += int(np.sign(da) != np.sign(db))
        print(f"| {a} / {b} | {flips['modes']} | {flips['kl']} |")


# Ensembles compared for stability: disjoint pairs, so that no classifier votes in both.
ENSEMBLES = {
    "default": [f"{a}{s}" for a, s in ENSEMBLE],
    "other cheap": ["lenet2", "mlp1"],
    "mixed A": ["lenet0", "wide0", "mlp0"],
    "mixed B": ["lenet1", "wide1", "mlp1"],
    "all 7": [_name(a, s) for a, s in CLASSIFIERS],
}
ROBUST = ("ensemble_modes", "ensemble_kl", "confident_modes")


def _winner(metrics: dict, pair: str, scorer: str, metric: str) -> int:
    """+1 where DCGAN-SI is better on ``metric`` under ``scorer``, -1 where DCGAN is, 0 tie."""
    better = 1 if metric.endswith("modes") else -1
    delta = metrics[f"gan_si_{pair}"][scorer][metric] - metrics[f"gan_{pair}"][scorer][metric]
    return int(np.sign(delta) * better)


def stability(args: argparse.Namespace) -> None:
    """Each scorer's DCGAN / DCGAN-SI winners against every other scorer's and against the
    consensus of all seven classifiers; and Table 2 re-scored by the default ensemble."""
    runs = _runs(args.out)
    names = list(next(iter(runs.values())))
    metrics = {}
    for r, probs in runs.items():
        p64 = {n: v.astype(np.float64) for n, v in probs.items()}
        metrics[r] = {n: stacked_mnist_metrics(p64[n]) for n in names}
        for e, members in ENSEMBLES.items():
            metrics[r][e] = ensemble_metrics([p64[n] for n in members])
    pairs = sorted({re.sub(r"^gan(_si)?_", "", r) for r in runs if r != "real"})
    pairs = [p for p in pairs if f"gan_{p}" in runs and f"gan_si_{p}" in runs]
    scorers = [(n, m) for n in names for m in ("modes", "kl")]
    scorers += [(e, m) for e in ENSEMBLES for m in ROBUST]
    truth = {p: {m: _winner(metrics, p, "all 7", m) for m in ROBUST} for p in pairs}
    print(f"\n## winners of {len(pairs)} DCGAN / DCGAN-SI pairs: + DCGAN-SI, - DCGAN\n")
    print("| scorer | metric | " + " | ".join(pairs) + " | differs from the all-7 ensemble |")
    print("| --- | --- |" + " --- |" * (len(pairs) + 1))
    consensus = {"modes": "ensemble_modes", "kl": "ensemble_kl"}
    for scorer, metric in scorers:
        signs = [_winner(metrics, p, scorer, metric) for p in pairs]
        same = consensus.get(metric, metric)  # the all-7 ensemble's metric of the same kind
        flips = sum(s != truth[p][same] for s, p in zip(signs, pairs, strict=True))
        print(f"| {scorer} | {metric} | " + " | ".join("+" if s > 0 else "-" if s < 0 else "="
                                                     for s in signs) + f" | {flips} |")
    print("\n## how often two scorers name different winners (of the pairs)\n")
    groups = {"single classifiers, KL": [(n, "kl") for n in names],
              "single classifiers, modes": [(n, "modes") for n in names],
              "disjoint ensembles (mixed A / B), ensemble KL": [("mixed A", "ensemble_kl"),
                                                               ("mixed B", "ensemble_kl")],
              "disjoint ensembles (mixed A / B), ensemble modes": [
                  ("mixed A", "ensemble_modes"), ("mixed B", "ensemble_modes")],
              "disjoint ensembles (mixed A / B), confident modes": [
                  ("mixed A", "confident_modes"), ("mixed B", "confident_modes")],
              "default / other cheap, ensemble KL": [("default", "ensemble_kl"),
                                                     ("other cheap", "ensemble_kl")],
              "default / other cheap, confident modes": [("default", "confident_modes"),
                                                         ("other cheap", "confident_modes")]}
    print("| scorers | mean share of pairs flipped | worst two |\n| --- | --- | --- |")
    for label, members in groups.items():
        shares = []
        for a, b in itertools.combinations(members, 2):
            flips = sum(_winner(metrics, p, *a) != _winner(metrics, p, *b) for p in pairs)
            shares.append((flips / len(pairs), f"{a[0]} / {b[0]}"))
        worst = max(shares)
        print(f"| {label} | {np.mean([s for s, _ in shares]):.2f} | {worst[0]:.2f} "
              f"({worst[1]}) |")
    print("\n## Table 2 re-scored by the default ensemble (mean ± s.e.; each seed)\n")
    print("| method | size | modes (ensemble) | KL (ensemble) | confident modes | "
          "modes / KL, single LeNet |\n| --- | --- | --- | --- | --- | --- |")
    cells = sorted({tuple(r.rsplit("_seed", 1)[0].rsplit("_", 1)) for r in runs if r != "real"})
    for method, size in sorted(cells, key=lambda c: (c[0], "SML".index(c[1]))):
        members = sorted((r for r in runs if r.startswith(f"{method}_{size}_seed")),
                         key=lambda r: int(r.rsplit("seed", 1)[1]))

        def cell(scorer: str, metric: str, fmt: str, seeds: bool = True,
                 members: list[str] = members) -> str:
            values = [metrics[r][scorer][metric] for r in members]
            mean, se = mean_se(values)
            text = f"{mean:{fmt}} ± {se:{fmt}}"
            return text + (" (" + "/".join(f"{v:{fmt}}" for v in values) + ")" if seeds else "")

        print(f"| {method} | {size} | {cell('default', 'ensemble_modes', '.0f')} | "
              f"{cell('default', 'ensemble_kl', '.2f')} | "
              f"{cell('default', 'confident_modes', '.0f')} | "
              f"{cell('lenet0', 'modes', '.0f', False)} / {cell('lenet0', 'kl', '.2f', False)} |")
    print("\n## real held-out stacked digits\n")
    for e in ENSEMBLES:
        print(e, {k: round(v, 4) for k, v in metrics["real"][e].items()})
    with open(os.path.join(args.out, "metrics.json"), "w") as handle:
        json.dump(metrics, handle, indent=1)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("train", "score", "tables", "stability"))
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", required=True)
    args = parser.parse_intermixed_args(argv)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    {"train": train, "score": score, "tables": tables, "stability": stability}[args.stage](args)


if __name__ == "__main__":
    main(sys.argv[1:])
