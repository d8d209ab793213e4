"""Benchmark of ``sigdist.losses.sig_loss`` (Gaussian likelihood) on CPU, float32.

What it measures, at N data points, K generated points and D dimensions (defaults N = K = 512,
D = 2352 = 3 x 28 x 28, the Stacked-MNIST shape):

1. time: median wall time of one forward + backward (psi requires grad) of ``sig_loss`` and of
   a naive implementation of the same loss that materialises the N x K x D difference tensor.
   ``time naive/ours`` is how many times faster ``sig_loss`` is (goal >= 50).
2. memory: peak extra resident memory of one forward + backward, each variant in a fresh
   subprocess: the peak RSS at the end minus the RSS once the inputs are allocated. This is
   the memory the loss itself needs; ``memory naive/ours`` is the saving. The peak is VmHWM,
   reset after setup through /proc/self/clear_refs, rather than ``ru_maxrss``: a child forked
   from this process inherits the parent's ``ru_maxrss``, and importing torch alone peaks
   higher than the ``sig_loss`` run.
3. overhead: ``sig_loss`` forward + backward over its two unavoidable matrix products alone,
   the forward x @ psi.T, (N, D) x (D, K), and the backward G.T @ x, (K, N) x (N, D).
   ``ours/matmuls`` near 1 means the loss costs little more than those products (goal <= 2).

Timings are medians over ``--repeats`` runs after a warm-up (the cheap variants use at least 20
runs, interleaved so that a change in machine load hits them alike). Other processes on the
machine inflate them, most of all with several threads, so the load average is printed too;
``--threads 1`` is the steadier measurement on a busy machine.

    python benchmarks/bench_sig_loss.py [--n 512 --k 512 --d 2352 --repeats 5 --json OUT]
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sigdist.losses import sig_loss  # noqa: E402

VARIANTS = ("naive", "ours")


def naive_sig_loss(x: torch.Tensor, psi: torch.Tensor, sigma: float) -> torch.Tensor:
    """The same Gaussian L_K through an explicit N x K x D difference tensor."""
    squared_distance = (x[:, None, :] - psi[None, :, :]).square().sum(-1)
    dim = x.shape[1]
    log_p = -squared_distance / (2 * sigma**2) - 0.5 * dim * math.log(2 * math.pi * sigma**2)
    return -(torch.logsumexp(log_p, dim=1) - math.log(psi.shape[0])).mean()


def make_inputs(n: int, k: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-like data in [0, 1] and K generated means that require grad."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, d, generator=gen)
    psi = torch.rand(k, d, generator=gen).requires_grad_(True)
    return x, psi


def forward_backward(variant: str, x: torch.Tensor, psi: torch.Tensor, sigma: float) -> float:
    loss = naive_sig_loss(x, psi, sigma) if variant == "naive" else sig_loss(x, psi, sigma=sigma)
    torch.autograd.grad(loss, psi)
    return loss.item()


def median_seconds(
    runs: dict[str, Callable[[], object]], repeats: int, warm_up: bool = True
) -> dict[str, float]:
    """Median wall time of each run; the runs are interleaved so that load from other
    processes on the machine affects them alike and their ratios stay meaningful."""
    for run in runs.values() if warm_up else ():
        run()  # thread pools, allocator, first-call dispatch
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(samples) for name, samples in times.items()}


def rss_bytes(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) of this process from /proc/self/status (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_peak_memory_in_child(variant: str, n: int, k: int, d: int, sigma: float) -> None:
    """Child process: print the peak extra RSS (bytes) of one forward + backward as JSON."""
    x, psi = make_inputs(n, k, d)
    rss_after_setup = rss_bytes("VmRSS")
    try:  # "5" resets the peak to the current RSS, dropping the import-time peak
        Path("/proc/self/clear_refs").write_text("5")
        peak_was_reset = True
    except OSError:
        peak_was_reset = False
    forward_backward(variant, x, psi, sigma)
    peak_extra = rss_bytes("VmHWM") - rss_after_setup
    print(json.dumps({"peak_extra_bytes": peak_extra, "peak_was_reset": peak_was_reset}))


def peak_extra_megabytes(variant: str, args: argparse.Namespace) -> float:
    command = [sys.executable, __file__, "--_child", variant]
    command += ["--n", str(args.n), "--k", str(args.k), "--d", str(args.d)]
    command += ["--sigma", str(args.sigma)]
    command += ["--threads", str(torch.get_num_threads())]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    measured = json.loads(output.strip().splitlines()[-1])
    if not measured["peak_was_reset"]:
        print(f"warning: {variant}: peak RSS not reset; import-time peak may dominate")
    return measured["peak_extra_bytes"] / 2**20


def run_benchmark(args: argparse.Namespace) -> dict:
    x, psi = make_inputs(args.n, args.k, args.d)
    # Also the naive variant's warm-up: one run of it takes seconds.
    loss_naive = forward_backward("naive", x, psi, args.sigma)
    loss_ours = forward_backward("ours", x, psi, args.sigma)
    x_const, psi_const = x.detach(), psi.detach()
    upstream_grad = torch.randn(args.n, args.k)  # stands in for dL/d(x psi^T)
    seconds = median_seconds(
        {"naive": lambda: forward_backward("naive", x, psi, args.sigma)}, args.repeats, False
    )
    fast_runs = {
        "ours": lambda: forward_backward("ours", x, psi, args.sigma),
        "matmul_forward": lambda: x_const @ psi_const.T,
        "matmul_backward": lambda: upstream_grad.T @ x_const,
    }
    seconds |= median_seconds(fast_runs, max(args.repeats, 20))
    seconds["matmuls"] = seconds["matmul_forward"] + seconds["matmul_backward"]
    megabytes = {variant: peak_extra_megabytes(variant, args) for variant in VARIANTS}
    return {
        "config": {
            "n": args.n,
            "k": args.k,
            "d": args.d,
            "sigma": args.sigma,
            "repeats": args.repeats,
            "dtype": "float32",
            "device": "cpu",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
        },
        "loss": {"naive": loss_naive, "ours": loss_ours},
        "median_seconds": seconds,
        "peak_extra_megabytes": megabytes,
        "ratios": {
            "time_naive_over_ours": seconds["naive"] / seconds["ours"],
            "memory_naive_over_ours": megabytes["naive"] / max(megabytes["ours"], 1e-3),
            "time_ours_over_matmuls": seconds["ours"] / seconds["matmuls"],
        },
    }


def print_table(result: dict) -> None:
    config, seconds = result["config"], result["median_seconds"]
    megabytes, ratios = result["peak_extra_megabytes"], result["ratios"]
    print(
        f"sig_loss fwd+bwd, N={config['n']} K={config['k']} D={config['d']} float32 CPU, "
        f"torch {config['torch']}, {config['threads']} threads, "
        f"load avg {config['load_average_1min']:.2f}"
    )
    print(f"loss: naive {result['loss']['naive']:.6g}, ours {result['loss']['ours']:.6g}")
    print(f"{'variant':<36}{'median time [ms]':>18}{'peak extra RSS [MB]':>22}")
    print(
        f"{'naive N x K x D broadcast':<36}{1e3 * seconds['naive']:>18.2f}"
        f"{megabytes['naive']:>22.1f}"
    )
    print(
        f"{'sig_loss (matrix products)':<36}{1e3 * seconds['ours']:>18.2f}"
        f"{megabytes['ours']:>22.1f}"
    )
    print(f"{'matmuls alone (x@psi.T + G.T@x)':<36}{1e3 * seconds['matmuls']:>18.2f}")
    print(f"time naive/ours     {ratios['time_naive_over_ours']:8.1f}x  (goal >= 50)")
    print(f"memory naive/ours   {ratios['memory_naive_over_ours']:8.1f}x")
    print(f"time ours/matmuls   {ratios['time_ours_over_matmuls']:8.2f}x  (goal <= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="data points N")
    parser.add_argument("--k", type=int, default=512, help="generated points K")
    parser.add_argument("--d", type=int, default=2352, help="dimensions D")
    parser.add_argument("--sigma", type=float, default=0.1, help="Gaussian likelihood std")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--_child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._child:
        measure_peak_memory_in_child(args._child, args.n, args.k, args.d, args.sigma)
        return
    result = run_benchmark(args)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
