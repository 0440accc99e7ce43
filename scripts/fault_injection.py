"""Kill molgen with SIGKILL at random moments of training and sampling, then check what survives.

Training: a tiny QM9 run (checkpoint every ``--every`` steps) is started, killed after a
random delay, and started again on the same run directory, ``--kills`` times; a last run
must then resume and reach its step. After each kill the script checks that last.ckpt (when present) loads, that no
temporary checkpoint file is visible under the final name, and how many logged steps the
kill lost (steps logged minus the checkpoint's step).
Sampling: ``molgen sample`` is killed the same way; the output must be absent or
complete, and the next run (which finds the dead process's lock) must succeed.

Usage: python scripts/fault_injection.py [--kills 8] [--every 5] [--seed 0] [--workdir DIR]
Prints one line per kill and a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import csv
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from molgen.checkpoint_files import CheckpointError, read_checkpoint_file


def train_command(run_dir: Path, every: int, max_steps: int = 10**6) -> list[str]:
    return [
        sys.executable, "-m", "molgen.cli", "train", "experiment=qm9", "model.hidden_dim=16", "model.num_layers=1",
        "data.subset=256", "data.val_subset=16", "data.batch_size=16", f"trainer.max_steps={max_steps}",
        f"trainer.checkpoint_every_n_steps={every}", "trainer.val_check_interval=1000", "trainer.log_every_n_steps=1",
        "trainer.progress_bar=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def logged_steps(run_dir: Path) -> int:
    """The highest step in the run's CSV log (-1 if none)."""
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return -1
    with path.open() as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("step", "").isdigit()]
    return max(steps, default=-1)


def checkpoint_step(path: Path) -> int | None:
    """The global step of a checkpoint; None when absent; raises CheckpointError when unreadable."""
    if not path.exists():
        return None
    return int(read_checkpoint_file(path)["global_step"])


def kill_after(command: list[str], delay: float, cwd: Path) -> bool:
    """Start ``command``, SIGKILL it after ``delay`` s; False if it finished first."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def inject_training(workdir: Path, kills: int, every: int, rng: random.Random) -> list[str]:
    failures, losses = [], []
    run_dir = workdir / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    for k in range(kills):
        delay = rng.uniform(6.0, 16.0)
        killed = kill_after(train_command(run_dir, every), delay, workdir)
        try:
            step = checkpoint_step(last)
        except CheckpointError as err:
            failures.append(f"train kill {k}: last.ckpt unreadable: {err}")
            continue
        visible = sorted(p.name for p in last.parent.glob("*") if p.is_file() and not p.name.startswith("."))
        lost = max(logged_steps(run_dir) + 1 - (step or 0), 0)
        losses.append(lost)
        outcome = "killed" if killed else "finished"
        print(f"train kill {k}: after {delay:.1f} s ({outcome}), checkpoint step {step}, {lost} lost, files {visible}")
        if lost > every:
            failures.append(f"train kill {k}: lost {lost} steps, more than one interval ({every})")
    target = (checkpoint_step(last) or 0) + 2 * every
    result = subprocess.run(train_command(run_dir, every, target), cwd=workdir, capture_output=True, text=True)
    final = checkpoint_step(last)
    print(f"train: resumed to step {target}: exit {result.returncode}, checkpoint step {final}")
    if result.returncode != 0 or final != target:
        failures.append(f"train: the final resume ended at step {final} (exit {result.returncode})")
    if losses:
        print(f"train: steps lost per kill: max {max(losses)}, mean {sum(losses) / len(losses):.1f} (interval {every})")
    return failures


def inject_sampling(workdir: Path, kills: int, rng: random.Random) -> list[str]:
    failures = []
    out = workdir / "samples.sdf"
    command = [sys.executable, "-m", "molgen.cli", "sample", "--num-samples", "100", "--out", str(out), "--no-progress"]
    for k in range(kills):
        out.unlink(missing_ok=True)
        delay = rng.uniform(4.0, 24.0)
        killed = kill_after(command, delay, workdir)
        records = out.read_text().count("$$$$") if out.exists() else None
        stray = sorted(p.name for p in workdir.glob(".samples.sdf.*"))
        found = "no output" if records is None else f"{records} records"
        lock_left = (workdir / "samples.sdf.lock").exists()
        outcome = "killed" if killed else "finished"
        print(f"sample kill {k}: after {delay:.1f} s ({outcome}): {found}, lock left: {lock_left}, temporaries {stray}")
        if records not in (None, 100):
            failures.append(f"sample kill {k}: a partial output of {records} records")
    result = subprocess.run([*command[:5], "5", *command[6:]], cwd=workdir, capture_output=True, text=True)
    print(f"sample: next run after the kills: exit {result.returncode}")
    if result.returncode != 0:
        failures.append(f"sample: the run after the kills failed: {result.stderr.strip()[-300:]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=8, help="kills of training and of sampling (default 8)")
    parser.add_argument("--every", type=int, default=5, help="checkpoint interval in steps (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times (default 0)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to run (default: a temporary folder)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    torch.set_num_threads(1)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="molgen_faults_"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    failures = inject_training(workdir, args.kills, args.every, rng) + inject_sampling(workdir, args.kills, rng)
    print(f"{2 * args.kills} kills in {time.perf_counter() - start:.0f} s; {len(failures)} failed checks")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
