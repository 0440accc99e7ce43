#!/usr/bin/env python
"""Training throughput of `molgen train` with one process and with DDP over several.

For each process count the real command runs twice, for SHORT and LONG
steps; molecules/s = (LONG - SHORT) x batch size x processes / (difference
in wall time), so start-up, data loading, the sanity validation and the
final checkpoint cancel out. One process runs the default strategy; more
run `trainer=ddp`. Figures: docs/distributed.md.

Usage: python scripts/bench_distributed.py [--processes 1 2] [--accelerator cpu] [--steps 10 40]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

MODEL = ["experiment=qm9", "model.hidden_dim=128", "model.num_layers=6", "data.subset=2000", "data.val_subset=64"]
BATCH_SIZE = 64


def timed_run(processes: int, accelerator: str, steps: int, run_dir: str) -> float:
    strategy = ["trainer=ddp", f"trainer.devices={processes}"] if processes > 1 else ["trainer.devices=1"]
    cmd = [sys.executable, "-m", "molgen.cli", "train", *MODEL, *strategy]
    cmd += [
        f"data.batch_size={BATCH_SIZE}",
        f"trainer.accelerator={accelerator}",
        f"trainer.max_steps={steps}",
        "trainer.val_check_interval=100000",
        "trainer.checkpoint_every_n_steps=100000",
        "trainer.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: {processes} processes, {steps} steps failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--steps", type=int, nargs=2, default=[10, 40], metavar=("SHORT", "LONG"))
    args = parser.parse_args()
    short, long = args.steps

    print(f"{'processes':>9} {'s/step':>8} {'molecules/s':>12}")
    for processes in args.processes:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            elapsed = timed_run(processes, args.accelerator, long, a) - timed_run(processes, args.accelerator, short, b)
        per_step = elapsed / (long - short)
        print(f"{processes:>9} {per_step:>8.3f} {BATCH_SIZE * processes / per_step:>12.1f}")


if __name__ == "__main__":
    main()
