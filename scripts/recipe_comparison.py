"""Compare training recipes at an equal CPU budget (issues 31 and 29): train each for the same minutes, then
sample and evaluate each the same way.

Each recipe is a name and `molgen train` overrides. Every recipe trains in its own run directory
(``RUNS/NAME``) for ``--minutes`` of wall-clock time (``trainer.max_time``; a run that is there already
resumes, so an interrupted comparison continues; ``--skip-training`` evaluates the runs as they are).
Molecule recipes: ``scripts/quality_per_step.py`` samples ``--num-samples`` molecules from each
``last.ckpt`` with the same sampler cells and seed. Backbone recipes (``--backbones``): `molgen sample`
draws ``--num-samples`` chains of ``--length`` residues with the backbone card's sampler and seed 0,
and `molgen evaluate --designability` measures them as generated (geometry, secondary structure,
ProteinMPNN score; TM-score diversity where tmtools is installed). A table gives the steps each recipe
reached beside its figures. Run it on an otherwise idle thread (``OMP_NUM_THREADS=1``), as a budget in
minutes means nothing on a shared one.

Usage:
    python scripts/recipe_comparison.py --preset self-conditioning --minutes 60
    python scripts/recipe_comparison.py --recipe base "experiment=qm9_bonds" --recipe wide "experiment=qm9_bonds \\
        model.hidden_dim=192" --minutes 120 --runs runs/recipes
    python scripts/recipe_comparison.py --preset backbone-representations --minutes 35 --num-samples 64

Presets:

- ``self-conditioning`` (each fine-tunes the shipped ``qm9`` model, so that an hour tells something on
  this CPU): the shipped recipe continued, against the same with ``model.self_conditioning=true`` (its
  estimate maps start at zero, so both start from the same network).
- ``backbone-representations`` (issue 29, from scratch on db55 and cgdms): four atoms per residue
  (``experiment=backbone``), one node per residue with the N, C and O offsets as vector features
  (``backbone_vectors``), and CA traces with rebuilt atoms (``backbone_ca``).
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

from molgen.pretrained import model_card

#: The shipped qm9 model's recipe (its card's command), fine-tuned from its weights.
SHIPPED_QM9 = (
    "experiment=qm9_bonds model.hidden_dim=128 model.num_layers=6 model.edge_dim=64 optim.lr=5e-4 "
    "data.val_subset=1000 trainer.val_check_interval=500 trainer.progress_bar=false init_from=qm9"
)
#: The training pool of the backbone recipes (dips stays held out).
PROTEINS = "data.root=[../shared/data/proteins/db55,../shared/data/proteins/cgdms] trainer.progress_bar=false"
PRESETS = {
    "self-conditioning": [
        ("shipped", SHIPPED_QM9),
        ("self_conditioning", SHIPPED_QM9 + " model.self_conditioning=true"),
    ],
    "backbone-representations": [
        ("atoms", f"experiment=backbone {PROTEINS}"),
        ("vectors", f"experiment=backbone_vectors {PROTEINS}"),
        ("ca", f"experiment=backbone_ca {PROTEINS}"),
    ],
}
#: Presets of backbone recipes (evaluated as backbones without --backbones).
BACKBONE_PRESETS = {"backbone-representations"}
SCRIPTS = Path(__file__).resolve().parent


def card_cell(name: str) -> str:
    """Shipped model ``name``'s sampler as a quality_per_step.py cell (``dpm-solver:48:eta=1.0:...``)."""
    sampling = model_card(name)["sampling"]
    options = dict(sampling.get("options", {}))
    if "precision" in sampling:  # the network's arithmetic; quality_per_step.py reads it as a cell option
        options["precision"] = sampling["precision"]
    return f"{sampling['sampler']}:{sampling['steps']}" + "".join(f":{key}={value}" for key, value in options.items())


def card_sampler_options(name: str) -> str:
    """Shipped model ``name``'s sampler as `molgen sample` options (``--sampler ddpm --steps 100 ...``)."""
    sampling = model_card(name)["sampling"]
    words = ["--sampler", sampling["sampler"], "--steps", str(sampling["steps"])]
    for key, value in sampling.get("options", {}).items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            words.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            words += [f"--{flag}", str(value)]
    if "precision" in sampling:
        words += ["--precision", sampling["precision"]]
    return " ".join(words)


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


