"""Compare training recipes at an equal CPU budget (issue 31): train each for the same minutes, then sample
and evaluate each the same way.

Each recipe is a name and `molgen train` overrides. Every recipe trains in its own run directory
(``RUNS/NAME``) for ``--minutes`` of wall-clock time (``trainer.max_time``; a run that is there already
resumes, so an interrupted comparison continues), then ``scripts/quality_per_step.py`` samples
``--num-samples`` molecules from its ``last.ckpt`` with the same sampler cells and seed, and a table gives
the steps each recipe reached beside its figures. Run it on an otherwise idle thread
(``OMP_NUM_THREADS=1``), as a budget in minutes means nothing on a shared one.

Usage:
    python scripts/recipe_comparison.py --preset self-conditioning --minutes 60
    python scripts/recipe_comparison.py --recipe base "experiment=qm9_bonds" --recipe wide "experiment=qm9_bonds \\
        model.hidden_dim=192" --minutes 120 --runs runs/recipes

Presets (each fine-tunes the shipped ``qm9`` model, so that an hour tells something on this CPU):

- ``self-conditioning``: the shipped recipe continued, against the same with ``model.self_conditioning=true``
  (its estimate maps start at zero, so both start from the same network).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch

#: The shipped qm9 model's recipe (its card's command), fine-tuned from its weights.
SHIPPED_QM9 = (
    "experiment=qm9_bonds model.hidden_dim=128 model.num_layers=6 model.edge_dim=64 optim.lr=5e-4 "
    "data.val_subset=1000 trainer.val_check_interval=500 trainer.progress_bar=false init_from=qm9"
)
PRESETS = {
    "self-conditioning": [
        ("shipped", SHIPPED_QM9),
        ("self_conditioning", SHIPPED_QM9 + " model.self_conditioning=true"),
    ],
}
#: The shipped qm9 card's sampler, as a quality_per_step.py cell.
CARD_CELL = "dpm-solver:49:eta=1:grid=time:class_temperature=0.1:refine_steps=1"
SCRIPTS = Path(__file__).resolve().parent


def max_time(minutes: int) -> str:
    return f"00:{minutes // 60:02d}:{minutes % 60:02d}:00"


def train(name: str, overrides: str, minutes: int, runs: Path) -> Path:
    """Train (or resume) recipe ``name`` for ``minutes``; returns its ``last.ckpt``."""
    run = runs / name
    command = [
        "molgen",
        "train",
        *shlex.split(overrides),
        f"trainer.max_time={max_time(minutes)}",
        f"hydra.run.dir={run}",
    ]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return run / "checkpoints" / "last.ckpt"


def evaluate(ckpt: Path, cells: str, num_samples: int) -> list[dict]:
    out = ckpt.parent.parent / "quality.jsonl"
    command = [sys.executable, str(SCRIPTS / "quality_per_step.py"), "--ckpt", str(ckpt), "--out", str(out)]
    subprocess.run([*command, "--cells", cells, "--num-samples", str(num_samples)], check=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--recipe", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), default=[])
    parser.add_argument("--minutes", type=int, default=60, help="training minutes per recipe (default 60)")
    parser.add_argument("--runs", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument(
        "--cells", default=CARD_CELL, help="quality_per_step.py cells (default: the qm9 card's sampler)"
    )
    args = parser.parse_args()
    recipes = PRESETS.get(args.preset, []) + [tuple(r) for r in args.recipe]
    if not recipes:
        parser.error("give --preset or at least one --recipe")
    rows = []
    for name, overrides in recipes:
        ckpt = train(name, overrides, args.minutes, args.runs)
        steps = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
        rows += [
            {"recipe": name, "trained_steps": steps, **row} for row in evaluate(ckpt, args.cells, args.num_samples)
        ]
    print(f"\n{args.minutes} minutes per recipe, {args.num_samples} samples per row")
    print("| recipe | steps | sampler | graph mol. stab. | RDKit validity | EDM atom stab. | EDM mol stab. |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['recipe']} | {r['trained_steps']} | {r['sampler']} {r['steps']} | {r['graph_mol_stability']:.3f} | "
            f"{r['rdkit_validity']:.3f} | {r['atom_stability']:.3f} | {r['mol_stability']:.3f} |"
        )


if __name__ == "__main__":
    main()
