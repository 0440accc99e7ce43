#!/usr/bin/env python
"""Are the extended segments of backbones paired? CA-trace statistics behind a DSSP strand fraction.

A DSSP strand needs a partner strand in space. ``molgen evaluate`` reports the first and the last figure below
for the structures it reads (``extended_fraction``, ``paired_extended_fraction``); this script adds the helical
one and reads large folders fast (no DSSP, no TM-score). For each folder of backbone PDB files (``molgen sample``
output, or real chains such as ../shared/data/proteins/cgdms, read in place) this prints, over the
residues of its chains whose CA virtual angles are defined
(:func:`molgen.proteins.metrics.strand_pairing_counts`):

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

from molgen.proteins.metrics import strand_pairing_counts
from molgen.proteins.pdb import read_backbones


def folder_statistics(folder: Path, max_files: int) -> dict[str, float]:
    """Pooled fractions over the first ``max_files`` PDB files (sorted names, ``.pdb`` or ``.pdb.gz``)."""
    paths = sorted(p for p in folder.iterdir() if p.name.endswith((".pdb", ".pdb.gz")))[:max_files]
    if not paths:
        raise SystemExit(f"strand_pairing.py: error: no .pdb or .pdb.gz files in {folder}")
    totals = np.zeros(4, dtype=np.int64)
    for path in paths:
        chains, _ = read_backbones(path)
        for chain in chains:
            totals += strand_pairing_counts(chain.coords[:, 1])
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
