#!/usr/bin/env python
"""Are the extended segments of backbones paired? CA-trace statistics behind a DSSP strand fraction.

A DSSP strand needs a partner strand in space. For each folder of backbone PDB files (``molgen sample``
output, or real chains such as ../shared/data/proteins/cgdms, read in place) this prints, over the
residues of its chains whose CA virtual angles are defined:

- ``extended``: residues in the extended region of the CA trace (virtual bond angle above 105°, virtual
  torsion beyond +150° or -130°; an ideal strand has 120° and -170°);
- ``helical``: residues in the right-handed helical region (80-100°, +30..+70°; an ideal helix 91°, +50°);
- ``paired``: the share of extended residues with the CA of another extended residue, at least 3 apart in
  sequence, within 5.5 Å (the CA-CA distance across a beta ladder is 4.4-5.5 Å).

Usage: python scripts/strand_pairing.py DIR [DIR ...] [--max-files 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from molgen.proteins.internal_coordinates import ca_internal_coordinates
from molgen.proteins.pdb import read_backbones

#: CA-CA distance (Å) under which two extended residues count as paired.
PAIR_DISTANCE = 5.5
#: Sequence separation from which two residues can pair.
MIN_SEPARATION = 3


def chain_statistics(ca: np.ndarray) -> tuple[int, int, int, int]:
    """``(residues with defined angles, extended, helical, extended and paired)`` of a CA trace ``[L, 3]`` Å."""
    theta, tau = (np.degrees(a) for a in ca_internal_coordinates(ca))
    defined = np.isfinite(theta) & np.isfinite(tau)
    extended = defined & (theta > 105.0) & ((tau > 150.0) | (tau < -130.0))
    helical = defined & (theta > 80.0) & (theta < 100.0) & (tau > 30.0) & (tau < 70.0)
    index = np.arange(len(ca))
    apart = np.abs(index[:, None] - index[None]) >= MIN_SEPARATION
    close = np.linalg.norm(ca[:, None] - ca[None], axis=-1) < PAIR_DISTANCE
    paired = extended & (close & apart & extended[None]).any(axis=1)
    return int(defined.sum()), int(extended.sum()), int(helical.sum()), int(paired.sum())


def folder_statistics(folder: Path, max_files: int) -> dict[str, float]:
    """Pooled fractions over the first ``max_files`` PDB files (sorted names, ``.pdb`` or ``.pdb.gz``)."""
    paths = sorted(p for p in folder.iterdir() if p.name.endswith((".pdb", ".pdb.gz")))[:max_files]
    if not paths:
        raise SystemExit(f"strand_pairing.py: error: no .pdb or .pdb.gz files in {folder}")
    totals = np.zeros(4, dtype=np.int64)
    for path in paths:
        chains, _ = read_backbones(path)
        for chain in chains:
            totals += chain_statistics(chain.coords[:, 1])
    residues, extended, helical, paired = totals
    return {
        "files": len(paths),
        "residues": int(residues),
        "extended": extended / residues,
        "helical": helical / residues,
        "paired": paired / max(extended, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--max-files", type=int, default=300)
    args = parser.parse_args()
    print(f"{'folder':40s} {'files':>6s} {'residues':>9s} {'extended':>9s} {'helical':>8s} {'paired':>7s}")
    for folder in args.folders:
        s = folder_statistics(folder, args.max_files)
        print(
            f"{str(folder):40s} {s['files']:6d} {s['residues']:9d} {s['extended']:9.1%} {s['helical']:8.1%} "
            f"{s['paired']:7.1%}"
        )


if __name__ == "__main__":
    main()
