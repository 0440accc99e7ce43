#!/usr/bin/env python
"""What restrained relaxation (molgen.proteins.relax) does to a set of backbones.

Reads every chain of a structure file or folder (real PDB entries, or the designs
folder of `molgen sample`), splits chains at their breaks into segments of
--min-length to --max-length residues, relaxes a seeded subset of --num-structures
segments with each --restraint width, and prints per width:

- passing / residues passing / clash-free, before and after relaxation
  (molgen.proteins.metrics.evaluate_backbones);
- how far the atoms moved: RMSD mean and max over structures (Å), and of CA atoms;
- helix / strand fractions after relaxation (DSSP), to show the secondary structure kept;
- the median time per structure and per 100 residues.

Segments of real chains show how far relaxation moves structures that were right
to begin with; generated ones how much a model's output needed fixing.

Usage: python scripts/relaxation.py PATH [--num-structures 16] [--min-length 40]
           [--max-length 256] [--restraint 1.0 ...] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from molgen.proteins.metrics import evaluate_backbones
from molgen.proteins.pdb import StructureError, read_backbone_folder, read_backbones
from molgen.proteins.relax import relax_backbone, relaxation_summary


def load_segments(path: Path, min_length: int, max_length: int, count: int, seed: int) -> list[np.ndarray]:
    chains = read_backbone_folder(path, progress=False)[0] if path.is_dir() else read_backbones(path)[0]
    segments = [
        segment.coords
        for chain in chains
        for segment in chain.segments(min_length=min_length)
        if len(segment.coords) <= max_length
    ]
    if not segments:
        raise SystemExit(f"error: no segment of {min_length}-{max_length} residues in {path}")
    if len(segments) > count:
        pick = np.random.default_rng(seed).choice(len(segments), size=count, replace=False)
        segments = [segments[k] for k in sorted(pick)]
    return segments


def figures(report: dict) -> str:
    """Passing, residues passing, clash-free and helix / strand fractions of an evaluate_backbones report."""
    validity, structure = report["validity"], report["secondary_structure"]
    return (
        f"passing {validity['passing_fraction']:.1%}, residues passing {validity['residue_pass_fraction']:.1%}, "
        f"clash-free {validity['no_clash_fraction']:.1%}, helix / strand "
        f"{structure['helix_mean_fraction']:.1%} / {structure['strand_mean_fraction']:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--num-structures", type=int, default=16)
    parser.add_argument("--min-length", type=int, default=40)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--restraint", type=float, nargs="+", default=[1.0], help="restraint widths in Å")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        segments = load_segments(args.path, args.min_length, args.max_length, args.num_structures, args.seed)
    except (OSError, StructureError) as err:
        raise SystemExit(f"error: {err}") from None
    residues = sum(len(coords) for coords in segments)
    print(f"{len(segments)} segments of {min(map(len, segments))}-{max(map(len, segments))} residues from {args.path}")
    print("before:", figures(evaluate_backbones(segments, tm_score=False)))
    print("restraint Å | after relaxation | RMSD mean / max Å | CA RMSD Å | s per structure | s per 100 residues")
    for restraint in args.restraint:
        relaxed, seconds = [], []
        for coords in segments:
            start = time.perf_counter()
            relaxed.append(relax_backbone(coords, restraint_sigma=restraint))
            seconds.append(time.perf_counter() - start)
        moved = relaxation_summary(relaxed)
        print(
            f"{restraint:11.2f} | {figures(evaluate_backbones([r.coords for r in relaxed], tm_score=False))} "
            f"| {moved['rmsd_mean']:.3f} / {moved['rmsd_max']:.3f} | {moved['ca_rmsd_mean']:.3f} "
            f"| {statistics.median(seconds):.2f} | {100 * sum(seconds) / residues:.2f}"
        )


if __name__ == "__main__":
    main()