def evaluate_backbones(ckpt: Path, sampler: str, num_samples: int, length: str) -> list[dict]:
    """Sample chains from ``ckpt`` into ``<run>/designs`` and measure them as generated."""
    run = ckpt.parent.parent
    designs, report = run / "designs", run / "backbones.json"
    sample = ["molgen", "sample", "--ckpt", str(ckpt), *shlex.split(sampler), "--length", length, "--seed", "0"]
    subprocess.run(
        [*sample, "--num-samples", str(num_samples), "--yes", "--no-progress", "--out", str(designs)], check=True
    )
    evaluate = ["molgen", "evaluate", str(designs), "--designability", "--no-progress", "--json", str(report)]
    subprocess.run(evaluate, check=True)
    backbone = json.loads(report.read_text())["backbone"]
    return [{"sampler": sampler, **backbone}]


def print_backbone_table(rows: list[dict]) -> None:
    print(
        "| recipe | steps | backbones / residues passing | helix / strand / coil | MPNN score (mean) "
        "| glycine in designs | TM-score |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        validity, structure, designs = r["validity"], r["secondary_structure"], r["designability"]
        tm = r["diversity"].get("mean_pairwise_tm")
        print(
            f"| {r['recipe']} | {r['trained_steps']} | {100 * validity['passing_fraction']:.1f} / "
            f"{100 * validity['residue_pass_fraction']:.1f} % | {100 * structure['helix_pooled_fraction']:.1f} / "
            f"{100 * structure['strand_pooled_fraction']:.1f} / {100 * structure['coil_pooled_fraction']:.1f} % | "
            f"{designs['mpnn_score_mean']:.3f} | {100 * designs['designed_glycine_fraction']:.1f} % "
            f"| {'-' if tm is None else f'{tm:.2f}'} |"
        )


def print_molecule_table(rows: list[dict]) -> None:
    print("| recipe | steps | sampler | graph mol. stab. | RDKit validity | EDM atom stab. | EDM mol stab. |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['recipe']} | {r['trained_steps']} | {r['sampler']} {r['steps']} | {r['graph_mol_stability']:.3f} | "
            f"{r['rdkit_validity']:.3f} | {r['atom_stability']:.3f} | {r['mol_stability']:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--recipe", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), default=[])
    parser.add_argument("--minutes", type=int, default=60, help="training minutes per recipe (default 60)")
    parser.add_argument("--runs", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument(
        "--cells", default=card_cell("qm9"), help="quality_per_step.py cells (default: the qm9 card's sampler)"
    )
    parser.add_argument("--backbones", action="store_true", help="the recipes train backbone models")
    parser.add_argument(
        "--sampler",
        default=card_sampler_options("backbone"),
        help="backbones: `molgen sample` options (default: the backbone card's)",
    )
    parser.add_argument("--length", default="50-128", help="backbones: residues per chain (default 50-128)")
    parser.add_argument("--skip-training", action="store_true", help="evaluate the runs' last.ckpt as they are")
    args = parser.parse_args()
    recipes = PRESETS.get(args.preset, []) + [tuple(r) for r in args.recipe]
    if not recipes:
        parser.error("give --preset or at least one --recipe")
    backbones = args.backbones or args.preset in BACKBONE_PRESETS
    rows = []
    for name, overrides in recipes:
        if args.skip_training:
            ckpt = args.runs / name / "checkpoints" / "last.ckpt"
        else:
            ckpt = train(name, overrides, args.minutes, args.runs)
        steps = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
        if backbones:
            measured = evaluate_backbones(ckpt, args.sampler, args.num_samples, args.length)
        else:
            measured = evaluate(ckpt, args.cells, args.num_samples)
        rows += [{"recipe": name, "trained_steps": steps, **row} for row in measured]
    print(f"\n{args.minutes} minutes per recipe, {args.num_samples} samples per row")
    (print_backbone_table if backbones else print_molecule_table)(rows)


if __name__ == "__main__":
    main()
