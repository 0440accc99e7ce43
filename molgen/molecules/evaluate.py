"""Run every validation protocol on a set of molecules and report the results.

The report is a plain dict, one section per protocol, each mapping metric
names to numbers (fractions in [0, 1] unless the name says otherwise):

    input         counts: records, evaluated, unreadable, bonds in file, ...
    edm           EDM protocol (bonds from distances): atom_stability, mol_stability,
                  validity, uniqueness, novelty
    graph         stability of the file's own bonds and formal charges (when the file has
                  bonds): atom_stability, mol_stability, counts
    rdkit         RDKit protocol (file bonds or rdDetermineBonds): validity,
                  connectivity, valid_and_connected, uniqueness, novelty
    posebusters   PoseBusters "mol" checks: pass rate per check, all_passed
    distribution  distances to the reference: atom_type_tv, num_atoms_tv, bond_length_w1 (Å)
    notes         human-readable remarks (skipped sections and why)

``per_molecule`` results (for ``--annotate`` and ``--filter``) are kept apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from molgen.molecules.metrics.distribution import compare_statistics, molecule_statistics
from molgen.molecules.metrics.edm import evaluate_edm
from molgen.molecules.metrics.graph_stability import evaluate_graph_stability
from molgen.molecules.metrics.rdkit_protocol import evaluate_rdkit
from molgen.molecules.metrics.reference import Reference
from molgen.molecules.record import MoleculeRecord
from molgen.reports import format_sections


@dataclass
class Evaluation:
    """``report``: JSON-ready sections; ``per_molecule``: one dict of SD-tag-ready values per record."""

    report: dict
    per_molecule: list[dict] = field(default_factory=list)


def evaluate_molecules(
    records: list[MoleculeRecord],
    *,
    reference: Reference | None = None,
    problems: list[str] | None = None,
    posebusters_max: int | None = 0,
    posebusters_energy: bool = False,
    posebusters_workers: int = 1,
) -> Evaluation:
    """Evaluate ``records`` with every protocol.

    Args:
        reference: novelty and distribution reference (None skips both).
        problems: records of the input that could not be read (reported).
        posebusters_max: molecules to bust (a seeded random subset); None =
            all, 0 = skip PoseBusters.
        posebusters_energy: include PoseBusters' internal-energy check (~0.5-1 s per molecule here).
    """
    if not records:
        raise ValueError("no readable molecules to evaluate" + (f" ({len(problems)} unreadable)" if problems else ""))
    problems = problems or []
    implicit = sum(r.implicit_hydrogens > 0 for r in records)
    report: dict = {
        "input": {
            "num_records": len(records) + len(problems),
            "num_evaluated": len(records),
            "num_unreadable": len(problems),
            "num_with_bonds_in_file": sum(r.has_bonds for r in records),
            "num_with_implicit_hydrogens": implicit,
        },
        "notes": [f"unreadable {p}" for p in problems],
    }
    per_molecule: list[dict] = [{} for _ in records]

    def merge(prefix: str, rows: list[dict | None], keys: tuple[str, ...]) -> None:
        for target, row in zip(per_molecule, rows):
            if row is not None:
                target.update({f"{prefix}_{k}": row[k] for k in keys if k in row and row[k] is not None})

    if implicit:
        report["edm"] = {}
        report["notes"].append(
            f"edm: skipped, {implicit} molecules have implicit hydrogens; the EDM protocol infers bonds "
            "from distances and needs every hydrogen placed in 3D"
        )
    else:
        edm = evaluate_edm(records, reference.edm_smiles if reference else None)
        report["edm"] = {k: v for k, v in edm.summary.items() if v is not None}
        unsupported = sorted({e for row in edm.per_molecule for e in row["unsupported_elements"]})
        if unsupported:
            count = sum(bool(row["unsupported_elements"]) for row in edm.per_molecule)
            report["notes"].append(
                f"edm: {count} molecules contain elements outside the protocol's bond tables "
                f"({', '.join(unsupported)}); counted invalid and unstable"
            )
        merge("edm", edm.per_molecule, ("mol_stable", "stable_atoms", "valid", "smiles"))

    if any(r.has_bonds or r.bonds_generated for r in records):
        if implicit:
            report["notes"].append(
                f"graph: skipped, {implicit} molecules have implicit hydrogens; graph stability counts placed atoms"
            )
        else:
            graph = evaluate_graph_stability(records)
            report["graph"] = graph.summary
            merge("graph", graph.per_molecule, ("mol_stable", "stable_atoms"))
            if graph.summary["num_bonds_generated"] < len(records):
                report["notes"].append(
                    "graph: bonds of records not tagged bonds_generated=1 were perceived or given by the file, "
                    "so their graph stability says more about perception than about the geometry"
                )

    rdkit = evaluate_rdkit(records, reference.rdkit_smiles if reference else None)
    report["rdkit"] = {k: v for k, v in rdkit.summary.items() if v is not None}
    merge("rdkit", rdkit.per_molecule, ("valid", "connected", "smiles"))

    if posebusters_max == 0:
        report["posebusters"] = {}
        report["notes"].append("posebusters: skipped (--posebusters 0)")
    else:
        from molgen.molecules.metrics.posebusters_checks import evaluate_posebusters

        busted = evaluate_posebusters(
            records, max_molecules=posebusters_max, energy=posebusters_energy, workers=posebusters_workers
        )
        report["posebusters"] = dict(busted.summary)
        merge("posebusters", busted.per_molecule, ("all_passed",))

    if reference is None:
        report["distribution"] = {}
        report["notes"].append("novelty and distribution: skipped (no reference)")
    else:
        report["distribution"] = compare_statistics(molecule_statistics(records), reference.statistics)
        report["input"]["reference"] = reference.name
    return Evaluation(report, per_molecule)


def format_report(report: dict) -> str:
    """The report as an aligned text table, one block per section (values in [0, 1] as
    percentages, except the distribution distances)."""
    return format_sections(report, lambda section, key, value: section != "distribution" and 0 <= value <= 1)
