#!/usr/bin/env python
"""What a good MPNN score is: the designability proxy on real chains and on controls.

For each real set (default: db55, dips and cgdms in ../shared/data/proteins, read in place), files
are visited in a seeded random order and the first break-free segment of MIN-MAX residues of each
file is kept, until ``--per-set`` segments. Two controls built in code take lengths drawn from those
segments: ideal alpha helices (phi −57°, psi −47°) and statistical random coils
(:func:`molgen.proteins.geometry.random_coil`). Every backbone gets ProteinMPNN designs
(:meth:`molgen.proteins.designability.SequenceDesigner.design`: 8 sequences at temperature 0.1,
seed 0); real chains also get the NLL of their own sequence (molgen's samples, all GLY, do not). Prints
per set the median and interquartile range of the MPNN score, the native sequence's NLL, the glycine
share of the designs and the seconds per backbone (design only).

Usage: python scripts/mpnn_calibration.py [--per-set 30] [--set LABEL=DIR ...] [--json out.json]
(e.g. ``--set "shipped model=designs/" --per-set 8`` scores a folder of `molgen sample` output instead).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from Bio.Data.PDBData import protein_letters_3to1_extended

from molgen.proteins.designability import load_designer
from molgen.proteins.geometry import ideal_helix, random_coil
from molgen.proteins.pdb import BackboneChain, StructureError, find_structure_files, read_backbones

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "proteins"
REAL_SETS = ("db55", "dips", "cgdms")


def sample_segments(folder: Path, count: int, min_length: int, max_length: int, seed: int) -> list[BackboneChain]:
    """Up to ``count`` break-free segments of ``min_length``–``max_length`` residues, one per file, files
    in a seeded random order."""
    files = find_structure_files(folder)
    kept = []
    for index in np.random.default_rng(seed).permutation(len(files)):
        try:
            chains, _ = read_backbones(files[index])
        except StructureError:
            continue
        segments = [s for c in chains for s in c.segments(min_length=min_length) if s.length <= max_length]
        kept.extend(segments[:1])
        if len(kept) == count:
            break
    return kept


def native_sequence(chain: BackboneChain) -> str | None:
    """One-letter sequence of a read chain (modified residues as their parent, anything else X), or None
    for an all-GLY chain: molgen writes generated backbones with GLY placeholders, not a sequence."""
    if set(chain.residue_names) == {"GLY"}:
        return None
    return "".join(protein_letters_3to1_extended.get(name, "X") for name in chain.residue_names)


def score_set(designer, backbones: list[tuple[str, np.ndarray, str | None]]) -> list[dict]:
    """Design every ``(name, coords, native sequence or None)``; one result row each."""
    rows = []
    for name, coords, native in backbones:
        start = time.perf_counter()
        designs = designer.design(coords)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "name": name,
                "length": len(coords),
                "mpnn_score": designs.score,
                "native_nll": None if native is None else designer.score_sequence(coords, native),
                "glycine_fraction": designs.glycine_fraction,
                "seconds": seconds,
            }
        )
    return rows


def quartiles(values: list[float]) -> str:
    """``median [q1, q3]`` with two decimals, or a dash."""
    if not values:
        return "—"
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.2f} [{q1:.2f}, {q3:.2f}]"


def summary_row(label: str, rows: list[dict]) -> str:
    """One Markdown table row of a set."""
    lengths = [r["length"] for r in rows]
    natives = [r["native_nll"] for r in rows if r["native_nll"] is not None]
    cells = [
        label,
        str(len(rows)),
        f"{min(lengths)}–{max(lengths)}",
        quartiles([r["mpnn_score"] for r in rows]),
        quartiles(natives),
        f"{100 * np.mean([r['glycine_fraction'] for r in rows]):.1f} %",
        f"{np.mean([r['seconds'] for r in rows]):.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        metavar="LABEL=DIR",
        help=f"a folder of structures to sample (repeatable; default {', '.join(REAL_SETS)} under {SHARED})",
    )
    parser.add_argument("--per-set", type=int, default=30, help="backbones per set (default 30)")
    parser.add_argument("--min-length", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="file order and control lengths (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", help="also write every row and the settings to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = dict(item.split("=", 1) for item in args.sets) if args.sets else {s: SHARED / s for s in REAL_SETS}

    designer = load_designer(device="cpu")
    results: dict[str, list[dict]] = {}
    for label, folder in sets.items():
        segments = sample_segments(Path(folder), args.per_set, args.min_length, args.max_length, args.seed)
        results[label] = score_set(designer, [(s.name, s.coords, native_sequence(s)) for s in segments])
    real_lengths = [row["length"] for rows in results.values() for row in rows]
    lengths = np.random.default_rng(args.seed).choice(real_lengths, size=args.per_set).tolist()
    results["ideal helix"] = score_set(designer, [(f"helix_{n}", ideal_helix(n), None) for n in lengths])
    results["random coil"] = score_set(
        designer, [(f"coil_{k}_{n}", random_coil(n, seed=k), None) for k, n in enumerate(lengths)]
    )

    columns = ["set", "backbones", "residues", "MPNN score, median [IQR]", "native sequence NLL"]
    columns += ["glycine in designs", "s / backbone"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for label, rows in results.items():
        print(summary_row(label, rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "sets": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
