#!/usr/bin/env python
"""Docking figures on the real complexes of ../shared/data/complexes: redocking success and score baselines.

redock    For each target, dock its crystal ligand into its raw receptor.pdb exactly as
          `molgen dock` does (receptor repair, ligand preparation, Vina, 9 poses kept), and
          print the best score, the symmetry-aware RMSD (RDKit CalcRMS, no superposition)
          of the top pose and of the best of 9 poses to the crystal pose, the crystal pose
          scored in place and locally optimised, and the time; beside the folder's
          reference redock (meeko 0.8.0 + Vina 1.2.7, exhaustiveness 8, seed 42, on a
          receptor repaired by hand where meeko alone failed). Success: top pose within 2 A.

baseline  Dock molecules into one target with `molgen dock` and print its summary (score
          mean / median / best 10 %, ligand efficiency, QED, SA) and the throughput in
          molecules per minute: either N MOSES test molecules (a seeded sample, embedded
          with RDKit ETKDGv3 with hydrogens, as a baseline of real drug-like molecules) or
          any SDF (e.g. `molgen sample` output), docked identically.

Usage:
  python scripts/docking_benchmark.py redock [--targets 1iep 6moa] [--exhaustiveness 8] [--jobs 1]
  python scripts/docking_benchmark.py baseline --target 1iep --moses 100 [--jobs 2] [--out moses_1iep.sdf]
  python scripts/docking_benchmark.py baseline --target 1iep --sdf samples.sdf [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign

from molgen.cli import main as molgen_main
from molgen.docking.box import Box
from molgen.docking.pipeline import WorkerSetup, dock_record, start_worker
from molgen.docking.receptor import prepare_receptor
from molgen.docking.vina_runner import SEARCH_POSES, VinaSettings

COMPLEXES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "complexes"
TARGETS = ("1iep", "1a46", "6moa", "1uou", "2ha2")
SUCCESS_RMSD = 2.0


def _rmsd(molblock: str, crystal: Chem.Mol) -> float:
    pose = Chem.MolFromMolBlock(molblock, removeHs=False)
    return float(rdMolAlign.CalcRMS(Chem.RemoveHs(pose), crystal))


def _run_mode(setup: WorkerSetup, block: str, **settings) -> object:
    start_worker(WorkerSetup(setup.receptor_pdbqt, setup.box, VinaSettings(**settings), setup.largest_fragment))
    return dock_record((0, block))


def redock_target(target: str, exhaustiveness: int, seed: int) -> dict:
    """One target's redock figures (scores in kcal/mol, RMSD in A, times in s)."""
    folder = COMPLEXES / target
    meta = json.loads((folder / "meta.json").read_text())
    box = Box.around_ligand(folder / "ligand.sdf")
    start = time.perf_counter()
    receptor = prepare_receptor(folder / "receptor.pdb", box)
    prep_seconds = time.perf_counter() - start
    block = (folder / "ligand.sdf").read_text().split("$$$$")[0]
    crystal = Chem.RemoveHs(Chem.MolFromMolFile(str(folder / "ligand.sdf")))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "receptor.pdbqt"
        path.write_text(receptor.pdbqt)
        setup = WorkerSetup(str(path), box, VinaSettings(), largest_fragment=True)
        scored = _run_mode(setup, block, mode="score_only", seed=seed)
        optimized = _run_mode(setup, block, mode="local_only", seed=seed)
        start = time.perf_counter()
        docked = _run_mode(setup, block, exhaustiveness=exhaustiveness, num_poses=SEARCH_POSES, seed=seed)
        dock_seconds = time.perf_counter() - start
    if not docked.docked:
        raise RuntimeError(f"{target}: {docked.failure}: {docked.reason}")
    rmsds = [_rmsd(molblock, crystal) for _, molblock in docked.poses]
    return {
        "target": target,
        "heavy_atoms": meta["heavy_atoms"],
        "receptor_notes": list(receptor.notes),
        "receptor_seconds": round(prep_seconds, 1),
        "crystal_score_only": scored.score,
        "crystal_local_opt": optimized.score,
        "best_score": docked.score,
        "top_pose_rmsd": round(rmsds[0], 2),
        "best_of_poses_rmsd": round(min(rmsds), 2),
        "poses": len(rmsds),
        "dock_seconds": round(dock_seconds, 1),
        "reference": meta["reference_redock"],
    }


def _redock_job(job: tuple[str, int, int]) -> dict:
    return redock_target(*job)


