#!/usr/bin/env python
"""How a fold-conditioned backbone model follows requested secondary structure, against itself unconditioned.

Takes held-out chains (dips by default, 50-128 residues), reads their DSSP strings, and samples one
chain per string twice from the same seed: with the string (fold-conditioned) and with every label
hidden (``?``, the same lengths, unconditioned). Prints per row the fraction of residues whose DSSP
state is the requested one (overall and per state), the helix / strand / coil fractions, and the
fraction of backbones passing `molgen evaluate`'s geometry checks, beside the real chains. The sampler
is the shipped ``backbone`` card's unless given; an internal-coordinate model's clashes are repaired as
`molgen sample` repairs them (each chain regenerated around its clashes with its own labels).

Usage: python scripts/fold_conditioning.py --ckpt CKPT [--num-chains 64] [--lengths 50-128]
           [--data ../shared/data/proteins/dips] [--seed 0] [--json OUT]
           [--sampler ddpm --steps 50 --options '{"grid": "logsnr", ...}']
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from molgen.checkpoint import CheckpointError
from molgen.domains.backbones import REPAIR_ROUNDS, repair_clashes
from molgen.io import atomic_write_text
from molgen.pretrained import model_card
from molgen.proteins.dataset import benchmark_segments
from molgen.proteins.metrics import secondary_structure_fractions, validate_backbone
from molgen.proteins.secondary_structure import UNKNOWN, dssp_labels, label_agreement
from molgen.sampling import SamplingConfig, generate
from molgen.training.module import load_model_source

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "proteins"


def measure(backbones: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """Agreement with ``labels`` (requested states), DSSP fractions and the passing fraction of ``backbones``."""
    checks = [validate_backbone(b) for b in backbones]
    states = secondary_structure_fractions("".join(check.secondary_structure for check in checks))
    return {
        **label_agreement(backbones, labels),
        **{name: states[name] for name in ("helix", "strand", "coil")},
        "passing": float(np.mean([check.passes for check in checks])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a checkpoint file or a shipped model's name")
    parser.add_argument("--num-chains", type=int, default=64)
    parser.add_argument("--lengths", default="50-128", help="chain lengths to take (default %(default)s)")
    parser.add_argument("--data", type=Path, default=SHARED / "dips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", help="sampler name (default: the backbone card's)")
    parser.add_argument("--steps", type=int, help="with --sampler: its steps")
    parser.add_argument("--options", default="{}", help="with --sampler: its options as JSON")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    try:
        model = load_model_source(args.ckpt, "--ckpt")
    except CheckpointError as err:
        raise SystemExit(f"error: {err}") from None
    if not getattr(model.info, "secondary_structure", False):
        raise SystemExit("error: this checkpoint is not fold-conditioned (data.secondary_structure=true)")
    if args.sampler:
        sampling = SamplingConfig(args.sampler, args.steps, json.loads(args.options))
    else:
        sampling = SamplingConfig.from_card(model_card("backbone")["sampling"])
    low, high = (int(x) for x in args.lengths.split("-"))
    try:
        chains = benchmark_segments(args.data, args.num_chains, (low, high))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    asked = [dssp_labels(chain) for chain in chains]
    hidden = [np.full(len(chain), UNKNOWN) for chain in chains]
    residues = sum(map(len, chains))
    print(f"{len(chains)} chains of {args.data.name}, {residues} residues; {sampling.label}, {sampling.steps} steps")
    rows = {"real chains": measure(chains, asked)}
    for name, labels in (("fold-conditioned", asked), ("labels hidden", hidden)):
        start = time.perf_counter()
        backbones = generate(model, len(chains), sampling, seed=args.seed, labels=labels)
        if model.info.internal_coordinates:  # molgen sample's default repair, seeded as it seeds it
            backbones = repair_clashes(model, backbones, sampling, REPAIR_ROUNDS, args.seed + 1, labels=labels)[0]
        rows[name] = measure(backbones, asked)  # both scored against the real chains' states
        rows[name]["seconds"] = time.perf_counter() - start
    print(f"{'':18s} {'match':>6} {'H match':>8} {'E match':>8} {'- match':>8}   helix / strand / coil %  passing")
    for name, row in rows.items():
        matches = " ".join(f"{100 * row[k]:7.1f}%" for k in ("helix_match", "strand_match", "coil_match"))
        states = " / ".join(f"{100 * row[k]:4.1f}" for k in ("helix", "strand", "coil"))
        print(f"{name:18s} {100 * row['match']:5.1f}% {matches}   {states:22s}  {row['passing']:6.1%}")
    if args.json:
        atomic_write_text(args.json, json.dumps({"sampler": sampling.label, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
