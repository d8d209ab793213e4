"""Settings of SIG / GAN-SI on the 25-Gaussian grid, each over the same seeds, many runs at once
on a many-core machine without Ray or MLflow: the check of a study's best settings over 5
seeds (Table 1's protocol: 50,000 samples, mean and standard error over seeds).

    python experiments/screen_gmm25.py --settings settings.json [--seeds 0 1 2 3 4]
        [--workers 15] [--jsonl OUT.jsonl]

``settings.json`` maps a name to flat config keys (``{"sig_s0.2": {"method": "sig",
"loss.sigma": 0.2}}``). Every run's final metrics are appended to ``--jsonl`` as it ends, so a
cut-short screen keeps what it finished; the table at the end gives each setting's mean ±
standard error and how many seeds meet high quality >= 0.95 and KL <= 0.03.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed


def run_one(job: tuple[str, dict, int]) -> dict:
    import torch

    from sigdist.config import Config
    from sigdist.train import Trainer

    name, keys, seed = job
    torch.set_num_threads(1)
    cfg = Config().replace(**{"run.device": "cpu", "run.eval_every": 10**9, **keys,
                              "seed": seed})
    start = time.perf_counter()
    metrics = Trainer(cfg).fit()
    return {"setting": name, "seed": seed, **keys, **metrics,
            "wall_s": time.perf_counter() - start}


def summary_line(name: str, rows: list[dict]) -> str:
    def stat(metric: str, digits: int) -> str:
        values = [r[metric] for r in rows]
        se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.{digits}f} ± {se:.{digits}f}"

    meeting = sum(r["high_quality"] >= 0.95 and r["kl"] <= 0.03 for r in rows)
    return (f"| {name} | {len(rows)} | {stat('modes', 1)} | {stat('high_quality', 4)} | "
            f"{stat('kl', 4)} | {meeting} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=max(1, multiprocessing.cpu_count() - 1))
    parser.add_argument("--jsonl", default=None)
    args = parser.parse_args()
    with open(args.settings) as fh:
        settings = json.load(fh)
    # the longest runs first, so that the pool ends together
    jobs = sorted(((name, keys, seed) for name, keys in settings.items() for seed in args.seeds),
                  key=lambda job: -job[1].get("train.steps", 8000) * job[1].get("loss.k", 256))
    results = []
    with ProcessPoolExecutor(args.workers,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(run_one, job) for job in jobs]):
            row = future.result()
            results.append(row)
            print(json.dumps(row), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print("| setting | seeds | modes | high quality | KL | seeds at HQ >= 0.95, KL <= 0.03 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in settings:
        rows = [r for r in results if r["setting"] == name]
        if rows:
            print(summary_line(name, rows))


if __name__ == "__main__":
    main()
