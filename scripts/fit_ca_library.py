"""Fit the CA-trace rebuilding library (molgen/proteins/ca_trace.py) and measure it on held-out chains.

Fits on the training segments of a backbone folder (db55 by default, the split of `data=backbone`),
writes ``molgen/proteins/ca_library.npz``, and rebuilds the N, C and O atoms of held-out chains (dips)
from their CA atoms alone: prints the RMSD per atom type and the bond lengths and angles of the
rebuilt backbones against the real ones (the residue-level model's decoder, issue 29).

Usage: python scripts/fit_ca_library.py [--fit ../shared/data/proteins/db55] [--test ../shared/data/proteins/dips]
           [--max-peptides 30000] [--k 8] [--out molgen/proteins/ca_library.npz]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from molgen.proteins.ca_trace import LIBRARY_PATH, backbone_from_ca, fit_library, save_library
from molgen.proteins.dataset import backbone_train_val
from molgen.proteins.geometry import bond_angles, bond_lengths
from molgen.proteins.metrics import validate_backbone

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "proteins"


def segments(root: Path, split: str) -> list[np.ndarray]:
    """The break-free segments (``[L, 4, 3]`` Å) of a folder's training split (``"train"``) or of all of it."""
    train, val, _ = backbone_train_val(root)
    parts = [train] if split == "train" else [val, train]
    return [part.segment(i) for part in parts for i in range(len(part))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", type=Path, default=SHARED / "db55")
    parser.add_argument("--test", type=Path, default=SHARED / "dips")
    parser.add_argument("--max-peptides", type=int, default=30000)
    parser.add_argument("--k", type=int, default=8, help="candidate peptides per peptide (default 8)")
    parser.add_argument("--out", type=Path, default=LIBRARY_PATH)
    args = parser.parse_args()
    fit = segments(args.fit, "train")
    library = fit_library(fit, max_peptides=args.max_peptides)
    save_library(library, args.out)
    print(f"library: {len(library.peptide[0])} peptides of {len(fit)} segments of {args.fit.name} -> {args.out}")

    test = segments(args.test, "all")
    start = time.perf_counter()
    rebuilt = [backbone_from_ca(chain[:, 1], library, k=args.k) for chain in test]
    seconds = time.perf_counter() - start
    residues = sum(len(c) for c in test)
    errors = np.concatenate([np.linalg.norm(r - c, axis=-1) for r, c in zip(rebuilt, test)])  # [R, 4]
    per_residue = 1000 * seconds / residues
    print(f"{len(test)} held-out segments of {args.test.name}, {residues} residues, {per_residue:.2f} ms per residue")
    for k, atom in enumerate("N CA C O".split()):
        rmsd, median = np.sqrt((errors[:, k] ** 2).mean()), np.median(errors[:, k])
        print(f"  {atom:2s} RMSD {rmsd:.3f} A, median error {median:.3f} A")
    print(f"  all atoms RMSD {np.sqrt((errors**2).mean()):.3f} A")
    for name, chains in (("real", test), ("rebuilt", rebuilt)):
        checks = [validate_backbone(chain) for chain in chains if 40 <= len(chain) <= 256]
        passes, clashes = np.mean([c.passes for c in checks]), np.mean([c.num_clashes > 0 for c in checks])
        print(
            f"  {name}: {100 * passes:.1f} % of {len(checks)} 40-256-residue segments pass, {100 * clashes:.1f} % clash"
        )
    for name, measure in (("bond", bond_lengths), ("angle", bond_angles)):
        real = {k: np.concatenate([measure(c)[k] for c in test]) for k in measure(test[0])}
        built = {k: np.concatenate([measure(r)[k] for r in rebuilt]) for k in real}
        for key in real:
            was, now = real[key], built[key]
            shown = f"real {was.mean():7.3f} +- {was.std():.3f}, rebuilt {now.mean():7.3f} +- {now.std():.3f}"
            print(f"  {name} {key:7s} {shown}")


if __name__ == "__main__":
    main()
