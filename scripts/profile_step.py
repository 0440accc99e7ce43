#!/usr/bin/env python
"""Where the time goes: torch.profiler over a few training steps or sampling steps.

Runs the same workloads as ``scripts/bench.py`` (QM9 batches of 64 for
training; a batch of 100 QM9-size molecules for sampling) and prints the
operators sorted by their own time, plus the median time per step.

Usage: python scripts/profile_step.py [train-small|train-paper|sample] [--steps 3]
           [--device cpu|cuda] [--bf16] [--rows 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import bench
import torch
from torch.profiler import ProfilerActivity, profile


def _sample_step(device: str, bf16: bool):
    from molgen.diffusion import make_sampler
    from molgen.sampling import sample_from_histogram

    module, _, info = bench.qm9_module("small", device)
    module.eval()
    sizes = sample_from_histogram(info.size_histogram, 100, seed=0)
    sampler = make_sampler("dpm-solver", module.diffusion, 5)

    def step() -> None:  # 6 network calls: 5 steps and the final clean prediction
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            sampler.sample(module.denoiser, sizes, info.num_features, device=device)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", nargs="?", default="train-small", choices=["train-small", "train-paper", "sample"])
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 warm-up steps)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="under bfloat16 autocast")
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()

    if args.workload == "sample":
        step = _sample_step(args.device, args.bf16)
    else:
        train_step, batches = bench.training_step(args.workload.removeprefix("train-"), args.device, args.bf16)

        def step() -> None:
            train_step(next(batches))

    for _ in range(2):
        step()

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    times = []
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            bench.sync(args.device)
            start = time.perf_counter()
            step()
            bench.sync(args.device)
            times.append(time.perf_counter() - start)
    sort_by = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort_by, row_limit=args.rows))
    print(f"{args.workload}: median {statistics.median(times):.3f} s per step (under the profiler)")


if __name__ == "__main__":
    main()
