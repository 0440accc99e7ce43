#!/usr/bin/env python
"""Backbone validation on real chains: the reference figures and the speed of the metrics.

Reads every structure file of the given folders (default: Docking Benchmark 5.5 and
DIPS in ../shared/data/proteins), splits the chains into break-free segments of
40-256 residues (the SCOPe-domain size range of the natural secondary-structure
figures, ~35 % helix / 26 % strand / 39 % coil), and runs ``evaluate_backbones`` on
each set, then TM-score diversity on a seeded random subset (pairs grow quadratically).
Prints each report, the timings, and the secondary structure next to the natural figures.

Usage: python scripts/bench_backbone_metrics.py [DB55 [DIPS]] [--tm-subset 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from molgen.proteins.metrics import evaluate_backbones, format_backbone_report, pairwise_tm_scores, tm_diversity
from molgen.proteins.pdb import read_backbone_folder

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "proteins"
NATURAL = {"helix": 0.35, "strand": 0.26, "coil": 0.39}
MIN_LENGTH, MAX_LENGTH = 40, 256


def benchmark(folder: Path, tm_subset: int) -> dict:
    """Read, segment and evaluate one folder; the report plus timings and counts."""
    start = time.perf_counter()
    chains, _ = read_backbone_folder(folder, progress=False)
    seconds_read = time.perf_counter() - start
    segments = [s.coords for c in chains for s in c.segments(min_length=MIN_LENGTH) if s.length <= MAX_LENGTH]
    if not segments:
        raise SystemExit(f"{folder}: no break-free segment of {MIN_LENGTH}-{MAX_LENGTH} residues")

    start = time.perf_counter()
    report = evaluate_backbones(segments, tm_score=False)
    seconds_validate = time.perf_counter() - start

    rng = np.random.default_rng(0)
    subset = [segments[k] for k in sorted(rng.choice(len(segments), min(tm_subset, len(segments)), replace=False))]
    start = time.perf_counter()
    scores = pairwise_tm_scores(subset)
    seconds_tm = time.perf_counter() - start
    report["notes"] = [n for n in report["notes"] if not n.startswith("diversity")]
    if scores is None:
        report["notes"].append("diversity: skipped, tmtools is not installed (pip install molgen[tm])")
    else:
        report["diversity"] = {"num_structures": len(subset), **tm_diversity(scores)}
    num_pairs = len(subset) * (len(subset) - 1) // 2
    report["timing"] = {
        "num_chains": len(chains),
        "seconds_read": seconds_read,
        "seconds_validate": seconds_validate,
        "ms_validate_per_structure": 1000 * seconds_validate / len(segments),
        "seconds_tm": seconds_tm,
        "ms_tm_per_pair": 1000 * seconds_tm / num_pairs if scores is not None and num_pairs else 0.0,
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "db55", nargs="?", type=Path, default=SHARED / "db55", help="first folder (default: %(default)s)"
    )
    parser.add_argument(
        "dips", nargs="?", type=Path, default=SHARED / "dips", help="second folder (default: %(default)s)"
    )
    parser.add_argument("--tm-subset", type=int, default=50, help="structures per set for TM-score diversity")
    parser.add_argument("--json", type=Path, help="write the reports here")
    args = parser.parse_args()

    missing = [str(p) for p in (args.db55, args.dips) if not p.is_dir()]
    if missing:
        sys.exit(
            f"folder not found: {', '.join(missing)} (real chains live in ../shared/data/proteins; see its README)"
        )

    reports = {}
    for name, folder in (("db55", args.db55), ("dips", args.dips)):
        reports[name] = report = benchmark(folder, args.tm_subset)
        print(f"=== {name}: {folder}")
        print(format_backbone_report(report))
        ss = report["secondary_structure"]
        print(
            "secondary structure (pooled) vs natural SCOPe domains: "
            + ", ".join(f"{k} {100 * ss[f'{k}_pooled_fraction']:.1f} % ({100 * v:.0f} %)" for k, v in NATURAL.items())
        )
        print()
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