def redock(args: argparse.Namespace) -> dict:
    jobs = [(target, args.exhaustiveness, args.seed) for target in args.targets]
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            rows = pool.map(_redock_job, jobs)
    else:
        rows = [_redock_job(job) for job in jobs]
    print(
        f"redocking, exhaustiveness {args.exhaustiveness}, seed {args.seed}, {args.jobs} job(s), one core each; "
        "reference: meeko 0.8.0 + Vina 1.2.7, exhaustiveness 8, seed 42, 2 cores"
    )
    header = (
        f"{'PDB':5} {'HA':>3} | {'score':>7} {'top':>6} {'best/9':>6} {'xtal':>7} {'opt':>7} {'time':>6} | "
        f"{'ref':>7} {'top':>6} {'best/9':>6} {'time':>6}"
    )
    print(header)
    for r in rows:
        ref = r["reference"]
        print(
            f"{r['target']:5} {r['heavy_atoms']:>3} | {r['best_score']:7.2f} {r['top_pose_rmsd']:6.2f} "
            f"{r['best_of_poses_rmsd']:6.2f} {r['crystal_score_only']:7.2f} {r['crystal_local_opt']:7.2f} "
            f"{r['dock_seconds']:6.0f} | {ref['best_score']:7.2f} {ref['top_pose_rmsd_sym']:6.2f} "
            f"{ref['best_of_9_rmsd_sym']:6.2f} {ref['dock_seconds_2_cores']:6.0f}"
        )
    ours = sum(r["top_pose_rmsd"] < SUCCESS_RMSD for r in rows)
    theirs = sum(r["reference"]["top_pose_rmsd_sym"] < SUCCESS_RMSD for r in rows)
    ours9 = sum(r["best_of_poses_rmsd"] < SUCCESS_RMSD for r in rows)
    theirs9 = sum(r["reference"]["best_of_9_rmsd_sym"] < SUCCESS_RMSD for r in rows)
    print(
        f"success (top pose < {SUCCESS_RMSD} A): {ours}/{len(rows)} (reference {theirs}/{len(rows)}); "
        f"best of 9: {ours9}/{len(rows)} (reference {theirs9}/{len(rows)})"
    )
    print(f"docking time: {sum(r['dock_seconds'] for r in rows):.0f} s in all")
    for r in rows:
        for note in r["receptor_notes"]:
            print(f"{r['target']} receptor: {note}")
    return {"rows": rows, "success": ours, "success_best_of_9": ours9, "reference_success": theirs}


def moses_sdf(path: Path, count: int, seed: int) -> int:
    """Write ``count`` MOSES test molecules (a seeded sample), embedded with ETKDGv3 and hydrogens, to ``path``;
    returns the number written."""
    from molgen.molecules.moses import read_moses_smiles
    from molgen.molecules.sdf import SDFRecord, write_sdf

    smiles = read_moses_smiles("test")
    order = np.random.default_rng(seed).permutation(len(smiles))
    records = []
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    for index in order:
        if len(records) == count:
            break
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles[index]))
        if AllChem.EmbedMolecule(mol, params) == 0:
            records.append(SDFRecord(mol, f"moses_test_{index}"))
    return write_sdf(path, records)


def baseline(args: argparse.Namespace) -> dict:
    folder = COMPLEXES / args.target
    with tempfile.TemporaryDirectory() as tmp:
        if args.moses:
            sdf = Path(tmp) / f"moses_test_{args.moses}.sdf"
            moses_sdf(sdf, args.moses, args.seed)
        else:
            sdf = Path(args.sdf)
        out = args.out or str(Path(tmp) / "docked.sdf")
        report_path = Path(tmp) / "report.json"
        receptor = folder / "receptor.pdb"
        command = ["dock", str(sdf), "--receptor", str(receptor), "--ref-ligand", str(folder / "ligand.sdf")]
        command += ["--out", out, "--exhaustiveness", str(args.exhaustiveness), "--jobs", str(args.jobs)]
        command += ["--seed", str(args.seed), "--json", str(report_path)]
        start = time.perf_counter()
        status = molgen_main(command)
        seconds = time.perf_counter() - start
        if status != 0:
            sys.exit(status)
        report = json.loads(report_path.read_text())
    rate = 60 * report["molecules"] / seconds
    print(
        f"{args.target}: {report['molecules']} molecules in {seconds:.0f} s with {args.jobs} job(s): "
        f"{rate:.1f} molecules/minute (receptor preparation and maps included)"
    )
    return {"target": args.target, "seconds": seconds, "molecules_per_minute": rate, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("redock", help="redock the crystal ligands")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    p.add_argument("--jobs", type=int, default=1, help="targets docked in parallel, one core each")
    p = sub.add_parser("baseline", help="dock MOSES test molecules or an SDF into one target")
    p.add_argument("--target", default="1iep", choices=TARGETS)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--moses", type=int, metavar="N", help="N MOSES test molecules, embedded with ETKDGv3")
    source.add_argument("--sdf", help="any SDF of 3D molecules")
    p.add_argument("--jobs", type=int, default=2, help="`molgen dock --jobs` (default 2)")
    p.add_argument("--out", help="keep the docked poses in this SDF")
    for p in sub.choices.values():
        p.add_argument("--exhaustiveness", type=int, default=8)
        p.add_argument("--seed", type=int, default=42, help="Vina's seed, and the MOSES sample's")
        p.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if not (COMPLEXES / "1iep").is_dir():
        sys.exit(f"the complexes are not at {COMPLEXES}")
    figures = redock(args) if args.what == "redock" else baseline(args)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
