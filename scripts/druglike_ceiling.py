#!/usr/bin/env python
"""The data's ceiling row of the drug-like metrics: MOSES molecules evaluated against ``--reference moses``.

A perfect drug-like model would sample molecules like the data's, so the
data's own figures are the best a sample can score at the same size. Two
rows, each of N prepared molecules (default 1,000) built as a drugs model's
samples are (heavy-atom graph with its MMFF94s conformer, hydrogens placed by
``molgen.molecules.hydrogens``), written to an SDF and read back as
``molgen evaluate`` reads samples:

    test   the drugs test split's first N molecules: the reference's own molecules, so the
           distances to the reference are 0 by construction; validity, uniqueness, novelty
           (against the MOSES training SMILES), IntDiv, properties, filters, strain are the data's.
    valid  the drugs valid split's first N molecules: MOSES training molecules (novelty 0 by
           construction), disjoint from the reference, so their distances to it are what two
           independent samples of the data differ by at this size (the floor of every distance).

Prints both reports, a side-by-side table of the main figures and the
timings. Needs the molsets wheel and prepares what is not cached (the first
build of the training SMILES takes minutes).

Usage: python scripts/druglike_ceiling.py [--num 1000] [--posebusters 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from molgen.molecules.evaluate import evaluate_molecules, format_report
from molgen.molecules.metrics.moses_reference import REFERENCE_MOLECULES, moses_molecules, moses_reference
from molgen.molecules.sdf import SDFRecord, read_records, write_sdf

# (section, key) of the side-by-side table.
MAIN_FIGURES = [
    ("rdkit", "validity"),
    ("rdkit", "valid_and_connected"),
    ("rdkit", "uniqueness"),
    ("rdkit", "novelty"),
    ("druglike", "intdiv1"),
    ("druglike", "intdiv2"),
    ("druglike", "snn"),
    ("druglike", "frag_similarity"),
    ("druglike", "scaffold_similarity"),
    ("druglike", "qed_w1"),
    ("druglike", "sa_w1"),
    ("druglike", "logp_w1"),
    ("druglike", "mw_w1"),
    ("druglike", "qed_mean"),
    ("druglike", "sa_mean"),
    ("druglike", "logp_mean"),
    ("druglike", "mw_mean"),
    ("druglike", "pains_pass"),
    ("druglike", "brenk_pass"),
    ("druglike", "nih_pass"),
    ("druglike", "zinc_pass"),
    ("druglike", "filters_pass"),
    ("druglike", "ring_size_tv"),
    ("geometry", "bond_length_w1"),
    ("geometry", "bond_angle_w1"),
    ("geometry", "torsion_w1"),
    ("geometry", "bond_length_type_tv"),
    ("geometry", "bond_angle_type_tv"),
    ("geometry", "torsion_type_tv"),
    ("strain", "median_kcal_mol"),
    ("strain", "q1_kcal_mol"),
    ("strain", "q3_kcal_mol"),
    ("graph", "atom_stability"),
    ("graph", "mol_stability"),
    ("posebusters", "all_passed"),
    ("distribution", "atom_type_tv"),
    ("distribution", "num_atoms_tv"),
    ("distribution", "bond_length_w1"),
]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=REFERENCE_MOLECULES, help="molecules per row (default 1,000)")
    parser.add_argument(
        "--posebusters",
        type=int,
        default=0,
        help="PoseBusters (energy-ratio check included) on N molecules per row (0 = skip)",
    )
    parser.add_argument("--json", help="write the reports and timings here")
    args = parser.parse_args()

    timings: dict[str, float] = {}
    reference, timings["reference_seconds"] = timed(moses_reference)
    reports = {}
    for split in ("test", "valid"):
        mols, timings[f"{split}_molecules_seconds"] = timed(moses_molecules, split, args.num)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"moses_{split}.sdf"
            write_sdf(path, (SDFRecord(mol, f"moses_{split}_{i}") for i, mol in enumerate(mols)))
            records, problems = read_records(path)
        evaluation, timings[f"{split}_evaluate_seconds"] = timed(
            evaluate_molecules,
            records,
            reference=reference,
            problems=problems,
            posebusters_max=args.posebusters,
            posebusters_energy=True,  # the energy-ratio check is part of the drug-like goal
        )
        reports[split] = evaluation.report
        print(f"===== {split}: {len(records)} molecules =====")
        print(format_report(evaluation.report))

    print("\n===== ceiling (test: the reference's own molecules; valid: disjoint MOSES molecules) =====")
    print(f"  {'figure':36s} {'test':>12s} {'valid':>12s}")
    for section, key in MAIN_FIGURES:
        values = [reports[split].get(section, {}).get(key) for split in ("test", "valid")]
        shown = [f"{v:12.4f}" if isinstance(v, float) else f"{'-':>12s}" for v in values]
        print(f"  {section + '.' + key:36s} {shown[0]} {shown[1]}")
    for name, seconds in timings.items():
        print(f"  {name:36s} {seconds:12.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"reports": reports, "timings": timings}, indent=2) + "\n")


if __name__ == "__main__":
    main()
