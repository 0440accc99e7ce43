#!/usr/bin/env python
"""Evaluation speed and the published-figure check on real QM9 data.

Writes the first N (default 10,000) molecules of the QM9 test split, as
molgen writes samples (explicit H, bonds perceived by RDKit), to a temporary
SDF, then times: reading the SDF, the EDM protocol, the RDKit protocol,
the distribution statistics, and PoseBusters on a small subset (with and
without its internal-energy check). Prints the EDM-protocol figures next to
the published QM9 data figures (99.0 / 95.2 / 97.7).

Usage: python scripts/bench_evaluate.py [--num 10000] [--posebusters 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from molgen.molecules.metrics.distribution import molecule_statistics
from molgen.molecules.metrics.edm import evaluate_edm
from molgen.molecules.metrics.rdkit_protocol import evaluate_rdkit
from molgen.molecules.qm9 import QM9Dataset
from molgen.molecules.sdf import SDFRecord, molecule_from_coordinates, read_records, write_sdf

PUBLISHED = {"atom_stability": 0.990, "mol_stability": 0.952, "validity": 0.977}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=10_000, help="QM9 test molecules (max 13,083)")
    parser.add_argument("--posebusters", type=int, default=20, help="molecules for the PoseBusters timing (0 = skip)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    test = QM9Dataset("test", subset=args.num)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qm9_test.sdf"
        rows = (
            SDFRecord(molecule_from_coordinates(d.z.numpy(), d.pos.double().numpy())[0], f"qm9_test_{i}")
            for i, d in enumerate(test)
        )
        write_sdf(path, rows)
        (records, problems), t_read = timed(read_records, path)
    edm, t_edm = timed(evaluate_edm, records)
    rdkit, t_rdkit = timed(evaluate_rdkit, records)
    _, t_stats = timed(molecule_statistics, records)
    figures = {
        "num_molecules": len(records),
        "unreadable": len(problems),
        "seconds_read_sdf": t_read,
        "seconds_edm": t_edm,
        "seconds_rdkit": t_rdkit,
        "seconds_distribution": t_stats,
        "seconds_edm_plus_rdkit": t_edm + t_rdkit,
        **{f"edm_{k}": v for k, v in edm.summary.items() if isinstance(v, float)},
        **{f"rdkit_{k}": v for k, v in rdkit.summary.items() if isinstance(v, float)},
    }
    if args.posebusters:
        from molgen.molecules.metrics.posebusters_checks import evaluate_posebusters

        for energy in (False, True):
            result, seconds = timed(evaluate_posebusters, records, max_molecules=args.posebusters, energy=energy)
            tag = "posebusters_energy" if energy else "posebusters"
            figures[f"{tag}_all_passed"] = result.summary["all_passed"]
            figures[f"{tag}_seconds_per_molecule"] = seconds / result.summary["num_evaluated"]

    print(f"{len(records)} QM9 test molecules ({len(problems)} unreadable)")
    for key, value in figures.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        published = PUBLISHED.get(key.removeprefix("edm_"))
        print(
            f"  {key:40s} {shown:>10s}"
            + (f"   (published {published:.3f})" if published and key.startswith("edm_") else "")
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
